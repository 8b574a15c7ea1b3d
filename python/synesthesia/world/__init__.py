"""The world: backends that turn intents into frames, and the pacer that publishes them at a
steady rate. Domain logic of the world stage process; importable in-process for tests, the
bench and the snapshot command.

Backends: ``procedural`` (default, Rust-rendered, no network or GPU), ``emulate`` (procedural
behind a remote model's latency), ``onnx`` (a user's generator model), ``odyssey`` (the remote
Odyssey SDK). The optional ones import their dependencies only when created.
"""

from __future__ import annotations

from typing import Any

from synesthesia.world.base import (
    DEFAULT_SIZE,
    FrameSink,
    Intent,
    LatestFrame,
    WorldBackend,
    WorldFrame,
    validate_intent,
)
from synesthesia.world.pacer import Pacer, PacerStats
from synesthesia.world.procedural import (
    CATEGORIES,
    STATE_NAMES,
    VOCABULARY,
    ProceduralBackend,
    render_state,
    spectral_pulse,
)

__all__ = [
    "BACKENDS",
    "CATEGORIES",
    "DEFAULT_SIZE",
    "FrameSink",
    "Intent",
    "LatestFrame",
    "Pacer",
    "PacerStats",
    "ProceduralBackend",
    "STATE_NAMES",
    "VOCABULARY",
    "WorldBackend",
    "WorldFrame",
    "create_backend",
    "render_state",
    "spectral_pulse",
    "validate_intent",
]

BACKENDS = ("procedural", "emulate", "onnx", "odyssey")


def create_backend(name: str, **options: Any) -> WorldBackend:
    """Build a backend by name; ``options`` go to its constructor."""
    if name == "procedural":
        return ProceduralBackend(**options)
    if name == "emulate":
        from synesthesia.world.emulate import EmulatedBackend

        return EmulatedBackend(**options)
    if name == "onnx":
        from synesthesia.world.onnx import OnnxBackend

        return OnnxBackend(**options)
    if name == "odyssey":
        from synesthesia.world.odyssey import OdysseyBackend

        return OdysseyBackend(**options)
    raise ValueError(f"backend: unknown {name!r}; expected one of {', '.join(BACKENDS)}")
