"""`synesthesia run --session` / `--resume` with real stage processes, then `synesthesia render`:
the offline frames are the live ones, and a resumed run continues where the last one stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import soundfile

from synesthesia.world.render import render_session, soundtrack
from synesthesia.world.session import read_session, samples

# A small world keeps the run cheap on a shared machine; the path through the stages is the same.
DEMO = Path(__file__).resolve().parent.parent / "python" / "synesthesia" / "data" / "demo.flac"
# The demo plays at once rather than waiting for the recognizer, so the run has audio to keep.
ENV = {"SYNESTHESIA_WORLD__WIDTH": "320", "SYNESTHESIA_WORLD__HEIGHT": "176", "SYNESTHESIA_CAPTURE__WAIT_S": "0"}


def run(tmp_path: Path, session: Path, *args: str, until: Callable[[str], bool], say: str | None = None) -> str:
    """Run the engine until its session log (flushed as the run goes) satisfies ``until``, then
    stop it with SIGINT: on a loaded machine stage start-up takes seconds, so no fixed duration.
    ``say`` is repeated meanwhile: a prompt sent before the NLP stage subscribed is not heard."""
    env = dict(os.environ, SYNESTHESIA_RUNTIME_DIR=str(tmp_path / "rt"), PYTHONUNBUFFERED="1", **ENV)
    p = subprocess.Popen([sys.executable, "-m", "synesthesia", "run", "--headless", *args], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and p.poll() is None:
            if say is not None:
                subprocess.run([sys.executable, "-m", "synesthesia", "say", say], capture_output=True, env=env,
                               timeout=30)
            time.sleep(1.0)
            if session.exists() and until(session.read_text()):
                break
    finally:
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=90)
    assert p.returncode == 0, out
    return out


def frames(text: str) -> int:
    return text.count('"type":"frame"')


def test_live_session_renders_the_live_frames_and_resumes(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    run(tmp_path, path, "--session", str(path), say="a storm at night",
        until=lambda text: '"storm"' in text and frames(text) >= 100 and '"type":"audio"' in text)
    s = read_session(path)
    assert s.stopped is None and len(s.segments) == 1
    assert (s.header.width, s.header.height, s.header.fps) == (320, 176, 25.0)
    asked = [o for o in s.ops if o.kind == "intent"]
    assert any({"storm", "night"} <= set(o.keywords) for o in asked), s.ops
    assert len(s.checks) >= 3

    # Every chunk of the captured speech is kept, not only those the world's pulse sampled: the
    # soundtrack is the demo itself from where the first frame found it (no silence for a gap).
    mark = next(json.loads(x) for x in path.read_text().splitlines() if '"type":"audio"' in x)
    kept, _ = soundfile.read(str(s.segments[0].audio), dtype="float32")
    demo, _ = soundfile.read(str(DEMO), dtype="float32")
    assert len(kept) > 8000  # half a second at least
    expected = demo[mark["offset"] : mark["offset"] + len(kept)]
    assert float(np.abs(kept - expected).max()) < 1e-3

    res = render_session(s, tmp_path / "live.mp4")
    assert res.checked == len(s.checks) and res.mismatched == []  # every checkpointed live frame
    with av.open(str(tmp_path / "live.mp4")) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert float(v.duration * v.time_base) == s.duration_s() == res.frames / 25
        assert abs(float(a.duration * a.time_base) - s.duration_s()) < 0.05
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(a)])
    assert float(np.abs(pcm).max()) > 0.05  # the speech is in the soundtrack

    # An existing session is not overwritten; --resume continues it.
    r = subprocess.run([sys.executable, "-m", "synesthesia", "run", "--headless", "--session", str(path)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "--resume" in r.stderr
    before = list(samples(s))[-1]
    out = run(tmp_path, path, "--resume", str(path),
              until=lambda text: text.count('"type":"segment"') == 2 and frames(text) >= len(s.frames) + 40)
    assert "resumed at frame" in out
    s2 = read_session(path)
    assert len(s2.segments) == 2 and s2.segments[1].first_frame == len(s.frames)
    first_resumed = next(x for x in samples(s2) if x.source == len(s.frames))
    assert first_resumed.state == before.state and first_resumed.t == before.t
    # The resumed live run drew from that state: its checksums match the replay too.
    res2 = render_session(s2, tmp_path / "both.mp4", start_s=s.duration_s())
    assert res2.checked >= 1 and res2.mismatched == []


def test_a_killed_world_stage_continues_its_session(tmp_path: Path) -> None:
    """The supervisor restarts a killed world stage; the new one resumes the log from its last
    record (a line cut short by the kill is dropped) and the render still matches every check."""
    path = tmp_path / "k.jsonl"
    env = dict(os.environ, SYNESTHESIA_RUNTIME_DIR=str(tmp_path / "rt"), **ENV)
    killed = []

    def kill_world_once(text: str) -> bool:
        if not killed and frames(text) >= 60:
            r = subprocess.run([sys.executable, "-m", "synesthesia", "status", "--json"], capture_output=True,
                               text=True, env=env, timeout=30)
            if r.returncode == 0:
                pid = next(s["pid"] for s in json.loads(r.stdout)["stages"] if s["name"] == "world")
                killed.append(frames(text))
                os.kill(pid, signal.SIGKILL)
            return False
        return bool(killed) and text.count('"type":"segment"') == 2 and frames(text) >= killed[0] + 60

    out = run(tmp_path, path, "--session", str(path), until=kill_world_once)
    assert killed and "world: killed by signal 9" in out.replace("exited", "killed") or "signal 9" in out
    s = read_session(path)
    assert s.stopped is None and len(s.segments) == 2
    assert s.segments[1].first_frame >= killed[0]  # what was flushed before the kill is all there
    res = render_session(s, tmp_path / "k.mp4")
    assert res.checked == len(s.checks) >= 4 and res.mismatched == [] and res.notes == []
    # the killed run's FLAC has no final length in its header; its speech is still read
    pcm, notes = soundtrack(s, 0.0, s.ticks()[s.segments[1].first_frame] / 25)
    assert notes == [] and float(np.abs(pcm).max()) > 0.05
