"""A watcher owns one stage's OS process: spawn, liveness, memory, restart and stop.

Runs in the supervisor process. Each stage is started with the `spawn` start method (a fresh
interpreter: no inherited locks, sockets or half-copied rings) at `synesthesia.stages.host`,
which imports the stage module by name. The watcher never blocks: `poll()` is called by the
arbiter's loop and returns what happened.
"""

from __future__ import annotations

import enum
import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any

from synesthesia.stages.host import FATAL_EXIT
from synesthesia.supervisor.policy import RestartPolicy

__all__ = ["StageSpec", "StageState", "Watcher", "rss_mb"]

_PAGE = os.sysconf("SC_PAGE_SIZE")


class StageState(str, enum.Enum):
    STARTING = "starting"  # spawned, no heartbeat yet
    RUNNING = "running"
    BACKOFF = "backoff"  # exited; waiting to restart
    FAILED = "failed"  # gave up (restart intensity)
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(frozen=True)
class StageSpec:
    """What to run: `module` is a `synesthesia.stages.*` module with `main(ctx)`."""

    name: str
    module: str
    critical: bool = True  # the loop cannot live without it: FAILED stops the run
    depends_on: tuple[str, ...] = ()  # stopped after these... reversed: dependents stop first
    args: dict[str, Any] = field(default_factory=dict)


def rss_mb(pid: int) -> float | None:
    """Resident memory of `pid` in MiB, None when it is gone."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * _PAGE / (1 << 20)
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Watcher:
    spec: StageSpec
    policy: RestartPolicy
    # Called as target(*target_args) in the child (via spawn).
    target: Callable[..., Any]
    target_args: tuple[Any, ...]
    heartbeat_timeout_s: float = 2.0
    start_timeout_s: float = 20.0
    memory_warn_mb: float = 1024
    memory_kill_mb: float = 4096
    log: Callable[[str, str], None] = lambda level, text: None

    state: StageState = StageState.STOPPED
    process: BaseProcess | None = None
    restarts_total: int = 0
    started_at: float = 0.0
    last_heartbeat: float = 0.0
    last_status: dict[str, Any] = field(default_factory=dict)
    fail_reason: str = ""
    #: It exited with FATAL_EXIT: it gave up on its own, and the run cannot go on as asked.
    fatal: bool = False
    _restart_at: float = 0.0
    _warned_memory: bool = False

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> None:
        ctx = mp.get_context("spawn")
        self.process = ctx.Process(target=self.target, args=self.target_args, name=f"synesthesia-{self.name}", daemon=False)
        self.process.start()
        self.started_at = time.monotonic()
        self.last_heartbeat = 0.0
        self._warned_memory = False
        self.state = StageState.STARTING
        self.log("info", f"started pid {self.process.pid}")

    def heartbeat(self, status: dict[str, Any] | None = None) -> None:
        self.last_heartbeat = time.monotonic()
        if status:
            self.last_status = status
        if self.state == StageState.STARTING:
            self.state = StageState.RUNNING

    def _kill(self, reason: str) -> None:
        if self.process is not None and self.process.is_alive():
            self.log("warning", f"killing pid {self.process.pid}: {reason}")
            try:
                os.kill(self.process.pid, signal.SIGKILL)  # type: ignore[arg-type]
            except ProcessLookupError:
                pass
            self.process.join(1.0)

    def poll(self, now: float | None = None) -> StageState:
        """Check the process; restart or give up as the policy says. Returns the new state."""
        now = time.monotonic() if now is None else now
        if self.state in (StageState.FAILED, StageState.STOPPED, StageState.STOPPING):
            return self.state
        if self.state == StageState.BACKOFF:
            if now >= self._restart_at:
                self.restarts_total += 1
                self.log("info", f"restarting (restart {self.restarts_total})")
                self.start()
            return self.state
        assert self.process is not None
        if self.process.is_alive():
            if self.state == StageState.RUNNING and now - self.last_heartbeat > self.heartbeat_timeout_s:
                self._kill(f"no heartbeat for {now - self.last_heartbeat:.1f} s")
            elif self.state == StageState.STARTING and now - self.started_at > self.start_timeout_s:
                self._kill(f"no heartbeat {self.start_timeout_s:g} s after start")
            else:
                rss = rss_mb(self.process.pid)  # type: ignore[arg-type]
                if rss is not None and rss > self.memory_kill_mb:
                    self._kill(f"memory {rss:.0f} MiB over the kill limit {self.memory_kill_mb:g} MiB")
                elif rss is not None and rss > self.memory_warn_mb and not self._warned_memory:
                    self._warned_memory = True
                    self.log("warning", f"memory {rss:.0f} MiB over the warning limit {self.memory_warn_mb:g} MiB")
            if self.process.is_alive():
                return self.state
        self.process.join(0.1)
        code = self.process.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
        decision = self.policy.on_exit(now, uptime_s=now - self.started_at)
        if code == FATAL_EXIT:
            self.state = StageState.FAILED
            self.fatal = True
            self.fail_reason = f"{how}: its input or settings cannot work, so it is not restarted"
            self.log("error", f"failed: {self.fail_reason}")
        elif decision.fatal:
            self.state = StageState.FAILED
            self.fail_reason = f"{how}; {decision.reason}"
            self.log("error", f"failed: {self.fail_reason}")
        else:
            self.state = StageState.BACKOFF
            self._restart_at = now + decision.delay_s
            self.log("warning", f"{how}; restarting in {decision.delay_s:.2f} s")
        return self.state

    def request_stop(self) -> None:
        """Ask the stage to stop (SIGTERM: its host sets the stop flag and exits cleanly)."""
        if self.process is not None and self.process.is_alive():
            self.state = StageState.STOPPING
            try:
                os.kill(self.process.pid, signal.SIGTERM)  # type: ignore[arg-type]
            except ProcessLookupError:
                pass
        elif self.state != StageState.FAILED:
            self.state = StageState.STOPPED

    def finish_stop(self, deadline: float) -> None:
        """Wait for the process until `deadline` (monotonic), then kill it."""
        if self.process is not None:
            self.process.join(max(0.0, deadline - time.monotonic()))
            if self.process.is_alive():
                self._kill("did not stop within the grace period")
        if self.state != StageState.FAILED:
            self.state = StageState.STOPPED

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pid": self.pid if self.process is not None and self.process.is_alive() else None,
            "state": self.state.value,
            "restarts": self.restarts_total,
            "memory_mb": rss_mb(self.pid) if self.pid else None,
            "last_heartbeat_age_s": round(time.monotonic() - self.last_heartbeat, 3) if self.last_heartbeat else None,
            "fail_reason": self.fail_reason,
            **{k: v for k, v in self.last_status.items() if k not in ("name", "pid", "state", "restarts")},
        }
