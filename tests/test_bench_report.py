"""The bench harness on known input: statistics, the joiner, incomplete interactions, the
report's JSON schema, the reference table, area registration and the Perfetto trace."""

from __future__ import annotations

import gzip
import json
import math
import sys
from pathlib import Path

import jsonschema
import pytest

from synesthesia import tracing
from synesthesia.bench import areas, perfetto
from synesthesia.bench.e2e import build_report, join
from synesthesia.bench.report import load_schema, validate
from synesthesia.bench.stats import summarize
from synesthesia.cli import main as cli_main
from synesthesia.tracing import TraceRecord

MS = 1_000_000
STAGES = ["nlp", "world", "encode"]


def synthetic() -> list[TraceRecord]:
    """Three complete typed interactions with hand-picked spans, one that never reached a
    frame, one seen only downstream, and a late duplicate stamp that must not win."""
    out: list[TraceRecord] = []
    spans = {  # trace id -> (intent, applied, first_frame, encoded) ms after the prompt; encode_ms
        1: ((1, 3, 40, 42), 0.1),
        2: ((2, 5, 50, 53), 0.2),
        3: ((1, 4, 30, 31), 0.3),
    }
    for tid, ((i, a, f, e), enc) in spans.items():
        base = tid * 10_000 * MS
        out += [TraceRecord(tid, "prompt", base, "supervisor", 0, {"text": f"prompt {tid}"}),
                TraceRecord(tid, "intent", base + i * MS),
                TraceRecord(tid, "applied", base + a * MS),
                TraceRecord(tid, "first_frame", base + f * MS),
                TraceRecord(tid, "encoded", base + e * MS, "tap", 0, {"encode_ms": enc})]
    out.append(TraceRecord(1, "first_frame", 10_000 * MS + 80 * MS))  # a later frame of the same trace
    base = 40_000 * MS
    out += [TraceRecord(4, "prompt", base), TraceRecord(4, "intent", base + 1 * MS), TraceRecord(4, "applied", base + 2 * MS)]
    out += [TraceRecord(5, "first_frame", 50_000 * MS), TraceRecord(5, "encoded", 50_000 * MS + MS)]
    return out


def row(report, name):  # type: ignore[no-untyped-def]
    return next(r for r in report.latency if r.name == name)


def test_summary_statistics_on_known_values() -> None:
    s = summarize([4.0, 1.0, 3.0, 2.0])
    assert (s.n, s.mean, s.min, s.max, s.p50) == (4, 2.5, 1.0, 4.0, 2.5)
    assert s.std == pytest.approx(math.sqrt(5 / 3))
    assert s.p95 == pytest.approx(3.85) and s.p99 == pytest.approx(3.97)
    assert summarize([7.0]).std == 0.0
    empty = summarize([])
    assert empty.n == 0 and empty.mean is None and empty.p99 is None


def test_per_stage_statistics_on_a_synthetic_trace() -> None:
    report = build_report(synthetic(), STAGES, {"command": "test"})
    lag = row(report, "intent -> first frame")
    assert lag.stats.n == 3  # the duplicate at 80 ms did not replace trace 1's first frame (39 ms)
    assert lag.stats.mean == pytest.approx(116 / 3)
    assert (lag.stats.min, lag.stats.max, lag.stats.p50) == pytest.approx((29.0, 48.0, 39.0))
    assert lag.stats.std == pytest.approx(math.sqrt((1626 / 9) / 2))
    assert lag.stats.p95 == pytest.approx(47.1) and lag.stats.p99 == pytest.approx(47.82)
    nlp = row(report, "transcript final / prompt -> intent")
    assert nlp.stats.n == 4 and nlp.stats.mean == pytest.approx(1.25)  # the incomplete one counts here
    backend = row(report, "backend processing: resize + encode")
    assert backend.stats.mean == pytest.approx(0.2) and backend.met is True
    total = row(report, "total pipe: VAD speech end / prompt -> encoded (no serve stage)")
    assert total.stats.n == 3 and total.stats.max == pytest.approx(53.0)


def test_a_missing_hop_makes_an_interaction_incomplete_not_dropped() -> None:
    report = build_report(synthetic(), STAGES, {"command": "test"})
    inter = report.interactions
    assert inter is not None
    assert (inter.total, inter.complete) == (5, 3)
    by_id = {x["trace_id"]: x for x in inter.incomplete}
    assert by_id[4]["missing"] == ["first_frame", "encoded"]
    assert by_id[4]["present"] == ["prompt", "intent", "applied"]
    assert by_id[5]["origin"] == "unknown"
    assert by_id[5]["missing"] == ["prompt or speech_end", "intent", "applied"]
    assert by_id[4]["why"] == "stopped after applied"
    md = report.to_markdown()
    assert "3 complete, 2 incomplete" in md and "| 4 | prompt | stopped after applied | first_frame, encoded |" in md


