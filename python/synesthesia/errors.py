"""The exception hierarchy every Synesthesia module raises from (any process)."""

from __future__ import annotations

__all__ = [
    "SynesthesiaError",
    "KernelArgumentError",
    "RingError",
    "RingLayoutError",
    "RingArgumentError",
    "RingBusyError",
    "MessageError",
    "RecordFormatError",
    "StreamConfigError",
    "WorldError",
    "IntentRejected",
    "BackendUnavailable",
    "BackendTimeout",
    "AudioSourceError",
    "RecognizerError",
    "VocabularyError",
    "SessionError",
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


class RingError(SynesthesiaError):
    """A shared-memory ring cannot be used as asked (see the subclasses)."""


class RingLayoutError(RingError):
    """An existing segment is not the ring the caller expects: bad magic, another layout
    version, another kind, or another slot size, slot count, shape or dtype."""


class RingArgumentError(RingError, ValueError):
    """An argument to a ring is unusable. ``argument`` names it as the caller spelled it."""

    def __init__(self, message: str, argument: str) -> None:
        super().__init__(message)
        self.argument = argument


class RingBusyError(RingError):
    """Another live process holds the ring's writer role. ``pid`` is that process."""

    def __init__(self, message: str, pid: int) -> None:
        super().__init__(message)
        self.pid = pid


class MessageError(SynesthesiaError, ValueError):
    """A control-plane message failed to decode or validate. ``reason`` is a short tag
    (``"oversized"``, ``"undecodable"``, ``"version"``, ``"invalid"``, ...) used as a counter key."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class RecordFormatError(SynesthesiaError, ValueError):
    """A packed JPEG record (jpeg ring slot) or its fields cannot be read or written."""


class StreamConfigError(SynesthesiaError, ValueError):
    """An encode or serve setting is unusable; the message names the setting and its value."""


class WorldError(SynesthesiaError):
    """A world backend failed (see the subclasses for the cases callers handle)."""


class IntentRejected(WorldError, ValueError):
    """An intent was refused; the world keeps its state. ``reason`` says why, for the log."""

    def __init__(self, reason: str, trace_id: str | None = None) -> None:
        super().__init__(f"intent {trace_id or '?'} rejected: {reason}")
        self.reason = reason
        self.trace_id = trace_id


class BackendUnavailable(WorldError, RuntimeError):
    """A backend's optional dependency, credentials or model file is missing."""


class BackendTimeout(WorldError, TimeoutError):
    """A backend call did not finish within its timeout."""


class AudioSourceError(SynesthesiaError):
    """An audio source cannot deliver usable audio: a missing or unreadable file, an empty or
    non-finite signal, no microphone. The message says what to use instead where it can."""


class StageFatalError(SynesthesiaError):
    """A stage's input or configuration cannot work, so restarting it would only repeat the error
    (a corrupt audio file, say): the stage exits with one line and the run ends with exit 1."""


class RecognizerError(SynesthesiaError):
    """A speech recognizer or the VAD cannot be set up: a missing optional package, model
    directory or model file."""


class VocabularyError(SynesthesiaError, ValueError):
    """The keyword dictionary is malformed. The message names the entry and the key."""


class SessionError(SynesthesiaError, ValueError):
    """A session log cannot be recorded, replayed or resumed as asked. ``field`` names the
    header field or argument at fault (``version``, ``vocabulary``, ``backend``, ...)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
