"""Session logs: recording the procedural world, replaying it exactly, rendering MP4, and the
refusals and partial renders of bad input. In-process with a real renderer, encoder and files."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from synesthesia.errors import SessionError
from synesthesia.settings import SettingsError, load_settings
from synesthesia.world import Intent, ProceduralBackend
from synesthesia.world.render import render_moment, render_session
from synesthesia.world.session import SessionRecorder, frame_checksum, read_session, samples

PERIOD = 40_000_000
SIZE = (96, 64)


def record(path: Path, frames: int = 60, audio: bool = True) -> tuple[SessionRecorder, list[int]]:
    """Drive a recorder tick by tick (one tick skipped at frame 31, as a late live tick is);
    returns it and the pixel checksum of every frame it made."""
    rec = SessionRecorder(ProceduralBackend(*SIZE, seed=5, tau=0.5), path, fps=25, check_every=10)
    rec.start("mountains at sunset")
    t0 = time.monotonic_ns()
    crcs = []
    for k in range(frames):
        if k == 12:
            rec.apply(Intent({"storm": 1.0}, "a storm", "1"))
        if k == 40:
            rec.apply(Intent({"night": 0.8, "snow": 0.6}, "snowy night", "2"))
        if audio and k >= 5:
            rec.feed_audio((0.4 * np.sin(np.arange(640) * (0.05 + k / 200))).astype(np.float32))
        frame = rec.poll(t0 + (k + (k > 30)) * PERIOD)
        crcs.append(frame_checksum(frame.pixels))
    rec.stop()
    return rec, crcs


def decode(path: Path) -> tuple[int, float, float | None]:
    """(video frames decoded, video seconds, audio seconds or None) of an MP4, read by PyAV."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = sum(1 for _ in c.decode(v))
        vdur = float(v.duration * v.time_base)
        a = c.streams.audio[0] if c.streams.audio else None
        adur = None if a is None else float(a.duration * a.time_base)
    return frames, vdur, adur


def synesthesia(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "synesthesia", *args], capture_output=True, text=True, timeout=60)


def test_log_holds_header_ops_frames_and_checks(tmp_path: Path) -> None:
    rec, _ = record(tmp_path / "s.jsonl")
    s = read_session(tmp_path / "s.jsonl")
    assert s.stopped is None
    assert (s.header.backend, s.header.seed, s.header.width, s.header.height, s.header.fps) == ("procedural", 5, *SIZE, 25.0)
    assert [o.kind for o in s.ops] == ["start", "intent", "intent"]
    assert [o.frame for o in s.ops] == [0, 12, 40]
    assert s.ops[1].keywords == {"storm": 1.0}
    assert len(s.frames) == 60 and sorted(s.checks) == list(range(0, 60, 10))
    assert s.ticks()[30:33] == [30, 32, 33]  # the skipped tick is a gap
    assert s.segments[0].audio.exists() and s.segments[0].audio_start_ns is not None


def test_replay_at_the_sessions_size_and_fps_draws_every_live_frame(tmp_path: Path) -> None:
    _, crcs = record(tmp_path / "s.jsonl")
    s = read_session(tmp_path / "s.jsonl")
    r = ProceduralBackend(*SIZE, seed=5)._renderer
    out = np.empty((SIZE[1], SIZE[0], 3), np.uint8)
    seen = {}
    for smp in samples(s):
        r.render_into(out, smp.state, smp.t, smp.pulse)
        seen.setdefault(smp.source, frame_checksum(out))
    assert len(seen) == 60
    assert [seen[f] for f in range(60)] == crcs  # every frame, not only the checkpoints


def test_render_mp4_matches_checkpoints_and_has_video_and_audio(tmp_path: Path) -> None:
    record(tmp_path / "s.jsonl")
    s = read_session(tmp_path / "s.jsonl")
    res = render_session(s, tmp_path / "out.mp4", workers=2)
    assert res.checked == len(s.checks) == 6 and res.mismatched == []
    frames, vdur, adur = decode(tmp_path / "out.mp4")
    assert frames == 61 == res.frames  # 60 live frames plus the skipped tick, held
    assert vdur == pytest.approx(61 / 25, abs=1e-6)
    assert adur == pytest.approx(61 / 25, abs=0.05)


def test_render_other_size_fps_and_range(tmp_path: Path) -> None:
    record(tmp_path / "s.jsonl")
    s = read_session(tmp_path / "s.jsonl")
    res = render_session(s, tmp_path / "out.mp4", size=(128, 96), fps=60, start_s=0.5, end_s=2.0, audio_codec="opus")
    assert res.checked == 0  # no live checksum applies at another size
    frames, vdur, adur = decode(tmp_path / "out.mp4")
    assert frames == 90 and vdur == pytest.approx(1.5, abs=1e-6)
    assert adur == pytest.approx(1.5, abs=0.05)
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (128, 96)
        assert c.streams.audio[0].codec_context.name == "opus"


