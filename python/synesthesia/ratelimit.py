"""Rate limits shared by the stages: a token bucket (per viewer prompts) and a logging filter
that lets a repeated line through a few times per window, then counts it (any process).

A hostile or broken peer can make the engine log a line per message; without a limit, 5000
malformed messages a second write 5000 lines a second to the supervisor's terminal and the bus.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["TokenBucket", "RepeatFilter"]


class TokenBucket:
    """``rate`` events per second on average, bursts of up to ``burst``."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1, got {rate}, {burst}")
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens = burst
        self.stamp = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class RepeatFilter(logging.Filter):
    """Passes at most ``burst`` records per message template (logger and format string) per
    ``window_s``; the first record after a window with suppressed ones says how many were held
    back. Thread-safe; the state is bounded (the oldest templates are forgotten)."""

    def __init__(self, burst: int = 20, window_s: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 1024) -> None:
        super().__init__()
        self.burst, self.window_s, self.clock, self.max_keys = burst, window_s, clock, max_keys
        self._seen: dict[tuple[str, str], list[float]] = {}  # key -> [window start, passed, suppressed]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = self.clock()
        with self._lock:
            entry = self._seen.get(key)
            if entry is None or now - entry[0] >= self.window_s:
                held = int(entry[2]) if entry is not None else 0
                if entry is None and len(self._seen) >= self.max_keys:
                    self._seen.pop(next(iter(self._seen)))
                self._seen[key] = [now, 1, 0]
                if held:
                    record.msg = f"{record.msg} ({held} similar lines suppressed in the last {self.window_s:g} s)"
                return True
            if entry[1] < self.burst:
                entry[1] += 1
                return True
            entry[2] += 1
            return False
