"""Chaos: a real run (all six stages, a viewer streaming) while random stages are SIGKILLed for
~20 s. The stream must resume after every kill, every kill must be healed by a restart with no
stage given up on, and nothing may be left after the run stops (the soak harness, short)."""

from __future__ import annotations

from synesthesia.bench.soak import SoakConfig, soak


def test_random_stage_kills_heal_and_leave_nothing() -> None:
    r = soak(SoakConfig(minutes=20 / 60, viewers=2, kill_every_s=4.0, say_every_s=5.0, warmup_s=5.0, seed=7))
    tail = "\n".join(r.log_tail)
    assert len(r.kills) >= 4, tail
    assert sum(r.restarts.values()) == len(r.kills), (r.kills, r.restarts, tail)
    assert r.failed == [], tail
    assert r.exit_code == 0, tail
    assert r.leftovers == [], r.leftovers
    # Every viewer kept getting frames, including after the last kill.
    assert all(n > 100 for n in r.viewer_frames), r.viewer_frames
    assert r.gaps_kill_ms and max(r.gaps_kill_ms) < 10_000, sorted(r.gaps_kill_ms)[-5:]
    # The supervisor, never killed, does not grow by the restarts it handled.
    sup = r.growth["supervisor"]
    assert sup["fds_growth_max"] <= 2, sup
