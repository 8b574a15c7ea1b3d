"""The exception hierarchy every Synesthesia module raises from (any process)."""

from __future__ import annotations

__all__ = [
    "SynesthesiaError",
    "KernelArgumentError",
    "AudioSourceError",
    "RecognizerError",
    "VocabularyError",
]


class SynesthesiaError(Exception):
    """Base of every error Synesthesia raises on purpose."""


class KernelArgumentError(SynesthesiaError, ValueError):
    """An argument to a kernel is unusable. ``argument`` names it as the caller spelled it.

    Raised both by the Python facade (dtype, shape, types) and by the Rust core (ranges,
    table contents), so callers catch one class whichever layer noticed.
    """

    def __init__(self, message: str, argument: str) -> None:
        super().__init__(message)
        self.argument = argument


class AudioSourceError(SynesthesiaError):
    """An audio source cannot deliver usable audio: a missing or unreadable file, an empty or
    non-finite signal, no microphone. The message says what to use instead where it can."""


class RecognizerError(SynesthesiaError):
    """A speech recognizer or the VAD cannot be set up: a missing optional package, model
    directory or model file."""


class VocabularyError(SynesthesiaError, ValueError):
    """The keyword dictionary is malformed. The message names the entry and the key."""
