"""The trace log: off by default, switchable by environment, whole lines from many processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from synesthesia import tracing
from synesthesia.messages import Heartbeat, Intent, Prompt, WorldApplied


@pytest.fixture(autouse=True)
def _no_trace_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(tracing.ENV, raising=False)
    tracing.disable()


def test_stamp_is_a_no_op_when_tracing_is_off(tmp_path: Path) -> None:
    tracing.stamp("intent", 7)
    assert not tracing.enabled()
    assert list(tmp_path.iterdir()) == []


def test_enable_writes_records_and_is_inherited_by_children(tmp_path: Path) -> None:
    log = tmp_path / "t.jsonl"
    tracing.enable(log)
    try:
        tracing.stamp("prompt", 5, 100, stage="cli", text="storm")
        tracing.stamp("intent", 0)  # no trace id: nothing to record
        code = "from synesthesia import tracing; tracing.stamp('applied', 5, 200, stage='world')"
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    finally:
        tracing.disable()
    recs, bad = tracing.read(log)
    assert bad == 0
    assert [(r.hop, r.trace_id, r.t_ns, r.stage) for r in recs] == [("prompt", 5, 100, "cli"), ("applied", 5, 200, "world")]
    assert recs[0].fields == {"text": "storm"}
    assert recs[0].pid == os.getpid() and recs[1].pid != os.getpid()


def test_lines_from_concurrent_processes_stay_whole(tmp_path: Path) -> None:
    log = tmp_path / "t.jsonl"
    code = ("import sys; from synesthesia import tracing\n"
            "for i in range(300): tracing.stamp('encoded', int(sys.argv[1]) * 1000 + i + 1, i, pad='x' * 300)")
    env = dict(os.environ, **{tracing.ENV: str(log)})
    procs = [subprocess.Popen([sys.executable, "-c", code, str(k)], env=env) for k in range(3)]
    for p in procs:
        assert p.wait(timeout=60) == 0
    recs, bad = tracing.read(log)
    assert bad == 0
    assert len({r.trace_id for r in recs}) == 900


def test_an_unknown_hop_is_refused(tmp_path: Path) -> None:
    tracing.enable(tmp_path / "t.jsonl")
    try:
        with pytest.raises(ValueError, match="unknown trace hop"):
            tracing.stamp("teleported", 3)
    finally:
        tracing.disable()


def test_a_torn_last_line_is_counted_not_fatal(tmp_path: Path) -> None:
    log = tmp_path / "t.jsonl"
    log.write_text(json.dumps({"trace_id": 1, "hop": "intent", "t_ns": 5}) + "\n" + '{"trace_id": 1, "hop": "appl')
    recs, bad = tracing.read(log)
    assert [r.hop for r in recs] == ["intent"] and bad == 1


def test_bus_messages_map_to_hops_with_the_producers_time() -> None:
    rec = tracing.record_of(Prompt(trace_id=9, text="rain", t_ns=1234), "supervisor")
    assert rec is not None and (rec.hop, rec.trace_id, rec.t_ns, rec.stage) == ("prompt", 9, 1234, "supervisor")
    applied = tracing.record_of(WorldApplied(trace_id=9, intent_id=1, frame=42, t_ns=99))
    assert applied is not None and applied.hop == "applied" and applied.fields["frame"] == 42
    assert tracing.record_of(Heartbeat(stage="world", pid=1, seq=1)) is None
    assert tracing.record_of(Intent(trace_id=0, intent_id=1)) is None  # untraced
