"""Hearing: audio sources, VAD, streaming recognizers and the listener that ties them together
(capture and listen stages; everything here also runs in-process for tests and the bench)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from synesthesia.hearing.listener import Listener, ListenerConfig
from synesthesia.hearing.recognizers import PocketSphinxConfig, PocketSphinxRecognizer, Recognizer, VoskRecognizer
from synesthesia.intent import Vocabulary

__all__ = ["build_listener", "build_recognizer"]


def build_recognizer(vocabulary: Vocabulary, *, vosk_model: str | Path | None = None,
                     min_posterior: float | None = None,
                     pocketsphinx: PocketSphinxConfig | None = None) -> Recognizer:
    """Vosk when a model directory is given, else pocketsphinx over the dictionary's forms.
    ``min_posterior`` turns on pocketsphinx's lattice pass and drops final command words whose
    posterior is below it (the strict operating point in bench/results/listen.md);
    ``pocketsphinx`` replaces the default settings (the bench's ``--set``)."""
    if vosk_model is not None:
        return VoskRecognizer(vosk_model, vocabulary.forms)
    cfg = pocketsphinx or PocketSphinxConfig()
    if min_posterior is not None:
        cfg = replace(cfg, bestpath=True, min_posterior=min_posterior)
    return PocketSphinxRecognizer(vocabulary.forms, cfg)


def build_listener(vocabulary: Vocabulary, *, config: ListenerConfig | None = None,
                   **recognizer_options: object) -> Listener:
    return Listener(build_recognizer(vocabulary, **recognizer_options), config=config)  # type: ignore[arg-type]
