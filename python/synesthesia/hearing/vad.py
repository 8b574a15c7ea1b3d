"""Voice activity detection for the listen stage (runs in the listen process; in-process in tests
and the bench): silero VAD's ONNX model run directly by onnxruntime on one thread, and an
endpointer that turns per-window speech probabilities into speech start / end decisions.

The `silero-vad` package is installed without its dependencies only to carry the ONNX file; its
Python code imports torch, so it is never imported: the file is located through the package's
installed-file metadata.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from synesthesia.errors import RecognizerError

__all__ = ["WINDOW", "silero_model_path", "SileroVAD", "Endpointer", "EndpointerConfig"]

WINDOW = 512  # samples at 16 kHz, the only window size the 16 kHz model accepts
_CONTEXT = 64  # the model expects the previous window's last 64 samples in front of each window


def silero_model_path() -> Path:
    """Path of ``silero_vad.onnx`` inside the installed silero-vad distribution."""
    try:
        files = importlib.metadata.files("silero-vad") or []
    except importlib.metadata.PackageNotFoundError:
        raise RecognizerError(
            "the silero-vad package is not installed (pip install --no-deps silero-vad); "
            "it carries the VAD's ONNX model"
        ) from None
    for f in files:
        if f.name == "silero_vad.onnx":
            path = Path(str(f.locate()))
            if path.is_file():
                return path
    raise RecognizerError("silero_vad.onnx is missing from the installed silero-vad package")


class SileroVAD:
    """Speech probability per 512-sample window, with the recurrent state carried between calls
    (call `reset` between unrelated streams)."""

    def __init__(self, model_path: str | Path | None = None, threads: int = 1) -> None:
        import onnxruntime as ort

        path = Path(model_path) if model_path is not None else silero_model_path()
        if not path.is_file():
            raise RecognizerError(f"VAD model not found: {path}")
        opts = ort.SessionOptions()
        # One thread each way: the window is tiny, and thread hand-offs would cost more than the
        # math while competing with the recognizer for the listen process's core.
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(str(path), sess_options=opts,
                                             providers=["CPUExecutionProvider"])
        self._sr = np.array(16000, dtype=np.int64)
        self._input = np.zeros((1, _CONTEXT + WINDOW), np.float32)
        self.reset()

    def reset(self) -> None:
        self._state: Any = np.zeros((2, 1, 128), np.float32)
        self._input[:] = 0.0

    def __call__(self, window: npt.NDArray[np.float32]) -> float:
        if window.shape != (WINDOW,):
            raise ValueError(f"the VAD takes windows of {WINDOW} samples, got shape {window.shape}")
        buf = self._input
        buf[0, :_CONTEXT] = buf[0, -_CONTEXT:]
        buf[0, _CONTEXT:] = window
        out, self._state = self._session.run(None, {"input": buf, "state": self._state, "sr": self._sr})
        return float(out[0, 0])


@dataclass(frozen=True)
class EndpointerConfig:
    """``threshold``: probability that counts as speech; speech ends after ``min_silence_ms`` of
    windows below ``threshold - hysteresis``; a start needs ``min_speech_ms`` of speech windows
    (so a click or a breath does not open an utterance)."""

    threshold: float = 0.5
    hysteresis: float = 0.15
    min_speech_ms: int = 64
    min_silence_ms: int = 64
    # `pausing` below this: silero's probability sags from ~1.0 as soon as speech stops, well
    # before it crosses the end threshold (tune split: 0.5 / 0.8 / 0.9 / 0.95 / 0.99 gave early
    # intents p95 143 / 133 / 125 / 116 / 109 ms and 46 / 47 / 48 / 49 / 56 of 280 command clips
    # with some published wrong keyword)
    pause_threshold: float = 0.9


class Endpointer:
    """Speech start / end decisions over a stream of window probabilities. `update` returns
    "start", "end" or None; positions are in windows since the last `reset`."""

    def __init__(self, config: EndpointerConfig | None = None) -> None:
        self.config = config or EndpointerConfig()
        ms_per_window = WINDOW * 1000 / 16000
        self._need_speech = max(1, round(self.config.min_speech_ms / ms_per_window))
        self._need_silence = max(1, round(self.config.min_silence_ms / ms_per_window))
        self.reset()

    def reset(self) -> None:
        self.in_speech = False
        self._run = 0
        self._last = 0.0

    @property
    def pausing(self) -> bool:
        """In speech, and the last window's probability was under ``pause_threshold`` (the
        utterance may be ending; `update` says "end" once the silence has lasted long enough)."""
        return self.in_speech and self._last < self.config.pause_threshold

    def update(self, p: float) -> str | None:
        c = self.config
        self._last = p
        if not self.in_speech:
            self._run = self._run + 1 if p >= c.threshold else 0
            if self._run >= self._need_speech:
                self.in_speech, self._run = True, 0
                return "start"
            return None
        self._run = self._run + 1 if p < c.threshold - c.hysteresis else 0
        if self._run >= self._need_silence:
            self.in_speech, self._run = False, 0
            return "end"
        return None
