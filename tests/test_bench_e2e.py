"""`bench e2e` against real stage processes, shared memory and the bus.

The typed-prompt test uses stand-ins from tests/trace_stages.py for nlp and world (they pass
trace ids along: prompt -> intent -> applied -> frames carrying the id) while the real encode
stage copies them to the jpeg ring, so the harness is checked apart from recognition; the
spoken and browser tests run the real pipeline. Each must see every hop of every interaction.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from synesthesia.bench import e2e, provenance
from synesthesia.bench.report import validate
from synesthesia.settings import Settings
from synesthesia.supervisor.watcher import StageSpec

ROOT = Path(__file__).resolve().parent.parent


def test_typed_prompts_through_real_processes_have_every_hop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNESTHESIA_RUNTIME_DIR", str(tmp_path / "rt"))
    settings = Settings.from_dict({"headless": True, "log_level": "warning",
                                   "world": {"width": 320, "height": 176, "fps": 25.0}})
    graph = [StageSpec("nlp", "trace_stages"), StageSpec("world", "trace_stages"),
             StageSpec("encode", "synesthesia.stages.encode")]
    stages = [s.name for s in graph]
    expected = e2e.expected_hops(stages, "prompt")
    assert expected == ["prompt", "intent", "applied", "first_frame", "encoded"]
    res = e2e.run_pipeline(settings, graph, e2e.typed_driver(["storm", "calm sea"], 3, 10.0, 0.05, expected),
                           tmp_path / "trace.jsonl")
    assert res.errors == [] and res.exit_code == 0, res.log_tail
    report = e2e.build_report(res.records, stages, provenance.collect(settings.to_dict(), "test"), frames=res.frames)
    assert report.interactions is not None
    assert (report.interactions.total, report.interactions.complete) == (3, 3), report.interactions.incomplete
    lag = next(r for r in report.latency if r.name == "intent -> first frame")
    assert lag.stats.n == 3 and lag.stats.min is not None and lag.stats.min >= 0
    backend = next(r for r in report.latency if r.name == "backend processing: resize + encode")
    assert backend.stats.n == 3
    assert any(r.name.startswith("frame interval, jpeg ring") for r in report.latency)
    validate(report.to_dict())
    assert not (tmp_path / "rt").exists() or not any((tmp_path / "rt").iterdir())


def _two_clips() -> Path | None:
    """The folder of two short spoken clips (the committed test speech, or $SYNESTHESIA_TEST_CLIPS)."""
    for candidate in (os.environ.get("SYNESTHESIA_TEST_CLIPS"), ROOT / "tests" / "data" / "speech"):
        if candidate and Path(candidate).is_dir():
            clips = sorted(Path(candidate).glob("*.wav"))[:2]
            if len(clips) == 2:
                return Path(candidate)
    return None


def test_e2e_on_two_short_clips_has_every_hop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clips_dir = _two_clips()
    if clips_dir is None:
        pytest.skip("no two spoken test clips found (tests/data/speech/*.wav or $SYNESTHESIA_TEST_CLIPS)")
    monkeypatch.setenv("SYNESTHESIA_RUNTIME_DIR", str(tmp_path / "rt"))
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({"audio": str(p)}) + "\n" for p in sorted(clips_dir.glob("*.wav"))[:2]))
    from synesthesia.cli import main

    out = tmp_path / "e2e.json"
    assert main(["bench", "e2e", "--manifest", str(manifest), "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    validate(doc)
    assert doc["interactions"]["total"] >= 2
    assert doc["interactions"]["incomplete"] == []


def test_e2e_with_a_real_browser_has_the_wire_and_display_hops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from test_viewer_browser import _chromium

    _chromium()  # skips without chromium, fails under CI=true
    monkeypatch.setenv("SYNESTHESIA_RUNTIME_DIR", str(tmp_path / "rt"))
    config = tmp_path / "quiet.toml"
    config.write_text('[capture]\nsource = "silence"\n\n[world]\nwidth = 640\nheight = 352\n')
    out = tmp_path / "e2e.json"
    from synesthesia.cli import main

    assert main(["bench", "e2e", "--browser", "--config", str(config), "-n", "3", "--prompt", "a storm over the sea",
                 "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    validate(doc)
    assert (doc["interactions"]["total"], doc["interactions"]["incomplete"]) == (3, [])
    rows = {r["name"]: r for r in doc["latency"]}
    for name in ("encoded -> sent", "sent -> displayed", "loop: speech end / prompt -> displayed"):
        assert rows[name]["n"] == 3 and rows[name]["min"] >= 0, (name, rows[name])
    assert not (tmp_path / "rt").exists() or not any((tmp_path / "rt").iterdir())
