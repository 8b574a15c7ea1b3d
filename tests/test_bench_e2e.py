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
    # Where each clip's voice ends, when its folder's manifest says (noisy clips need it).
    # This checks the pipeline's hops, not recognition: clean clips where the manifest says which.
    known = {}
    noisy = set()
    if (clips_dir / "manifest.jsonl").exists():
        for line in (clips_dir / "manifest.jsonl").read_text().splitlines():
            entry = json.loads(line)
            known[entry["file"]] = {"speech_end_s": entry["speech_end_s"]} if entry.get("speech_end_s") else {}
            if entry.get("snr_db") is not None:
                noisy.add(entry["file"])
    clips = sorted(p for p in clips_dir.glob("*.wav") if p.name not in noisy)[:2]
    manifest.write_text("".join(json.dumps({"audio": str(p), **known.get(p.name, {})}) + "\n" for p in clips))
    from synesthesia.cli import main

    out = tmp_path / "e2e.json"
    assert main(["bench", "e2e", "--manifest", str(manifest), "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    validate(doc)
    assert doc["interactions"]["total"] >= 2
    assert doc["interactions"]["incomplete"] == []
    # Clocked from where the voice stops in each clip, not only from the VAD's declaration.
    rows = {r["name"]: r for r in doc["latency"]}
    voice = rows["voice end -> encoded"]
    assert voice["n"] == doc["interactions"]["total"] if len(known) >= 2 else voice["n"] >= 1
    assert voice["min"] > 0
    assert voice["p50"] < rows["total pipe: VAD speech end / prompt -> encoded (no serve stage)"]["p50"] + 2000


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
    for name in ("encoded -> sent", "sent -> displayed", "loop: VAD speech end / prompt -> displayed"):
        assert rows[name]["n"] == 3 and rows[name]["min"] >= 0, (name, rows[name])
    assert not (tmp_path / "rt").exists() or not any((tmp_path / "rt").iterdir())


def test_a_spoken_clip_with_known_speech_timing_yields_the_voice_end_rows(tmp_path: Path) -> None:
    """Two utterances of noise bursts at known times, played (as the capture stage stamps its
    chunks) from t0; the VAD's end comes 250 ms after the voice's. The second utterance's
    intent comes early, while the voice goes on, and counts from its stretch's end."""
    import numpy as np
    import soundfile as sf

    from synesthesia.tracing import TraceRecord

    rate, chunk, t0, ms = 16000, 512, 50_000_000_000, 1_000_000
    audio = np.zeros(5 * rate, np.float32)
    rng = np.random.default_rng(1)
    for a, b in ((0.5, 0.9), (1.0, 1.4), (3.0, 3.2), (3.3, 3.6)):  # seconds; the 0.1 s gaps are between words
        audio[int(a * rate):int(b * rate)] = 0.3 * rng.standard_normal(int(b * rate) - int(a * rate))
    clip = tmp_path / "two.wav"
    sf.write(clip, audio, rate)
    voice = e2e.voice_in(audio, rate)
    assert voice.utterance_ends == (int(1.4 * rate), int(3.6 * rate))
    assert voice.stretch_ends == (int(0.9 * rate), int(1.4 * rate), int(3.2 * rate), int(3.6 * rate))

    def at(s: float) -> int:
        return t0 + int(s * 1e9)

    chunks = [e2e.AudioObs(o, chunk, t0 + (o + chunk) * 1_000_000_000 // rate) for o in range(0, len(audio), chunk)]
    hops = {1: {"speech_start": at(0.6), "speech_end": at(1.65), "transcript_final": at(1.7), "intent": at(1.75),
                "applied": at(1.751), "first_frame": at(1.76), "encoded": at(1.78)},
            2: {"speech_start": at(3.05), "intent": at(3.25), "speech_end": at(3.85), "transcript_final": at(3.9),
                "applied": at(3.901), "first_frame": at(3.91), "encoded": at(3.8)}}
    records = [TraceRecord(tid, hop, t, "test", 0, {}) for tid, hs in hops.items() for hop, t in hs.items()]
    interactions = e2e.join(records)
    result = e2e.RunResult(records, [], ["listen", "nlp", "world", "encode"], 0, 0, "", [], chunks, clip)
    note = e2e.voice_ends([result], interactions)
    assert "found for 2 of 2 spoken interactions" in note and "1 had an early intent" in note
    report = e2e.build_report(records, result.stages, provenance.collect({}, "test"), interactions=interactions,
                              with_reference=True)
    rows = {r.name: r for r in report.latency}
    names = [r.name for r in report.latency]
    assert names[:4] == ["voice end -> intent", "voice end -> first frame", "voice end -> encoded",
                         "voice end -> encoded (no serve stage)"]
    # The second intent came 50 ms after its keyword's stretch ended (3.2 s), before the voice ended.
    def span(name: str) -> tuple[float | None, float | None]:
        return rows[name].stats.min, rows[name].stats.max

    assert span("voice end -> intent") == pytest.approx((50.0, 350.0), abs=0.01)
    assert span("voice end -> encoded") == pytest.approx((200.0, 380.0), abs=0.01)
    wire = rows["voice end -> encoded (no serve stage)"]
    assert wire.reference is not None and wire.reference.mean == 1279.2
    # The VAD-relative rows stay, labelled as such: 250 ms later than the voice's end.
    vad = rows["VAD speech end -> transcript final"]
    assert (vad.stats.n, vad.stats.min, vad.stats.max) == pytest.approx((2, 50.0, 50.0), abs=0.01)
    assert rows["voice end -> first frame"].stats.n == 2 and "voice end -> displayed" not in rows
