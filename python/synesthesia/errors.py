"""The exception hierarchy every Synesthesia module raises from (any process)."""

from __future__ import annotations

__all__ = [
    "SynesthesiaError",
    "KernelArgumentError",
    "WorldError",
    "IntentRejected",
    "BackendUnavailable",
    "BackendTimeout",
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
