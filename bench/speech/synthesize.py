"""Synthesizes labelled test speech for the hearing evaluator (run by hand, not by the tests).

Needs the Debian packages `espeak-ng` and `sox` (apt-get install espeak-ng sox) and numpy +
soundfile from the project's venv. Writes 16 kHz mono 16-bit WAVs and a manifest.jsonl in the
format `synesthesia bench listen` reads, with extra fields (text, voice, speed, snr_db,
speech_start_s, speech_end_s) the evaluator uses when present.

Voices are espeak-ng's Klatt-synthesizer variants (+klatt, +klatt2..6): pocketsphinx's en-US
acoustic model hears them about as it hears people, while it recognizes almost nothing of the
default formant variants (+m1, +f2, ...: "take me to the ocean" comes back as "they eat up the
ocean"), which would measure the synthesizer rather than our settings. One voice per split has a
British accent, which the US model handles worse (see bench/results/listen.md).

Three disjoint splits, so accuracy is reported on speech that was not tuned on:
  tune     voices/speeds/noise seeds used while choosing recognizer settings
  heldout  other voices, other speeds, other noise seeds, half of the non-command sentences unseen
  test     a small slice of heldout-style clips, committed under tests/data/speech

    python bench/speech/synthesize.py --split heldout --out bench/out/speech/heldout

The wide splits (wide-tune, wide-heldout, wide-test; see WIDE_SPLITS below) add more
synthesizers, variants, pitches, 1.12x speed and three kinds of noise; they also need Debian's
`freetts` (and java). The voices splits (voices-tune, voices-heldout) are the same sentences and
conditions spoken by Debian's flite and festival voices (`flite festival festvox-us-slt-hts
festvox-kallpc16k`).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

RATE = 16000

# (text, canonical keywords). Carrier phrases vary so the recognizer cannot lean on one.
COMMANDS_A: list[tuple[str, list[str]]] = [
    ("take me to the ocean", ["ocean"]),
    ("show me a forest", ["forest"]),
    ("now the desert", ["desert"]),
    ("let's go to the city", ["city"]),
    ("fly over the mountains", ["mountains"]),
    ("take me to space", ["space"]),
    ("make it rain", ["rain"]),
    ("let it snow", ["snow"]),
    ("bring a storm", ["storm"]),
    ("add some fog", ["fog"]),
    ("make the sky clear", ["clear"]),
    ("switch to night", ["night"]),
    ("make it day", ["day"]),
    ("show me a sunset", ["sunset"]),
    ("wait for the sunrise", ["sunrise"]),
    ("set it on fire", ["fire"]),
    ("add some lightning", ["lightning"]),
    ("show me an aurora", ["aurora"]),
    ("fill the sky with stars", ["stars"]),
    ("go faster", ["faster"]),
    ("a little slower", ["slower"]),
    ("keep it calm", ["calm"]),
    ("freeze", ["freeze"]),
    ("make it red", ["red"]),
    ("turn it blue", ["blue"]),
    ("paint everything green", ["green"]),
    ("make it gold", ["gold"]),
    ("turn it purple", ["purple"]),
    ("a storm over the ocean", ["storm", "ocean"]),
    ("a golden sunset in the desert", ["gold", "sunset", "desert"]),
    ("it is snowing in the mountains", ["snow", "mountains"]),
    ("a city at night", ["city", "night"]),
    ("rainy forest", ["rain", "forest"]),
    ("stars in outer space", ["stars", "space"]),
    ("purple lightning", ["purple", "lightning"]),
    ("a foggy morning by the sea", ["fog", "ocean"]),
]
COMMANDS_B: list[tuple[str, list[str]]] = [
    ("go to the ocean", ["ocean"]),
    ("walk into the forest", ["forest"]),
    ("a hot desert", ["desert"]),
    ("show me the city", ["city"]),
    ("mountains please", ["mountains"]),
    ("go into space", ["space"]),
    ("it's raining", ["rain"]),
    ("snowy", ["snow"]),
    ("a huge storm", ["storm"]),
    ("more fog", ["fog"]),
    ("clear skies", ["clear"]),
    ("make it night", ["night"]),
    ("back to day", ["day"]),
    ("sunset", ["sunset"]),
    ("sunrise please", ["sunrise"]),
    ("more fire", ["fire"]),
    ("lightning", ["lightning"]),
    ("northern lights", ["aurora"]),
    ("show the stars", ["stars"]),
    ("faster please", ["faster"]),
    ("slow down", ["slower"]),
    ("calm", ["calm"]),
    ("freeze it", ["freeze"]),
    ("everything red", ["red"]),
    ("blue", ["blue"]),
    ("green please", ["green"]),
    ("golden", ["gold"]),
    ("purple sky", ["purple"]),
    ("snow in the forest at night", ["snow", "forest", "night"]),
    ("a stormy sea", ["storm", "ocean"]),
    ("sunrise over the mountains", ["sunrise", "mountains"]),
    ("a red desert", ["red", "desert"]),
    ("blue fire", ["blue", "fire"]),
    ("aurora over the city", ["aurora", "city"]),
]
# Everyday sentences with no vocabulary word or form in them.
NON_COMMANDS_A = [
    "I think we should order lunch soon",
    "the meeting moved to thursday afternoon",
    "could you pass me that book",
    "my brother bought a new car last week",
    "where did you put the keys",
    "she is learning to play the piano",
    "the train was late again this morning",
    "please send me the report by friday",
    "we ran out of coffee in the kitchen",
    "he told a very funny story",
    "turn left at the next corner",
    "the children are playing in the garden",
    "I need to call my mother",
    "that was a really good movie",
]
NON_COMMANDS_B = [
    "let me check my calendar first",
    "the printer is out of paper",
    "how much does this cost",
    "they are moving to a new house",
    "can you open the window",
    "the soup needs more salt",
    "I left my jacket at the office",
    "our dog likes to chase the ball",
    "what time does the shop close",
    "this chair is quite comfortable",
    "I forgot to water the plants",
    "the bus stops right outside",
    "we should paint the kitchen walls",
    "my phone battery is almost empty",
]

SPLITS = {
    # voice (espeak-ng voice+variant), speeds in words per minute, noise seed base, SNRs
    "tune": dict(
        voices=["en-us+klatt", "en-us+klatt3", "en-us-nyc+klatt5", "en-gb-x-rp+klatt"],
        speeds=[150, 175],
        seed=1000, per_item=2, noise_clips=12,
        commands=COMMANDS_A + COMMANDS_B,
        non_commands=NON_COMMANDS_A,
    ),
    "heldout": dict(
        voices=["en-us+klatt2", "en-us+klatt4", "en-us-nyc+klatt6", "en-gb+klatt2"],
        speeds=[140, 165, 190],
        seed=2000, per_item=2, noise_clips=12,
        commands=COMMANDS_A + COMMANDS_B,
        non_commands=NON_COMMANDS_A + NON_COMMANDS_B,
    ),
    "test": dict(
        voices=["en-us+klatt6", "en-us-nyc+klatt"],
        speeds=[160],
        seed=3000, per_item=1, noise_clips=2,
        commands=COMMANDS_A[:28:3] + COMMANDS_A[28::4],
        non_commands=NON_COMMANDS_B[:4],
    ),
}


def speak(text: str, voice: str, speed: int, tmp: Path) -> np.ndarray:
    """espeak-ng at its native rate, then sox to 16 kHz mono 16-bit (sox's resampler is the
    reference one; ours is for live sources)."""
    raw, out = tmp / "raw.wav", tmp / "out.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(out)], check=True)
    audio, rate = sf.read(out, dtype="float32")
    assert rate == RATE
    return trim(audio)


def active_bounds(audio: np.ndarray, frame: int = 160) -> tuple[int, int]:
    """First and last sample of 10 ms frames within 30 dB of the loudest one."""
    n = len(audio) // frame
    rms = np.sqrt(np.mean(audio[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    on = np.flatnonzero(rms > rms.max() * 10 ** (-30 / 20))
    return int(on[0] * frame), int((on[-1] + 1) * frame)


def trim(audio: np.ndarray) -> np.ndarray:
    a, b = active_bounds(audio)
    return audio[a:b]


def noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """White noise mixed with a low-passed (rumbly) part, like a room and a fan."""
    white = rng.standard_normal(n)
    brown = np.cumsum(rng.standard_normal(n))
    brown -= np.convolve(brown, np.ones(801) / 801, mode="same")  # keep it from drifting
    brown /= brown.std() + 1e-9
    mix = 0.6 * white + 0.8 * brown
    return (mix / mix.std()).astype(np.float32)


def build(split: str, out: Path) -> None:
    cfg = SPLITS[split]
    rng = random.Random(cfg["seed"])
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    items: list[tuple[str, list[str]]] = [*cfg["commands"], *((t, []) for t in cfg["non_commands"])]
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        n = 0
        for text, expect in items:
            # a rotating subset of voices per sentence keeps the split small
            start = rng.randrange(len(cfg["voices"]))
            for j in range(cfg["per_item"]):
                voice = cfg["voices"][(start + j) % len(cfg["voices"])]
                speed = rng.choice(cfg["speeds"])
                # clean and 15 dB for every sentence
                for snr in (None, 15.0):
                    speech = speak(text, voice, speed, tmp)
                    lead = int(RATE * rng.uniform(0.3, 0.6))
                    tail = int(RATE * 0.9)
                    clip = np.concatenate([np.zeros(lead, np.float32), speech, np.zeros(tail, np.float32)])
                    clip *= 0.5 / (np.abs(clip).max() + 1e-9) * rng.uniform(0.4, 1.0)
                    if snr is not None:
                        nrng = np.random.default_rng(cfg["seed"] + n)
                        p_speech = np.mean(clip[lead : lead + len(speech)] ** 2)
                        clip = clip + noise(nrng, len(clip)) * np.sqrt(p_speech / 10 ** (snr / 10))
                    name = f"{split}_{n:04d}.wav"
                    sf.write(out / name, np.clip(clip, -1, 1), RATE, subtype="PCM_16")
                    rows.append(dict(
                        file=name, expect=expect, text=text, voice=voice, speed=speed, snr_db=snr,
                        speech_start_s=round(lead / RATE, 4),
                        speech_end_s=round((lead + len(speech)) / RATE, 4),
                    ))
                    n += 1
        # noise-only clips: must produce no intent
        for k in range(cfg["noise_clips"]):
            nrng = np.random.default_rng(cfg["seed"] + 500 + k)
            clip = noise(nrng, int(RATE * 2.5)) * rng.uniform(0.01, 0.08)
            name = f"{split}_{n:04d}.wav"
            sf.write(out / name, clip, RATE, subtype="PCM_16")
            rows.append(dict(file=name, expect=[], text="", voice="noise", speed=0, snr_db=None,
                             speech_start_s=None, speech_end_s=None))
            n += 1
    with open(out / "manifest.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    print(f"{split}: {len(rows)} clips in {out}")


# ---- wider speech: more synthesizers, variants, pitches, rates and noise kinds --------------------
#
# Voices are "engine:voice[:pitch]": espeak-ng's formant variants (+m1.., +f1..) and accents at
# several pitches, and Debian's FreeTTS (kevin16, a diphone voice: a different synthesizer
# altogether). Debian ships no MBROLA English voice here (mbrola-us1/us2 are not in its archive),
# and no neural voice was found in a wheel without a model download, so none is used. FreeTTS only
# appears in the held-out split: the figures that count are on voices never tuned on.
# Conditions per sentence: clean, 1.12x speed (sox tempo, pitch kept), and noise of one kind
# (pink, babble of overlapped other sentences, synthetic music) at 20, 15 or 10 dB SNR.

COMMANDS_C: list[tuple[str, list[str]]] = [  # other phrasings, held out
    ("can we see the ocean", ["ocean"]),
    ("I want a forest", ["forest"]),
    ("put us in the desert", ["desert"]),
    ("a big city", ["city"]),
    ("give me mountains", ["mountains"]),
    ("let's fly to space", ["space"]),
    ("start the rain", ["rain"]),
    ("I'd like some snow", ["snow"]),
    ("a storm please", ["storm"]),
    ("fog everywhere", ["fog"]),
    ("switch it to night", ["night"]),
    ("change it to day", ["day"]),
    ("show the sunset", ["sunset"]),
    ("I want a sunrise", ["sunrise"]),
    ("add fire", ["fire"]),
    ("bring the lightning", ["lightning"]),
    ("an aurora please", ["aurora"]),
    ("more stars", ["stars"]),
    ("a bit faster", ["faster"]),
    ("go slower", ["slower"]),
    ("stay calm", ["calm"]),
    ("freeze everything", ["freeze"]),
    ("make it all red", ["red"]),
    ("blue please", ["blue"]),
    ("turn it green", ["green"]),
    ("make it golden", ["gold"]),
    ("everything purple", ["purple"]),
    ("snow on the mountains at sunrise", ["snow", "mountains", "sunrise"]),
    ("a storm with lightning", ["storm", "lightning"]),
    ("the city at sunset", ["city", "sunset"]),
]
# No dictionary form in them, but words a recognizer or a tolerant matcher could turn into one
# (today, starting, redo, bluetooth, firewall, daisy, raindrop...): where false intents come from.
NON_COMMANDS_C = [
    "nice to meet you today",
    "we are starting the project tomorrow",
    "I have to redo the whole thing",
    "my bluetooth headphones are broken",
    "the firewall blocked the connection",
    "she picked a daisy in the garden",
    "a raindrop hit the window",
    "the stardust hotel is closed",
    "he walked in calmly and sat down",
    "the seal was sleeping on the rocks",
    "we saw it yesterday",
    "that was a close call",
    "the goldfish needs a bigger bowl",
    "this is the fastest route",
    "I read the news this morning",
    "turn the page please",
]

WIDE_SPLITS = {
    "wide-tune": dict(
        voices=["espeak:en-us+m3:40", "espeak:en-us+f2:60", "espeak:en-gb-scotland+m1:50",
                "espeak:en-029+m4:45", "espeak:en-us+klatt3:50"],
        speeds=[150, 175], seed=5000, noise_clips=10,
        commands=COMMANDS_A + COMMANDS_B, non_commands=NON_COMMANDS_A + NON_COMMANDS_C[:8],
    ),
    "wide-heldout": dict(
        voices=["espeak:en-us+m1:55", "espeak:en-us+f4:70", "espeak:en-gb+m5:35", "espeak:en-us-nyc+f1:65",
                "espeak:en-gb-x-gbclan+m2:50", "freetts:kevin16"],
        speeds=[140, 165, 190], seed=6000, noise_clips=12,
        commands=COMMANDS_A + COMMANDS_B + COMMANDS_C, non_commands=NON_COMMANDS_B + NON_COMMANDS_C[8:],
    ),
    # other synthesizers (Debian's flite and festival: diphone, clustergen and HTS voices, far
    # less robotic than espeak-ng's formants), for checking that what was tuned on espeak-ng holds
    # on voices of another kind; both splits are held out from every decoding choice before them
    "voices-tune": dict(
        voices=["flite:awb", "festival:kal_diphone", "flite:kal16:120"],
        speeds=[150, 175], seed=8000, noise_clips=6,
        commands=COMMANDS_A + COMMANDS_B, non_commands=NON_COMMANDS_A + NON_COMMANDS_C[:8],
    ),
    "voices-heldout": dict(
        voices=["flite:slt", "flite:rms", "festival:cmu_us_slt_arctic_hts", "flite:slt:220", "flite:awb:150"],
        speeds=[140, 165, 190], seed=9000, noise_clips=6,
        commands=COMMANDS_A + COMMANDS_B + COMMANDS_C, non_commands=NON_COMMANDS_B + NON_COMMANDS_C[8:],
    ),
    # a slice of held-out voices committed under tests/data/speech-wide for the tests
    "wide-test": dict(
        voices=["espeak:en-us+m1:55", "espeak:en-us+f4:70", "freetts:kevin16"],
        speeds=[165], seed=7000, noise_clips=2,
        commands=[COMMANDS_A[0], COMMANDS_A[6], COMMANDS_A[12], COMMANDS_A[18], COMMANDS_A[25], COMMANDS_A[28],
                  COMMANDS_B[14], COMMANDS_C[3]],
        non_commands=[NON_COMMANDS_C[0], NON_COMMANDS_C[10], NON_COMMANDS_B[1]],
    ),
}

_FREETTS_JARS = ["freetts", "cmu_us_kal", "cmulex", "en_us", "cmudict04", "cmutimelex"]


def speak_wide(text: str, voice: str, speed: int, tmp: Path, tempo: float = 1.0) -> np.ndarray:
    """One sentence from an "engine:voice[:pitch]" voice at ``speed`` words per minute (FreeTTS
    has one rate: sox's tempo stands in), times ``tempo`` (sox tempo: faster, same pitch)."""
    engine, name, *rest = voice.split(":")
    raw, out = tmp / "raw.wav", tmp / "out.wav"
    if engine == "espeak":
        pitch = rest[0] if rest else "50"
        subprocess.run(["espeak-ng", "-v", name, "-s", str(speed), "-p", pitch, "-w", str(raw), text], check=True)
    elif engine == "flite":
        # flite's voices speak about 165 words per minute; duration_stretch sets the rate, and
        # the pitch field (Hz) moves the voice's mean F0
        args = ["flite", "-voice", name, "--setf", f"duration_stretch={165 / speed:.3f}"]
        if rest:
            args += ["--setf", f"int_f0_target_mean={rest[0]}"]
        subprocess.run([*args, "-t", text, "-o", str(raw)], check=True)
    elif engine == "festival":
        subprocess.run(["text2wave", "-eval", f"(voice_{name})", "-o", str(raw)], input=text.encode(),
                       check=True, capture_output=True)
        tempo *= speed / 165
    elif engine == "freetts":
        cp = ":".join(f"/usr/share/java/{j}.jar" for j in _FREETTS_JARS)
        subprocess.run(["java", "-cp", cp, "com.sun.speech.freetts.FreeTTS", "-voice", name,
                        "-dumpAudio", str(raw), "-text", text], check=True, capture_output=True)
        tempo *= speed / 165  # its own rate is about 165 words per minute
    else:
        raise ValueError(f"unknown engine {engine!r}")
    effects = ["tempo", "-s", f"{tempo:.3f}"] if abs(tempo - 1.0) > 1e-3 else []
    subprocess.run(["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(out), *effects], check=True)
    audio, rate = sf.read(out, dtype="float32")
    assert rate == RATE
    return trim(audio)


def pink(rng: np.random.Generator, n: int) -> np.ndarray:
    """1/f noise: white noise shaped by 1/sqrt(f) in the frequency domain."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spec / np.sqrt(f), n)
    return (x / (x.std() + 1e-12)).astype(np.float32)


def babble(rng: np.random.Generator, n: int, tmp: Path) -> np.ndarray:
    """Four other people talking at once: non-command sentences by other voices, overlapped at
    random offsets (looped to length)."""
    voices = ["en-us+m2", "en-gb+f3", "en-us+m6", "en-us+f5"]
    sentences = NON_COMMANDS_A[:]
    mix = np.zeros(n, np.float32)
    for v in voices:
        text = " ".join(rng.choice(sentences, 3, replace=False))
        raw, out = tmp / "bab.wav", tmp / "bab16.wav"
        subprocess.run(["espeak-ng", "-v", v, "-s", str(int(rng.integers(140, 190))), "-w", str(raw), text], check=True)
        subprocess.run(["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(out)], check=True)
        a, _ = sf.read(out, dtype="float32")
        a = np.roll(np.resize(a, n), int(rng.integers(0, n)))
        mix += a / (a.std() + 1e-9)
    return (mix / (mix.std() + 1e-9)).astype(np.float32)


def music(rng: np.random.Generator, n: int) -> np.ndarray:
    """Synthetic music: a chord progression of harmonic tones with a soft beat."""
    t = np.arange(n) / RATE
    out = np.zeros(n)
    roots = [220.0, 174.6, 196.0, 261.6]
    bar = int(RATE * 0.8)
    for k in range(0, n, bar):
        root = roots[(k // bar + int(rng.integers(0, 4))) % 4]
        seg = slice(k, min(n, k + bar))
        for ratio in (1.0, 1.26, 1.5):
            for h in (1, 2, 3):
                out[seg] += np.sin(2 * np.pi * root * ratio * h * t[seg]) / h
        env = np.exp(-((t[seg] - t[k]) % 0.4) * 12)
        out[seg] += 0.5 * env * rng.standard_normal(len(env))  # a hi-hat-like beat
    return (out / (out.std() + 1e-12)).astype(np.float32)


def build_wide(split: str, out: Path) -> None:
    cfg = WIDE_SPLITS[split]
    rng = random.Random(cfg["seed"])
    nrng = np.random.default_rng(cfg["seed"])
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    items: list[tuple[str, list[str]]] = [*cfg["commands"], *((t, []) for t in cfg["non_commands"])]
    kinds = ["pink", "babble", "music"]
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        n = 0
        for idx, (text, expect) in enumerate(items):
            voice = cfg["voices"][idx % len(cfg["voices"])]
            speed = rng.choice(cfg["speeds"])
            kind, snr = kinds[idx % 3], [20.0, 15.0, 10.0][(idx // 3) % 3]
            for cond in ("clean", "fast", "noise"):
                speech = speak_wide(text, voice, speed, tmp, 1.12 if cond == "fast" else 1.0)
                lead = int(RATE * rng.uniform(0.3, 0.6))
                clip = np.concatenate([np.zeros(lead, np.float32), speech, np.zeros(int(RATE * 0.9), np.float32)])
                clip *= 0.5 / (np.abs(clip).max() + 1e-9) * rng.uniform(0.4, 1.0)
                if cond == "noise":
                    noise_fn = {"pink": lambda m: pink(nrng, m), "music": lambda m: music(nrng, m),
                                "babble": lambda m: babble(nrng, m, tmp)}[kind]
                    p_speech = np.mean(clip[lead : lead + len(speech)] ** 2)
                    clip = clip + noise_fn(len(clip)) * np.sqrt(p_speech / 10 ** (snr / 10))
                name = f"{split}_{n:04d}.wav"
                sf.write(out / name, np.clip(clip, -1, 1), RATE, subtype="PCM_16")
                rows.append(dict(
                    file=name, expect=expect, text=text, voice=voice, speed=speed,
                    snr_db=snr if cond == "noise" else None, noise=kind if cond == "noise" else None,
                    condition={"clean": "clean", "fast": "fast 1.12x", "noise": f"noise {snr:g} dB"}[cond],
                    speech_start_s=round(lead / RATE, 4), speech_end_s=round((lead + len(speech)) / RATE, 4),
                ))
                n += 1
        for k in range(cfg["noise_clips"]):
            kind = kinds[k % 3]
            m = int(RATE * 2.5)
            clip = {"pink": lambda: pink(nrng, m), "music": lambda: music(nrng, m),
                    "babble": lambda: babble(nrng, m, tmp)}[kind]() * rng.uniform(0.01, 0.08)
            name = f"{split}_{n:04d}.wav"
            sf.write(out / name, np.clip(clip, -1, 1), RATE, subtype="PCM_16")
            rows.append(dict(file=name, expect=[], text="", voice=f"noise:{kind}", speed=0, snr_db=None,
                             noise=kind, condition="noise only", speech_start_s=None, speech_end_s=None))
            n += 1
    with open(out / "manifest.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    print(f"{split}: {len(rows)} clips in {out}")


def keyword_end(text: str, voice: str, speed: int, tmp: Path, tempo: float, vocabulary: Any) -> float | None:
    """Seconds from the start of the spoken ``text`` to the end of its last keyword, when words
    follow it ("mountains please"); None when the keyword ends the sentence. Estimated as the
    sentence's duration less that of the words after the keyword spoken alone: a word said on
    its own is drawn out, so the estimate errs early, which makes latency from it read longer."""
    words = text.split()
    want = {k.word for k in vocabulary.match(text)}
    cut = next((k for k in range(1, len(words) + 1) if {w.word for w in vocabulary.match(" ".join(words[:k]))} >= want),
               len(words))
    if not want or cut == len(words):
        return None
    whole = len(speak_wide(text, voice, speed, tmp, tempo))
    after = len(speak_wide(" ".join(words[cut:]), voice, speed, tmp, tempo))
    return max(0.0, (whole - after) / RATE)


def add_keyword_ends(manifest: Path) -> None:
    """Adds ``keyword_end_s`` to a wide or voices manifest's command clips (`bench listen`
    measures the latency from it as well as from the end of speech)."""
    from synesthesia.intent import load_vocabulary

    vocabulary = load_vocabulary()
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    done: dict[tuple[str, str, int, float], float | None] = {}
    with tempfile.TemporaryDirectory() as td:
        for r in rows:
            if not r["expect"] or r.get("speech_start_s") is None:
                continue
            tempo = 1.12 if r["condition"].startswith("fast") else 1.0
            key = (r["text"], r["voice"], r["speed"], tempo)
            if key not in done:
                done[key] = keyword_end(r["text"], r["voice"], r["speed"], Path(td), tempo, vocabulary)
            after = done[key]
            r["keyword_end_s"] = r["speech_end_s"] if after is None else round(r["speech_start_s"] + after, 4)
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{manifest}: keyword_end_s on {sum('keyword_end_s' in r for r in rows)} clips "
          f"({sum(1 for r in rows if 'keyword_end_s' in r and r['keyword_end_s'] != r['speech_end_s'])} before the end of speech)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=sorted(SPLITS) + sorted(WIDE_SPLITS))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--keyword-ends", type=Path, metavar="MANIFEST",
                    help="add keyword_end_s to an existing wide or voices manifest (same tools as its split)")
    args = ap.parse_args()
    if args.keyword_ends is not None:
        add_keyword_ends(args.keyword_ends)
        return 0
    if args.split is None or args.out is None:
        ap.error("--split and --out are required (or --keyword-ends MANIFEST)")
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            print(f"{tool} not found: apt-get install espeak-ng sox", file=sys.stderr)
            return 1
    if args.split in WIDE_SPLITS:
        engines = {v.split(":")[0] for v in WIDE_SPLITS[args.split]["voices"]}
        for engine, tool, package in (("freetts", "java", "freetts"), ("flite", "flite", "flite"),
                                      ("festival", "text2wave", "festival festvox-us-slt-hts festvox-kallpc16k")):
            if engine in engines and shutil.which(tool) is None:
                print(f"{tool} not found: apt-get install {package}", file=sys.stderr)
                return 1
        build_wide(args.split, args.out)
        add_keyword_ends(args.out / "manifest.jsonl")
    else:
        build(args.split, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
