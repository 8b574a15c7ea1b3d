"""The embedded default world: a scene state steered by the vocabulary and rendered by the Rust
core, with the spectral pulse of the newest audio moving the picture. Runs in the world stage
process; no network, no GPU.

Deterministic: the same seed, start state and sequence of (intent, elapsed time) give the same
frames, so a session replays from its intent log (:meth:`ProceduralBackend.replay_frame`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from synesthesia import _native
from synesthesia.errors import IntentRejected, KernelArgumentError
from synesthesia.world.base import DEFAULT_SIZE, Intent, Marks, WorldFrame, validate_intent

__all__ = [
    "VOCABULARY",
    "CATEGORIES",
    "STATE_NAMES",
    "START_WORDS",
    "ProceduralBackend",
    "SteeredScene",
    "render_state",
    "settled_snapshot",
    "spectral_pulse",
    "word_visibility",
]

#: Every word the procedural world understands, in vocabulary order.
VOCABULARY: tuple[str, ...] = tuple(w for w, _ in _native.world_vocabulary())
#: word -> category (scene, weather, time, effect, tempo, colour).
CATEGORIES: dict[str, str] = dict(_native.world_vocabulary())
#: Names of the scene state vector's entries (also the onnx backend's conditioning layout).
STATE_NAMES: tuple[str, ...] = tuple(_native.world_state_names())
_WORDS = frozenset(VOCABULARY)
#: Words the start scene (mountains at sunset) already shows: saying them changes nothing.
START_WORDS: tuple[str, ...] = ("mountains", "sunset")
_PULSE_SAMPLES = 1024


def spectral_pulse(samples: npt.NDArray[np.float32], sample_rate: int = 16000) -> list[float]:
    """Energy of the newest audio in four bands (then overall level), each in [0, 1]."""
    x = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
    return _native.spectral_pulse(x, sample_rate)


def render_state(
    state: Sequence[float],
    t: float,
    size: tuple[int, int] = DEFAULT_SIZE,
    seed: int = 0,
    pulse: Sequence[float] | None = None,
    out: npt.NDArray[np.uint8] | None = None,
) -> npt.NDArray[np.uint8]:
    """Render one state at world time ``t`` (seconds). ``out`` (H, W, 3) uint8 is filled in place."""
    w, h = size
    if out is None:
        out = np.empty((h, w, 3), dtype=np.uint8)
    _native.WorldRenderer(seed).render_into(out, list(state), t, None if pulse is None else list(pulse))
    return out


class SteeredScene:
    """The eased scene state the local backends steer (procedural renders it, onnx conditions a
    model on it): intents move its target, and each poll advances it by the time elapsed and
    takes the trace marks of the frame about to be made. Thread-safe.

    ``tau`` is the transition time constant (seconds); ``jump`` the fraction of a transition
    taken at once so the very next frame shows the intent."""

    def __init__(self, tau: float, jump: float, initial: Sequence[float] | None = None) -> None:
        self._scene = _native.WorldScene(tau, jump, None if initial is None else list(initial))
        self._lock = threading.Lock()
        self._marks = Marks()
        self._last_ns: int | None = None

    def start(self, prompt: str = "") -> None:
        # The start prompt steers like any intent; words outside the vocabulary are ignored
        # here (a free-text prompt is normal) rather than refused.
        from synesthesia.world.words import keywords_from_text

        words = keywords_from_text(prompt)
        if words:
            with self._lock:
                self._scene.apply(list(words.items()))
                self._scene.settle()

    def apply(self, intent: Intent) -> None:
        validate_intent(intent, _WORDS)
        with self._lock:
            try:
                self._scene.apply([(w, float(x)) for w, x in intent.keywords.items()])
            except KernelArgumentError as e:
                raise IntentRejected(str(e), intent.trace_id) from e
            self._marks.add(intent.trace_id)

    def advance(self, now_ns: int) -> tuple[list[float], float, tuple[str, ...], tuple[str, ...]]:
        """Ease by the time since the last call; (state, world time, first_for, reflects)."""
        with self._lock:
            if self._last_ns is not None:
                self._scene.advance(max(0.0, (now_ns - self._last_ns) / 1e9))
            self._last_ns = now_ns
            first_for, reflects = self._marks.take()
            return self._scene.current(), self._scene.world_time(), first_for, reflects

    def now(self) -> tuple[list[float], float]:
        """(state, world time) without advancing."""
        with self._lock:
            return self._scene.current(), self._scene.world_time()

    def target(self) -> list[float]:
        with self._lock:
            return self._scene.target()

    def settle(self) -> None:
        with self._lock:
            self._scene.settle()

    def set_world_time(self, t: float) -> None:
        with self._lock:
            self._scene.set_world_time(t)

    def rebase(self) -> None:
        """Forget when the last advance was, so the next one starts the clock afresh (a session
        resumed later continues from its state, not from the wall time that passed)."""
        with self._lock:
            self._last_ns = None


class ProceduralBackend:
    """Scene state + renderer behind the backend interface.

    ``tau`` is the transition time constant (seconds); ``jump`` the fraction of a transition
    taken at once so the very next frame shows the intent.
    """

    name = "procedural"

    def __init__(
        self,
        width: int = DEFAULT_SIZE[0],
        height: int = DEFAULT_SIZE[1],
        seed: int = 0,
        tau: float = 0.8,
        jump: float = 0.35,
        initial: Sequence[float] | None = None,
    ) -> None:
        if width < 32 or height < 32:
            raise KernelArgumentError(f"size: must be at least 32x32, got {width}x{height}", "size")
        self.width, self.height, self.seed = width, height, seed
        self.tau, self.jump = tau, jump
        self._steer = SteeredScene(tau, jump, initial)
        self._renderer = _native.WorldRenderer(seed)
        self._lock = threading.Lock()  # the audio window
        self._audio = np.zeros(_PULSE_SAMPLES, dtype=np.float32)
        self._audio_fresh = False
        self._seq = 0
        self._buffers = [np.empty((height, width, 3), dtype=np.uint8) for _ in range(2)]

    # --- interface -------------------------------------------------------------------------
    def start(self, prompt: str = "") -> None:
        self._steer.start(prompt)

    def apply(self, intent: Intent) -> None:
        self._steer.apply(intent)

    def feed_audio(self, samples: npt.NDArray[np.float32]) -> None:
        x = np.asarray(samples, dtype=np.float32).reshape(-1)[-_PULSE_SAMPLES:]
        with self._lock:
            self._audio = np.concatenate([self._audio[len(x) :], x])
            self._audio_fresh = True

    def poll(self, now_ns: int) -> WorldFrame:
        state, t, first_for, reflects = self._steer.advance(now_ns)
        with self._lock:
            pulse = spectral_pulse(self._audio) if self._audio_fresh else None
        # Two buffers alternate so a consumer holding the previous frame never sees it change.
        out = self._buffers[self._seq % 2]
        self._renderer.render_into(out, state, t, pulse)
        self._seq += 1
        return WorldFrame(out, self._seq, now_ns, first_for, reflects, {"world_time": t, "pulse": pulse})

    def stop(self) -> None:
        pass

    # --- inspection --------------------------------------------------------------------------
    @property
    def scene(self) -> SteeredScene:
        """The steered scene (session replay and resume drive it directly)."""
        return self._steer

    def state(self) -> dict[str, float]:
        return dict(zip(STATE_NAMES, self._steer.now()[0]))

    def target(self) -> dict[str, float]:
        return dict(zip(STATE_NAMES, self._steer.target()))

    def settle(self) -> None:
        self._steer.settle()

    def set_world_time(self, t: float) -> None:
        """Move world time (seconds) without easing: previews pick a moment, replays resume."""
        self._steer.set_world_time(t)

    def replay_frame(self) -> npt.NDArray[np.uint8]:
        """A fresh copy of the frame for the current state, without advancing time."""
        state, t = self._steer.now()
        return render_state(state, t, (self.width, self.height), self.seed)


def settled_snapshot(
    keywords: dict[str, float], size: tuple[int, int] = (640, 352), seed: int = 0, t: float | None = None
) -> npt.NDArray[np.uint8]:
    """The frame of the scene ``keywords`` settle into from the start scene, at world time ``t``
    (default: the snapshot command's moment)."""
    from synesthesia.cli.snapshot import SNAPSHOT_TIME

    world = ProceduralBackend(size[0], size[1], seed=seed)
    if keywords:
        world.apply(Intent(keywords=keywords, prompt=" ".join(keywords), trace_id="snapshot"))
    world.settle()
    world.set_world_time(SNAPSHOT_TIME if t is None else t)
    return world.replay_frame()


def word_visibility(size: tuple[int, int] = (640, 352), seed: int = 0) -> dict[str, float]:
    """How far each vocabulary word, said once at its dictionary weight, moves the start scene:
    the mean absolute difference (0-255, over every pixel and channel) between the settled
    snapshots with and without it."""
    from synesthesia.world.words import keywords_from_text

    start = settled_snapshot({}, size, seed).astype(np.int16)
    out: dict[str, float] = {}
    for word in VOCABULARY:
        weight = keywords_from_text(word).get(word, 1.0)
        moved = settled_snapshot({word: weight}, size, seed).astype(np.int16)
        out[word] = float(np.abs(moved - start).mean())
    return out
