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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=sorted(SPLITS), required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            print(f"{tool} not found: apt-get install espeak-ng sox", file=sys.stderr)
            return 1
    build(args.split, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