def test_interpolated_frames_lie_between_live_ones(tmp_path: Path) -> None:
    record(tmp_path / "s.jsonl", audio=False)
    s = read_session(tmp_path / "s.jsonl")
    at25 = {smp.index: smp.t for smp in samples(s)}
    at50 = {smp.index: smp.t for smp in samples(s, fps=50)}
    # world time at 50 fps: the even frames sit on live ticks, the odd ones between them
    # (up to tick 30: tick 31 was skipped live, so the 25 fps render holds frame 30 there)
    for i in range(2, 30):
        assert at50[2 * i] == pytest.approx(at25[i], abs=1e-4)
        assert at25[i] < at50[2 * i + 1] < at25[i + 1]


def test_truncated_session_renders_to_its_last_record(tmp_path: Path) -> None:
    record(tmp_path / "s.jsonl")
    text = (tmp_path / "s.jsonl").read_text()
    cut = text[: text.index('{"type":"frame","f":45,') + 20]  # a crash mid-line
    (tmp_path / "cut.jsonl").write_text(cut)
    s = read_session(tmp_path / "cut.jsonl")
    assert len(s.frames) == 45 and s.stopped is not None and "cut short" in s.stopped
    r = synesthesia("render", str(tmp_path / "cut.jsonl"), "--out", str(tmp_path / "cut.mp4"))
    assert r.returncode == 0, r.stderr
    line = cut.count("\n") + 1
    assert f"damaged at line {line}: cut short" in r.stderr and "45 frames before it" in r.stderr
    assert decode(tmp_path / "cut.mp4")[0] == 46  # 45 live frames and the skipped tick
    assert "checked 5 frames against the live checksums: all match" in r.stderr
    assert "render: 100% (46/46 frames" in r.stderr  # not a terminal: plain progress lines


def test_corrupt_line_stops_the_session_there(tmp_path: Path) -> None:
    record(tmp_path / "s.jsonl")
    lines = (tmp_path / "s.jsonl").read_text().splitlines(keepends=True)
    lines[20] = '{"type":"frame","f":"x\x00\n'
    (tmp_path / "bad.jsonl").write_text("".join(lines))
    s = read_session(tmp_path / "bad.jsonl")
    assert s.stopped is not None and s.stopped.startswith("line 21:")
    assert 0 < len(s.frames) < 20


@pytest.mark.parametrize(("field", "value", "message"), [
    ("version", 99, "version: session format 99; this build reads 1"),
    ("vocabulary", "sha256:0000000000000000", "vocabulary: recorded with vocabulary sha256:0000000000000000"),
    ("backend", "odyssey", "backend: 'odyssey' is not deterministic"),
])
def test_another_version_vocabulary_or_backend_is_refused_in_one_line(tmp_path: Path, field: str, value: object,
                                                                      message: str) -> None:
    record(tmp_path / "s.jsonl", frames=5)
    lines = (tmp_path / "s.jsonl").read_text().splitlines(keepends=True)
    header = json.loads(lines[0])
    header[field] = value
    lines[0] = json.dumps(header) + "\n"
    (tmp_path / "s.jsonl").write_text("".join(lines))
    for args in (["render", str(tmp_path / "s.jsonl"), "--out", str(tmp_path / "o.mp4")],
                 ["snapshot", "--session", str(tmp_path / "s.jsonl"), "--at", "0.1", "--out", str(tmp_path / "o.png")]):
        r = synesthesia(*args)
        assert r.returncode != 0
        assert r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
    assert not (tmp_path / "o.mp4").exists()


def test_unwritable_output_is_one_line(tmp_path: Path) -> None:
    record(tmp_path / "s.jsonl", frames=5)
    r = synesthesia("render", str(tmp_path / "s.jsonl"), "--out", str(tmp_path / "no" / "such" / "o.mp4"))
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "cannot write" in r.stderr


def test_missing_audio_renders_silent_and_says_so(tmp_path: Path) -> None:
    record(tmp_path / "s.jsonl", frames=30)
    (tmp_path / "s.audio.flac").unlink()
    r = synesthesia("render", str(tmp_path / "s.jsonl"), "--out", str(tmp_path / "o.mp4"))
    assert r.returncode == 0, r.stderr
    assert "audio s.audio.flac is missing: that stretch is silent" in r.stderr
    with av.open(str(tmp_path / "o.mp4")) as c:
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(c.streams.audio[0])])
    assert len(pcm) > 0 and float(np.abs(pcm).max()) < 1e-4


def test_snapshot_at_a_moment(tmp_path: Path) -> None:
    record(tmp_path / "s.jsonl")
    s = read_session(tmp_path / "s.jsonl")
    early, late = render_moment(s, 0.2), render_moment(s, 2.3)
    assert early.shape == (SIZE[1], SIZE[0], 3)
    assert float(np.abs(early.astype(int) - late).mean()) > 2  # storm, then a snowy night
    r = synesthesia("snapshot", "--session", str(tmp_path / "s.jsonl"), "--at", "2.3", "--size", "160x90",
                    "--out", str(tmp_path / "m.png"))
    assert r.returncode == 0, r.stderr
    from PIL import Image

    with Image.open(tmp_path / "m.png") as im:
        assert im.size == (160, 90)
    with pytest.raises(SessionError, match="^at: "):
        render_moment(s, 99.0)


