"""The exception hierarchy every Synesthesia module raises from (any process)."""

from __future__ import annotations

__all__ = ["SynesthesiaError", "KernelArgumentError", "RecordFormatError", "StreamConfigError"]


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


class RecordFormatError(SynesthesiaError, ValueError):
    """A packed JPEG record (jpeg ring slot) or its fields cannot be read or written."""


class StreamConfigError(SynesthesiaError, ValueError):
    """An encode or serve setting is unusable; the message names the setting and its value."""
