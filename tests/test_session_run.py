"""`synesthesia run --session` / `--resume` with real stage processes, then `synesthesia render`:
the offline frames are the live ones, and a resumed run continues where the last one stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import soundfile

from synesthesia.world.render import render_session
from synesthesia.world.session import read_session, samples

# A small world keeps the run cheap on a shared machine; the path through the stages is the same.
DEMO = Path(__file__).resolve().parent.parent / "python" / "synesthesia" / "data" / "demo.flac"
# The demo plays at once rather than waiting for the recognizer, so the run has audio to keep.
ENV = {"SYNESTHESIA_WORLD__WIDTH": "320", "SYNESTHESIA_WORLD__HEIGHT": "176", "SYNESTHESIA_CAPTURE__WAIT_S": "0"}


def run(tmp_path: Path, *args: str, say: str | None = None, heard: Path | None = None) -> str:
    env = dict(os.environ, SYNESTHESIA_RUNTIME_DIR=str(tmp_path / "rt"), PYTHONUNBUFFERED="1", **ENV)
    p = subprocess.Popen([sys.executable, "-m", "synesthesia", "run", "--headless", *args], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    if say is not None and heard is not None:
        # Say it until the session log (flushed as the run goes) shows the world applied it:
        # a prompt sent before the NLP stage subscribed is not heard.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and p.poll() is None:
            subprocess.run([sys.executable, "-m", "synesthesia", "say", say], capture_output=True, env=env, timeout=30)
            time.sleep(1.0)
            if heard.exists() and '"type":"intent","f"' in heard.read_text() and '"storm"' in heard.read_text():
                break
    out, _ = p.communicate(timeout=90)
    assert p.returncode == 0, out
    return out


def test_live_session_renders_the_live_frames_and_resumes(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    run(tmp_path, "--session", str(path), "--duration", "6", say="a storm at night", heard=path)
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
    out = run(tmp_path, "--resume", str(path), "--duration", "3")
    assert "resumed at frame" in out
    s2 = read_session(path)
    assert len(s2.segments) == 2 and s2.segments[1].first_frame == len(s.frames)
    first_resumed = next(x for x in samples(s2) if x.source == len(s.frames))
    assert first_resumed.state == before.state and first_resumed.t == before.t
    # The resumed live run drew from that state: its checksums match the replay too.
    res2 = render_session(s2, tmp_path / "both.mp4", start_s=s.duration_s())
    assert res2.checked >= 1 and res2.mismatched == []