def test_log_is_flushed_while_the_run_goes_on(tmp_path: Path) -> None:
    rec = SessionRecorder(ProceduralBackend(*SIZE, seed=5), tmp_path / "s.jsonl", fps=25)
    rec.start("")
    t0 = time.monotonic_ns()
    for k in range(10):
        rec.poll(t0 + k * PERIOD)
    time.sleep(1.0)  # the recorder is still open: a crash now keeps these
    try:
        assert len(read_session(tmp_path / "s.jsonl").frames) == 10
    finally:
        rec.stop()


def test_only_the_procedural_world_records(tmp_path: Path) -> None:
    from synesthesia.world.emulate import EmulatedBackend

    with pytest.raises(SessionError, match="^world.backend: 'emulate' is not deterministic"):
        SessionRecorder(EmulatedBackend(*SIZE), tmp_path / "s.jsonl", fps=25)  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match="world.backend"):
        load_settings(overrides={"session": str(tmp_path / "s.jsonl"), "world": {"backend": "odyssey"}})


def test_reopening_resumes_from_the_last_state(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    first, _ = record(path, frames=40)
    before = read_session(path)
    last = list(samples(before))[-1]
    rec = SessionRecorder(ProceduralBackend(*SIZE, seed=5, tau=0.5), path, fps=25, check_every=10)
    assert rec.resumed and rec.frames == 40
    rec.start("a prompt the resumed run ignores")
    state, t, _, _ = rec.inner.scene.advance(time.monotonic_ns())
    assert state == last.state and t == last.t  # first resumed frame: exactly where the run left off
    with pytest.raises(SessionError, match="^seed: "):
        SessionRecorder(ProceduralBackend(*SIZE, seed=6, tau=0.5), path, fps=25)


def test_a_crash_mid_line_is_cut_off_on_resume_and_the_log_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    record(path, frames=30)
    text = path.read_text()
    path.write_text(text[: text.index('{"type":"frame","f":25,') + 12])  # killed mid-write
    rec = SessionRecorder(ProceduralBackend(*SIZE, seed=5, tau=0.5), path, fps=25, check_every=10)
    assert rec.resumed and rec.frames == 25
    t0 = time.monotonic_ns()
    crcs = [frame_checksum(rec.poll(t0 + k * PERIOD).pixels) for k in range(12)]
    rec.stop()
    s = read_session(path)
    assert s.stopped is None and len(s.frames) == 37 and len(s.segments) == 2
    assert s.checks[30] == crcs[5]  # the resumed run's checkpoints are its own frames
    res = render_session(s, tmp_path / "o.mp4")
    assert res.checked == 4 and res.mismatched == []
    # damage inside the log is not cut off: resuming it would lose what follows
    lines = path.read_text().splitlines(keepends=True)
    lines[5] = "garbage\n"
    path.write_text("".join(lines))
    with pytest.raises(SessionError, match="^session: .* is damaged"):
        SessionRecorder(ProceduralBackend(*SIZE, seed=5, tau=0.5), path, fps=25)


def test_progress_is_a_bar_on_a_terminal_and_lines_otherwise() -> None:
    import io

    from synesthesia.world.render import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    term, pipe = Terminal(), io.StringIO()
    for stream in (term, pipe):
        p = Progress(50, stream)
        for i in range(1, 51):
            p.update(i)
    assert "\r" in term.getvalue() and "[" + "#" * 30 + "] 100.0% 50/50" in term.getvalue() and "ETA" in term.getvalue()
    lines = pipe.getvalue().splitlines()
    assert "\r" not in pipe.getvalue() and 5 <= len(lines) <= 11 and lines[-1].startswith("render: 100% (50/50 frames")


def test_intents_racing_the_pacer_thread_keep_the_log_in_order(tmp_path: Path) -> None:
    from synesthesia.world import Pacer

    class Sink:
        def put(self, frame: object, meta: object) -> None:
            pass

    rec = SessionRecorder(ProceduralBackend(*SIZE, seed=5), tmp_path / "s.jsonl", fps=200, check_every=7)
    rec.start("")
    pacer = Pacer(rec, Sink(), fps=200)
    pacer.start()
    words = ["storm", "night", "ocean", "snow", "desert", "fog"]
    end = time.monotonic() + 1.0
    k = 0
    while time.monotonic() < end:  # intents as fast as they come, from another thread
        rec.apply(Intent({words[k % len(words)]: 1.0}, "", str(k)))
        k += 1
        time.sleep(0.001)
    pacer.stop()
    rec.stop()
    s = read_session(tmp_path / "s.jsonl")
    assert s.stopped is None and len(s.frames) > 50 and len(s.ops) == k + 1
    res = render_session(s, tmp_path / "o.mp4", size=None)
    assert res.checked == len(s.checks) and res.mismatched == []
