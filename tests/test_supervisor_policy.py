"""Restart policy: immediate first restart, exponential backoff, FATAL by intensity."""

from __future__ import annotations

import pytest

from synesthesia.supervisor.policy import RestartPolicy


def test_first_restart_is_immediate_then_backs_off() -> None:
    p = RestartPolicy(backoff_s=0.1, backoff_max_s=0.5, max_restarts=10, window_s=100)
    delays = [p.on_exit(now=float(i), uptime_s=0.5).delay_s for i in range(6)]
    assert delays == [0.0, 0.1, 0.2, 0.4, 0.5, 0.5]
    assert p.restarts == 6


def test_too_many_restarts_in_window_is_fatal() -> None:
    p = RestartPolicy(backoff_s=0.0, backoff_max_s=0.0, max_restarts=3, window_s=10)
    assert not any(p.on_exit(now=t, uptime_s=0.1).fatal for t in (0.0, 1.0, 2.0))
    d = p.on_exit(now=3.0, uptime_s=0.1)
    assert d.fatal and "3 restarts within 10 s" in d.reason


def test_old_restarts_leave_the_window() -> None:
    p = RestartPolicy(backoff_s=0.0, backoff_max_s=0.0, max_restarts=2, window_s=5)
    assert not p.on_exit(now=0.0, uptime_s=1).fatal
    assert not p.on_exit(now=1.0, uptime_s=1).fatal
    assert not p.on_exit(now=7.0, uptime_s=1).fatal  # the first two aged out
    assert p.restarts == 1


def test_a_stable_run_resets_the_backoff() -> None:
    p = RestartPolicy(backoff_s=0.1, backoff_max_s=5, max_restarts=100, window_s=1000, stable_after_s=10)
    for t in range(4):
        p.on_exit(now=float(t), uptime_s=0.1)
    assert p.on_exit(now=10.0, uptime_s=60.0).delay_s == 0.0


def test_bad_policy_is_rejected() -> None:
    with pytest.raises(ValueError):
        RestartPolicy(backoff_s=2, backoff_max_s=1)
    with pytest.raises(ValueError):
        RestartPolicy(window_s=0)
