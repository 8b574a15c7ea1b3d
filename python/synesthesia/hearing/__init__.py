"""Hearing: audio sources, VAD, streaming recognizers and the listener that ties them together
(capture and listen stages; everything here also runs in-process for tests and the bench)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from synesthesia.hearing.listener import Listener, ListenerConfig
from synesthesia.errors import RecognizerError
from synesthesia.hearing.recognizers import PocketSphinxConfig, PocketSphinxRecognizer, Recognizer, VoskRecognizer
from synesthesia.intent import Vocabulary

__all__ = ["build_listener", "build_recognizer", "listener_defaults", "RECOGNIZERS"]

RECOGNIZERS = ("whisper", "pocketsphinx", "vosk")

if TYPE_CHECKING:
    from synesthesia.hearing.whisper import WhisperConfig


def build_recognizer(vocabulary: Vocabulary, *, recognizer: str | None = None,
                     vosk_model: str | Path | None = None,
                     min_posterior: float | None = None,
                     pocketsphinx: PocketSphinxConfig | None = None,
                     whisper: WhisperConfig | None = None) -> Recognizer:
    """The recognizer named (default: Whisper; Vosk when only a model directory is given).
    ``min_posterior`` turns on pocketsphinx's lattice pass and drops final command words whose
    posterior is below it (the strict operating point in bench/results/listen.md);
    ``pocketsphinx`` / ``whisper`` replace their default settings (the bench's ``--set``)."""
    if recognizer is None:
        recognizer = "vosk" if vosk_model is not None else "whisper"
    if recognizer not in RECOGNIZERS:
        raise RecognizerError(f"unknown recognizer {recognizer!r}: expected one of {', '.join(RECOGNIZERS)}")
    if vosk_model is not None and recognizer != "vosk":
        raise RecognizerError(f"a Vosk model directory is set ({vosk_model}) but the recognizer is {recognizer}: "
                              "set listen.recognizer = \"vosk\" (--recognizer vosk) or drop listen.vosk_model")
    if recognizer == "whisper":
        from synesthesia.hearing.whisper import WhisperRecognizer

        return WhisperRecognizer(vocabulary.forms, whisper)
    if recognizer == "vosk":
        if vosk_model is None:
            raise RecognizerError("the vosk recognizer needs a model directory: --config listen.vosk_model=DIR")
        return VoskRecognizer(vosk_model, vocabulary.forms)
    cfg = pocketsphinx or PocketSphinxConfig()
    if min_posterior is not None:
        cfg = replace(cfg, bestpath=True, min_posterior=min_posterior)
    return PocketSphinxRecognizer(vocabulary.forms, cfg)


def listener_defaults(recognizer: str) -> ListenerConfig:
    """The listener settings tuned for a recognizer. Whisper's hypotheses are already stable
    (two decodes agreed on them, see hearing/whisper.py), so its partials need no second
    agreement in the listener and may raise early intents mid-speech, not only at pauses."""
    if recognizer == "whisper":
        return ListenerConfig(stable_partials=1, pause_stable_partials=1, partials_at_pauses_only=False,
                              pause_drop_db=25.0, pause_floor_db=6.0)
    return ListenerConfig()


def build_listener(vocabulary: Vocabulary, *, config: ListenerConfig | None = None,
                   **recognizer_options: object) -> Listener:
    rec = build_recognizer(vocabulary, **recognizer_options)  # type: ignore[arg-type]
    if config is None:
        from synesthesia.hearing.whisper import WhisperRecognizer

        config = listener_defaults("whisper" if isinstance(rec, WhisperRecognizer) else "other")
    return Listener(rec, config=config)
