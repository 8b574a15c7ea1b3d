"""Restart policy for one stage: exponential backoff, then FATAL by restart intensity.

The two rules people know: supervisord's backoff (wait longer after each quick crash) and
Erlang/OTP's intensity (more than `max_restarts` restarts within `window_s` means the stage
cannot be kept alive, so stop trying). Pure logic, no processes, so it is tested on its own.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Decision:
    """What to do after a stage exited: restart after `delay_s`, or give up (`fatal`)."""

    fatal: bool
    delay_s: float = 0.0
    reason: str = ""


@dataclass
class RestartPolicy:
    backoff_s: float = 0.1
    backoff_max_s: float = 5.0
    max_restarts: int = 5
    window_s: float = 30.0
    # A stage that stayed up this long is considered healthy again: its backoff resets.
    stable_after_s: float = 10.0
    _restarts: deque[float] = field(default_factory=deque, repr=False)
    _streak: int = 0

    def __post_init__(self) -> None:
        if self.backoff_s < 0 or self.backoff_max_s < self.backoff_s:
            raise ValueError("backoff_s must be >= 0 and <= backoff_max_s")
        if self.max_restarts < 0 or self.window_s <= 0:
            raise ValueError("max_restarts must be >= 0 and window_s > 0")

    @property
    def restarts(self) -> int:
        """Restarts inside the current window."""
        return len(self._restarts)

    def on_exit(self, now: float, uptime_s: float) -> Decision:
        """The stage's process ended at monotonic time `now` after running `uptime_s`."""
        while self._restarts and now - self._restarts[0] > self.window_s:
            self._restarts.popleft()
        if uptime_s >= self.stable_after_s:
            self._streak = 0
        if len(self._restarts) >= self.max_restarts:
            return Decision(
                fatal=True,
                reason=f"{len(self._restarts)} restarts within {self.window_s:g} s (limit {self.max_restarts})",
            )
        delay = min(self.backoff_max_s, self.backoff_s * (2 ** (self._streak - 1))) if self._streak else 0.0
        self._streak += 1
        self._restarts.append(now)
        return Decision(fatal=False, delay_s=delay)