def test_an_incomplete_spoken_interaction_says_why() -> None:
    heard = [TraceRecord(1, "speech_end", 0), TraceRecord(1, "transcript_final", MS, fields={"text": "two to you"})]
    retracted = [TraceRecord(2, "speech_end", 0), TraceRecord(2, "transcript_final", MS, fields={"text": "to dawn"}),
                 TraceRecord(2, "intent", 2 * MS, fields={"keywords": [], "provisional": False})]
    report = build_report(heard + retracted, ["listen", "nlp", "world"], {})
    assert report.interactions is not None
    why = {x["trace_id"]: x["why"] for x in report.interactions.incomplete}
    assert why == {1: 'no command in the final transcript (heard "two to you")',
                   2: 'the final transcript retracted an early intent (heard "to dawn")'}


def test_expected_hops_follow_the_stages_that_ran() -> None:
    recs = [TraceRecord(8, "prompt", 0), TraceRecord(8, "intent", MS)]
    assert build_report(recs, ["nlp"], {}).interactions.complete == 1  # type: ignore[union-attr]
    assert build_report(recs, ["nlp", "world"], {}).interactions.complete == 0  # type: ignore[union-attr]


def test_json_report_from_a_trace_log_validates_against_the_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "trace.jsonl"
    with tracing.TraceLog(log) as t:
        t.write_all(synthetic())
    out = tmp_path / "report.json"
    code = cli_main(["bench", "e2e", "--from-log", str(log), "--stages", ",".join(STAGES), "--reference",
                     "--json", str(out), "--trace", str(tmp_path / "perfetto.json")])
    assert code == 0
    doc = json.loads(out.read_text())
    validate(doc)
    assert doc["interactions"]["complete"] == 3 and len(doc["interactions"]["incomplete"]) == 2
    assert doc["provenance"]["git_commit"] and doc["provenance"]["cores"] >= 1
    md = capsys.readouterr().out
    assert "## Beside the reference system" in md
    assert "| AI interaction lag | intent -> first frame | 1,274.80 | 42.30 | 38.667 |" in md
    # A document that breaks the contract is rejected: the schema is a real check.
    doc["latency"][0]["p95"] = "fast"
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)


def test_the_schema_itself_is_valid() -> None:
    jsonschema.Draft202012Validator.check_schema(load_schema())


def test_perfetto_trace_has_a_slice_per_step(tmp_path: Path) -> None:
    path = perfetto.write(tmp_path / "t.json", join(synthetic()))
    doc = json.loads(path.read_text())
    slices = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    assert all(e["dur"] >= 0 and e["ts"] >= 0 for e in slices)
    steps = {e["name"] for e in slices if e["args"].get("trace_id") == "2"}
    assert {"prompt -> intent", "intent -> applied", "applied -> first_frame", "first_frame -> encoded", "prompt 2"} <= steps
    gz = perfetto.write(tmp_path / "t.json.gz", join(synthetic()))
    assert json.loads(gzip.decompress(gz.read_bytes())) == doc


def test_an_area_script_plugs_in_and_its_rows_become_tables(tmp_path: Path) -> None:
    script = tmp_path / "fake_area.py"
    script.write_text(
        "import json, sys\n"
        "out = sys.argv[sys.argv.index('--json') + 1]\n"
        "rows = [{'group': 'ring', 'impl': 'ours', 'median_us': 1.5}, {'group': 'ring', 'impl': 'pipe', 'median_us': 9.0}]\n"
        "json.dump({'provenance': {'command': 'fake', 'rounds': 3}, 'rows': rows}, open(out, 'w'))\n")
    area = areas.register("fake-test-area", str(script), "a test area")
    try:
        report = areas.run_area(area, type("A", (), {"quick": True})(), [], "synesthesia bench fake")
    finally:
        del areas.AREAS["fake-test-area"]
    assert report.tables[0].name == "ring"
    assert report.tables[0].columns == ["impl", "median_us"] and report.tables[0].rows == [["ours", 1.5], ["pipe", 9.0]]
    assert report.provenance["rounds"] == 3 and report.provenance["area_command"] == "fake"
    validate(report.to_dict())


def test_an_area_not_yet_merged_says_so() -> None:
    area = areas.register("not-here-test-area", ("bench/not_here.py", "synesthesia.not_here:main"), "missing")
    try:
        with pytest.raises(areas.AreaUnavailable, match="not available"):
            areas.resolve(area)
    finally:
        del areas.AREAS["not-here-test-area"]
    assert sys.modules.get("synesthesia.not_here") is None


def test_a_cli_style_module_plugs_in_with_its_own_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "fake_cli_area.py").write_text(
        "import json\n"
        "def add_arguments(p):\n"
        "    p.add_argument('--json'); p.add_argument('--manifest')\n"
        "def main(args):\n"
        "    with open(args.json, 'w') as f:\n"
        "        json.dump({'provenance': {}, 'rows': [{'clip': args.manifest, 'wer': 0.1}]}, f)\n"
        "    return 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    area = areas.register("fake-cli-area", "fake_cli_area:main", "a test area")
    try:
        report = areas.run_area(area, type("A", (), {"quick": False})(), ["--manifest", "m.jsonl"], "synesthesia bench x")
    finally:
        del areas.AREAS["fake-cli-area"]
    assert report.tables[0].rows == [["m.jsonl", 0.1]]
