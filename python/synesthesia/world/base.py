"""The world backend interface: intents in, RGB frames out, each frame saying which intents it
reflects. Runs in the world stage process (and in-process in tests, benchmarks and snapshot).

A backend is polled: ``poll(now_ns)`` returns the newest frame it has, or ``None`` when it has
nothing new since the last poll. Render-on-demand backends (procedural, onnx, emulate) render
inside ``poll``; streaming backends (odyssey) keep the newest frame their SDK delivered in a
:class:`LatestFrame` slot. The :class:`~synesthesia.world.pacer.Pacer` turns either into a
steady cadence.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from synesthesia.errors import IntentRejected

__all__ = [
    "DEFAULT_SIZE",
    "MAX_PROMPT_CHARS",
    "MAX_KEYWORDS",
    "Intent",
    "WorldFrame",
    "FrameSink",
    "WorldBackend",
    "LatestFrame",
    "validate_intent",
]

#: (width, height) of the reference world model's frames.
DEFAULT_SIZE = (1280, 704)
MAX_PROMPT_CHARS = 2000
MAX_KEYWORDS = 32

Frame = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Intent:
    """What the listener asked for. Field names follow the bus's intent message.

    ``keywords`` maps vocabulary words to weights in (0, 1]; ``prompt`` is the text a
    prompt-driven model gets; ``t_ns`` is the monotonic time the intent was published.
    """

    keywords: Mapping[str, float]
    prompt: str = ""
    trace_id: str = ""
    t_ns: int = 0


@dataclass
class WorldFrame:
    """One frame from a backend, with the trace ids it answers to."""

    pixels: Frame
    #: The backend's own frame counter (gaps mean frames the caller never saw).
    seq: int
    #: Monotonic time the frame was produced.
    t_ns: int
    #: Intents this frame is the first to show (mark for tracing).
    first_for: tuple[str, ...] = ()
    #: Every intent already reflected (the most recent few).
    reflects: tuple[str, ...] = ()
    extra: dict[str, object] = field(default_factory=dict)


@runtime_checkable
class FrameSink(Protocol):
    """Where paced frames go: the frame ring in the stage, a list in tests."""

    def put(self, frame: Frame, meta: Mapping[str, object]) -> None: ...


@runtime_checkable
class WorldBackend(Protocol):
    name: str
    width: int
    height: int

    def start(self, prompt: str = "") -> None: ...

    def apply(self, intent: Intent) -> None:
        """Steer toward ``intent``; raise :class:`IntentRejected` (state unchanged) if unusable."""
        ...

    def feed_audio(self, samples: npt.NDArray[np.float32]) -> None:
        """The newest 16 kHz mono samples, for backends that react to sound directly."""
        ...

    def poll(self, now_ns: int) -> WorldFrame | None: ...

    def stop(self) -> None: ...


def validate_intent(intent: object, vocabulary: frozenset[str] | None) -> Intent:
    """Return ``intent`` if usable, else raise :class:`IntentRejected` naming the first problem.

    ``vocabulary`` None accepts any word (prompt-driven backends).
    """
    if not isinstance(intent, Intent):
        raise IntentRejected(f"expected an Intent, got {type(intent).__name__}")
    tid = intent.trace_id if isinstance(intent.trace_id, str) else None
    if not isinstance(intent.keywords, Mapping):
        raise IntentRejected("keywords must be a mapping of word to weight", tid)
    if len(intent.keywords) > MAX_KEYWORDS:
        raise IntentRejected(f"too many keywords ({len(intent.keywords)} > {MAX_KEYWORDS})", tid)
    if not isinstance(intent.prompt, str):
        raise IntentRejected("prompt must be a string", tid)
    if len(intent.prompt) > MAX_PROMPT_CHARS:
        raise IntentRejected(f"prompt too long ({len(intent.prompt)} > {MAX_PROMPT_CHARS} characters)", tid)
    if not intent.keywords and not intent.prompt.strip():
        raise IntentRejected("empty intent: no keywords and no prompt", tid)
    for word, weight in intent.keywords.items():
        if not isinstance(word, str):
            raise IntentRejected(f"keyword {word!r} is not a string", tid)
        if vocabulary is not None and word not in vocabulary:
            raise IntentRejected(f"unknown word {word!r}", tid)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise IntentRejected(f"weight of {word!r} is not a number", tid)
        if not math.isfinite(weight) or not 0.0 < weight <= 1.0:
            raise IntentRejected(f"weight of {word!r} must be in (0, 1], got {weight}", tid)
    return intent


class Marks:
    """Trace ids waiting for their first frame, and the ones already shown (thread-safe)."""

    def __init__(self, keep: int = 8) -> None:
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._shown: list[str] = []
        self._keep = keep

    def add(self, trace_id: str) -> None:
        if trace_id:
            with self._lock:
                self._pending.append(trace_id)

    def take(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(first_for, reflects) for the frame about to be produced."""
        with self._lock:
            first = tuple(self._pending)
            self._pending.clear()
            self._shown = (self._shown + list(first))[-self._keep :]
            return first, tuple(self._shown)


class LatestFrame:
    """A one-frame slot for streaming backends: the producer overwrites, the poller takes.

    Marks of a frame overwritten before anyone took it move to the frame that replaced it, so
    "first frame after the intent" survives drops.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frame: WorldFrame | None = None
        self.overwritten = 0

    def put(self, frame: WorldFrame) -> None:
        with self._lock:
            old = self._frame
            if old is not None:
                self.overwritten += 1
                if old.first_for:
                    frame.first_for = old.first_for + tuple(t for t in frame.first_for if t not in old.first_for)
            self._frame = frame

    def take(self) -> WorldFrame | None:
        with self._lock:
            frame, self._frame = self._frame, None
            return frame
