"""The recognizer interface of the listen stage (runs in the listen process; in-process in tests
and the bench): what every recognizer (hearing/whisper.py, hearing/pocketsphinx.py,
hearing/vosk.py) is fed and returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["Hypothesis", "Recognizer", "pcm16"]


@dataclass(frozen=True, slots=True)
class Hypothesis:
    """A transcript: the command words only (garbage removed), and a confidence in 0..1."""

    text: str
    confidence: float


class Recognizer(Protocol):
    """Fed 16 kHz float32 audio chunk by chunk within an utterance (``start`` .. ``finish``)."""

    def new_stream(self) -> None: ...  # a new file or device: forget what adapted to the last one
    def start(self) -> None: ...
    def feed(self, audio: npt.NDArray[np.float32]) -> None: ...
    def partial(self, pausing: bool = False) -> Hypothesis | None: ...
    def finish(self) -> Hypothesis: ...


def pcm16(audio: npt.NDArray[np.float32]) -> bytes:
    """Float audio as little-endian 16-bit PCM bytes (what pocketsphinx and Vosk take)."""
    return (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
