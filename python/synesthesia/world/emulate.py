"""The `emulate` backend: the procedural world behind a configurable intent latency, so the
bench harness can reproduce a remote world model's "latent wall" (the reference system waited
1,274.8 ms, sigma 42.3 ms, for Odyssey) and show what our pipeline adds around a slow model.
Runs in the world stage process.

Frames keep flowing at the procedural world's pace; only the effect of each intent is delayed
by a latency drawn from the profile (seeded, so a bench run is repeatable).
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from synesthesia.world.base import DEFAULT_SIZE, Intent, WorldFrame, validate_intent
from synesthesia.world.procedural import VOCABULARY, ProceduralBackend

__all__ = ["LatencyProfile", "EmulatedBackend"]

Distribution = Literal["normal", "lognormal", "uniform", "constant"]


@dataclass(frozen=True)
class LatencyProfile:
    """Intent -> visible-change latency in milliseconds."""

    mean_ms: float = 1274.8
    std_ms: float = 42.3
    distribution: Distribution = "normal"

    def __post_init__(self) -> None:
        if not (self.mean_ms >= 0 and self.std_ms >= 0):
            raise ValueError(f"latency profile: mean and std must be >= 0, got {self.mean_ms}, {self.std_ms}")
        if self.distribution not in ("normal", "lognormal", "uniform", "constant"):
            raise ValueError(f"latency profile: unknown distribution {self.distribution!r}")

    def sample_ms(self, rng: np.random.Generator) -> float:
        m, s = self.mean_ms, self.std_ms
        if self.distribution == "constant" or s == 0:
            return m
        if self.distribution == "normal":
            return max(0.0, float(rng.normal(m, s)))
        if self.distribution == "uniform":
            half = s * 3**0.5  # same standard deviation as asked
            return max(0.0, float(rng.uniform(m - half, m + half)))
        # lognormal with the given mean and standard deviation
        if m <= 0:
            return 0.0
        sigma2 = np.log1p((s / m) ** 2)
        return float(rng.lognormal(np.log(m) - sigma2 / 2, np.sqrt(sigma2)))


class EmulatedBackend:
    name = "emulate"

    def __init__(
        self,
        width: int = DEFAULT_SIZE[0],
        height: int = DEFAULT_SIZE[1],
        seed: int = 0,
        profile: LatencyProfile | None = None,
        tau: float = 0.8,
        jump: float = 0.35,
        initial: Sequence[float] | None = None,
    ) -> None:
        self.inner = ProceduralBackend(width, height, seed, tau, jump, initial)
        self.width, self.height = width, height
        self.profile = profile or LatencyProfile()
        self._rng = np.random.default_rng(seed)
        self._due: list[tuple[int, int, Intent]] = []
        self._n = 0
        self._lock = threading.Lock()
        self._words = frozenset(VOCABULARY)
        #: trace id -> (received ns, applied ns), for the bench harness.
        self.timings: dict[str, tuple[int, int]] = {}

    def start(self, prompt: str = "") -> None:
        self.inner.start(prompt)

    def apply(self, intent: Intent) -> None:
        # Reject at once, as a remote model's client would on a malformed request.
        validate_intent(intent, self._words)
        delay_ns = int(self.profile.sample_ms(self._rng) * 1e6)
        # Intents without a publish time count from their arrival here.
        received = intent.t_ns or time.monotonic_ns()
        with self._lock:
            self._n += 1
            heapq.heappush(self._due, (received + delay_ns, self._n, intent))

    def _release(self, now_ns: int) -> None:
        while True:
            with self._lock:
                if not self._due or self._due[0][0] > now_ns:
                    return
                _, _, intent = heapq.heappop(self._due)
            self.inner.apply(intent)
            self.timings[intent.trace_id] = (intent.t_ns, now_ns)

    def feed_audio(self, samples: npt.NDArray[np.float32]) -> None:
        self.inner.feed_audio(samples)

    def poll(self, now_ns: int) -> WorldFrame:
        self._release(now_ns)
        return self.inner.poll(now_ns)

    def stop(self) -> None:
        self.inner.stop()
