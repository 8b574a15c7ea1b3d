"""The Vosk (Kaldi) recognizer (runs in the listen process; in-process in tests and the bench):
optional (`pip install 'synesthesia[vosk]'`), over a model directory the user supplies."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from synesthesia.errors import RecognizerError
from synesthesia.hearing.base import Hypothesis, pcm16 as _pcm16

__all__ = ["VoskRecognizer"]


class VoskRecognizer:
    """Vosk (Kaldi) over a model directory the user supplies; nothing is downloaded."""

    def __init__(self, model_dir: str | Path, phrases: Iterable[str] | None = None) -> None:
        path = Path(model_dir)
        if not path.is_dir():
            raise RecognizerError(
                f"Vosk model directory not found: {path} (download a model from "
                "alphacephei.com/vosk/models and unpack it there; it is never fetched at run time)")
        if not (path / "am").is_dir() and not (path / "final.mdl").exists():
            raise RecognizerError(f"{path} does not look like a Vosk model directory (no am/ inside)")
        try:
            import vosk
        except ImportError:
            raise RecognizerError("Vosk is not installed: pip install 'synesthesia[vosk]'") from None
        vosk.SetLogLevel(-1)
        try:
            self._model = vosk.Model(str(path))
        except Exception as e:  # vosk raises a bare Exception when Kaldi cannot load the model
            raise RecognizerError(f"Vosk cannot load the model in {path}: {e}") from None
        self._vosk = vosk
        self._phrases = sorted(set(phrases)) if phrases else None
        self._rec: Any = None

    def new_stream(self) -> None:
        pass  # each utterance gets a fresh KaldiRecognizer in `start`: nothing carries over

    def start(self) -> None:
        if self._phrases:
            grammar = json.dumps([*self._phrases, "[unk]"])
            self._rec = self._vosk.KaldiRecognizer(self._model, 16000, grammar)
        else:
            self._rec = self._vosk.KaldiRecognizer(self._model, 16000)
        self._rec.SetWords(True)

    def feed(self, audio: npt.NDArray[np.float32]) -> None:
        if self._rec is None:
            self.start()
        self._rec.AcceptWaveform(_pcm16(audio))

    def partial(self, pausing: bool = False) -> Hypothesis | None:
        if self._rec is None:
            return None
        text = json.loads(self._rec.PartialResult()).get("partial", "").replace("[unk]", "").strip()
        return Hypothesis(" ".join(text.split()), 0.5) if text else None

    def finish(self) -> Hypothesis:
        if self._rec is None:
            return Hypothesis("", 0.0)
        res = json.loads(self._rec.FinalResult())
        self._rec = None
        words = [w for w in res.get("result", []) if w.get("word") != "[unk]"]
        if not words:
            return Hypothesis("", 0.0)
        conf = math.fsum(float(w.get("conf", 0.0)) for w in words) / len(words)
        return Hypothesis(" ".join(w["word"] for w in words), conf)
