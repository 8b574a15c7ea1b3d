"""Watchers with real child processes: restart, backoff to FAILED, liveness and memory."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import stage_targets
from synesthesia.supervisor.policy import RestartPolicy
from synesthesia.supervisor.watcher import StageSpec, StageState, Watcher


def make(target: Callable[..., object], *args: object, **kw: object) -> Watcher:
    policy = kw.pop("policy", RestartPolicy(backoff_s=0.05, backoff_max_s=0.2, max_restarts=3, window_s=30))
    return Watcher(StageSpec("t", "tests"), policy, target, args, **kw)  # type: ignore[arg-type]


def run_until(w: Watcher, cond: Callable[[], bool], timeout: float = 20.0, beat: bool = False) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if beat and w.process is not None and w.process.is_alive():
            w.heartbeat()
        w.poll()
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out; state {w.state}, status {w.status()}")


@pytest.fixture
def cleanup() -> list[Watcher]:
    watchers: list[Watcher] = []
    yield watchers
    for w in watchers:
        w.request_stop()
        w.finish_stop(time.monotonic() + 2)


def test_sigkilled_stage_is_restarted(tmp_path: Path, cleanup: list[Watcher]) -> None:
    pids = tmp_path / "pids"
    w = make(stage_targets.write_pid_then_sleep, str(pids))
    cleanup.append(w)
    w.start()
    run_until(w, lambda: pids.exists() and len(pids.read_text().split()) == 1, beat=True)
    first = int(pids.read_text().split()[0])
    os.kill(first, signal.SIGKILL)
    run_until(w, lambda: len(pids.read_text().split()) == 2, beat=True)
    assert w.restarts_total == 1 and w.state == StageState.RUNNING
    assert w.pid != first


def test_crash_on_start_backs_off_then_fails(cleanup: list[Watcher]) -> None:
    logs: list[tuple[str, str]] = []
    w = make(stage_targets.crash_at_once, 3, log=lambda level, text: logs.append((level, text)))
    cleanup.append(w)
    w.start()
    run_until(w, lambda: w.state == StageState.FAILED)
    assert w.restarts_total == 3
    assert "exited with code 3" in w.fail_reason and "3 restarts within 30 s" in w.fail_reason
    assert any(level == "error" and "failed" in text for level, text in logs)
    assert any("restarting in" in text for _, text in logs)


def test_silent_stage_is_killed_and_restarted(cleanup: list[Watcher]) -> None:
    w = make(stage_targets.sleep_forever, heartbeat_timeout_s=0.3)
    cleanup.append(w)
    w.start()
    w.heartbeat()  # it spoke once, then went quiet
    first = w.pid
    run_until(w, lambda: w.restarts_total == 1 and w.pid != first)


def test_memory_kill_limit(cleanup: list[Watcher]) -> None:
    w = make(stage_targets.hog_memory, 200, memory_warn_mb=100, memory_kill_mb=150,
             policy=RestartPolicy(max_restarts=0, window_s=30))
    cleanup.append(w)
    w.start()
    run_until(w, lambda: w.state == StageState.FAILED, beat=True)
    assert "killed by signal 9" in w.fail_reason


def test_stop_is_graceful_then_forced(cleanup: list[Watcher]) -> None:
    w = make(stage_targets.sleep_forever)
    w.start()
    run_until(w, lambda: w.state == StageState.RUNNING, beat=True)
    pid = w.pid
    w.request_stop()  # SIGTERM's default action ends it
    w.finish_stop(time.monotonic() + 5)
    assert w.state == StageState.STOPPED
    assert w.process is not None and not w.process.is_alive()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # type: ignore[arg-type]
