"""The exception hierarchy every Synesthesia module raises from (any process)."""

from __future__ import annotations

__all__ = ["SynesthesiaError", "KernelArgumentError"]


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
