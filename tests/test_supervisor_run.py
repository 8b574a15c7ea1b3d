"""`synesthesia run` with real stage processes, shared memory and ZeroMQ sockets."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent



def children_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def start(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    e = dict(os.environ, SYNESTHESIA_RUNTIME_DIR=str(tmp_path / "rt"), PYTHONUNBUFFERED="1")
    e.update(env or {})
    return subprocess.Popen([sys.executable, "-m", "synesthesia", "run", "--headless", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=e, cwd=tmp_path)


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    e = dict(os.environ, SYNESTHESIA_RUNTIME_DIR=str(tmp_path / "rt"))
    return subprocess.run([sys.executable, "-m", "synesthesia", *args], capture_output=True, text=True, env=e, timeout=30)


def wait_for_status(tmp_path: Path, cond, timeout: float = 30.0) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        r = cli(tmp_path, "status", "--json")
        if r.returncode == 0:
            last = json.loads(r.stdout)
            if cond(last):
                return last
        time.sleep(0.3)
    raise AssertionError(f"status never matched; last: {last}")


def frames_of(status: dict, stage: str = "encode") -> int:  # type: ignore[type-arg]
    st = next(s for s in status["stages"] if s["name"] == stage)
    return sum(v["frames"] for v in st.get("streams", {}).values())


def segments_with(run_id: str) -> list[str]:
    return [p.name for p in Path("/dev/shm").iterdir() if run_id in p.name]


def test_duration_run_ends_cleanly(tmp_path: Path) -> None:
    p = start(tmp_path, "--duration", "20")
    status = wait_for_status(tmp_path, lambda s: frames_of(s) > 0 and all(x["state"] == "running" for x in s["stages"]))
    run_id = status["run"]
    assert {s["name"] for s in status["stages"]} >= {"world", "encode"}
    assert all(s["state"] == "running" for s in status["stages"])
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 0, out
    assert "stopping: --duration 20 s elapsed" in out
    assert segments_with(run_id) == []
    assert not (tmp_path / "rt" / f"run-{run_id}").exists()
    assert children_of(p.pid) == []


def test_killed_stages_are_restarted_and_frames_keep_coming(tmp_path: Path) -> None:
    p = start(tmp_path)
    try:
        status = wait_for_status(tmp_path, lambda s: frames_of(s) > 0 and all(x["state"] == "running" for x in s["stages"]))
        # What was asked for before a crash survives it: the restarted world replays the scene.
        assert cli(tmp_path, "say", "snow over the forest").returncode == 0
        status = wait_for_status(tmp_path, lambda s: s["counts"]["applied"] >= 1)
        for name in ("world", "encode"):
            pid = next(s["pid"] for s in status["stages"] if s["name"] == name)
            os.kill(pid, signal.SIGKILL)
            t0 = time.monotonic()
            status = wait_for_status(tmp_path, lambda s, n=name, old=pid: any(
                x["name"] == n and x["restarts"] == 1 and x["pid"] not in (None, old) for x in s["stages"]))
            assert time.monotonic() - t0 < 10
        before = frames_of(status)
        wait_for_status(tmp_path, lambda s: frames_of(s) != before and all(x["state"] == "running" for x in s["stages"]))
        assert cli(tmp_path, "say", "a storm over the mountains").returncode == 0
    finally:
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=60)
    assert p.returncode == 0, out
    assert "stopping: SIGINT" in out
    # the typed intent, and whatever of the spoken demo was heard before the kill
    assert re.search(r"restored the scene from the run's last [1-9][0-9]* intents", out), out
    assert "encode: killed by signal 9" in out.replace("exited", "killed") or "signal 9" in out
    assert children_of(p.pid) == []
    assert segments_with(status["run"]) == []


def test_stage_that_crashes_on_start_fails_the_run(tmp_path: Path) -> None:
    code = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from synesthesia.settings import load_settings
from synesthesia.supervisor.arbiter import Arbiter
from synesthesia.supervisor.watcher import StageSpec
s = load_settings(overrides={{"headless": True, "supervisor": {{"max_restarts": 2, "restart_backoff_s": 0.05}}}})
sys.exit(Arbiter(s, [StageSpec("broken", "crashing_stage")]).run())
"""
    e = dict(os.environ, SYNESTHESIA_RUNTIME_DIR=str(tmp_path / "rt"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "broken: exited with code 1; restarting in" in r.stdout
    assert "broken failed (exited with code 1; 2 restarts within" in r.stdout
    assert "this stage always fails to start" in r.stdout  # its traceback reached the log


def test_bad_setting_is_named(tmp_path: Path) -> None:
    r = cli(tmp_path, "run", "--port", "99999")
    assert r.returncode == 2 and "serve.port: invalid value 99999" in r.stderr
    (tmp_path / "bad.toml").write_text("[world]\nfsp = 30\n")
    r = cli(tmp_path, "run", "--config", str(tmp_path / "bad.toml"))
    assert r.returncode == 2 and "world.fsp: unknown setting" in r.stderr


def test_commands_without_a_running_engine(tmp_path: Path) -> None:
    for args in (["status"], ["stop"], ["say", "snow"]):
        r = cli(tmp_path, *args)
        assert r.returncode != 0 and "no running engine found" in r.stderr


def test_stop_command(tmp_path: Path) -> None:
    p = start(tmp_path)
    wait_for_status(tmp_path, lambda s: frames_of(s) > 0)
    assert cli(tmp_path, "stop").returncode == 0
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 0 and "stopping: stop command" in out


def test_supervisor_sigkill_leftovers_are_cleaned_next_time(tmp_path: Path) -> None:
    p = start(tmp_path)
    status = wait_for_status(tmp_path, lambda s: frames_of(s) > 0)
    stage_pids = [s["pid"] for s in status["stages"]]
    os.kill(p.pid, signal.SIGKILL)
    p.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in stage_pids):
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in stage_pids), "stages outlived their supervisor"
    assert segments_with(status["run"]) != []
    r = cli(tmp_path, "cleanup")
    assert r.returncode == 0 and status["run"] in r.stdout
    assert segments_with(status["run"]) == []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_viewer_streams_frames_and_takes_prompts(tmp_path: Path) -> None:
    import asyncio
    import io

    import aiohttp
    from PIL import Image

    e = dict(os.environ, SYNESTHESIA_RUNTIME_DIR=str(tmp_path / "rt"), PYTHONUNBUFFERED="1")
    rec = tmp_path / "stream.avi"
    p = subprocess.Popen([sys.executable, "-m", "synesthesia", "run", "--port", "0", "--record", str(rec)], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, env=e, cwd=tmp_path)
    try:
        status = wait_for_status(tmp_path, lambda s: s["viewer"] and frames_of(s) > 0)

        async def client() -> tuple[bytes, dict]:  # type: ignore[type-arg]
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(status["viewer"].replace("http", "ws", 1).rstrip("/") + "/ws") as ws:
                    await ws.send_json({"type": "prompt", "text": "snow over the forest"})
                    meta: dict = {}  # type: ignore[type-arg]
                    async for msg in ws:
                        if msg.type == aiohttp.WSMsgType.TEXT and msg.json().get("type") == "frame":
                            meta = msg.json()
                        elif msg.type == aiohttp.WSMsgType.BINARY and meta:
                            return msg.data, meta
            raise AssertionError("no frame")

        jpeg, meta = asyncio.run(asyncio.wait_for(client(), 30))
        img = Image.open(io.BytesIO(jpeg))
        assert img.size == (meta["width"], meta["height"]) == (320, 176)
        wait_for_status(tmp_path, lambda s: s["counts"]["prompts"] >= 1)
        # A serve restart keeps what was recorded and goes on in a numbered part.
        serve_pid = next(st["pid"] for st in status["stages"] if st["name"] == "serve")
        os.kill(serve_pid, signal.SIGKILL)
        wait_for_status(tmp_path, lambda s: any(st["name"] == "serve" and st["state"] == "running" and st["pid"] != serve_pid
                                                for st in s["stages"]))
        part2 = tmp_path / "stream.part2.avi"
        deadline = time.monotonic() + 30
        while not (part2.exists() and part2.stat().st_size > 10_000) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=60)
    assert p.returncode == 0, out
    assert "prompt (typed): 'snow over the forest'" in out
    import cv2

    first = rec.read_bytes()
    assert first[:4] == b"RIFF" and len(first) > 10_000, "the part recorded before the restart is kept"
    video = cv2.VideoCapture(str(part2))
    ok, picture = video.read()
    video.release()
    assert ok and picture.shape[:2] == (176, 320), "the recording opens in a common decoder"


def test_live_view_on_a_terminal(tmp_path: Path) -> None:
    """On a terminal (a real pseudo-terminal here) the supervisor redraws a live table of the
    stages instead of printing log lines, and Ctrl-C (SIGINT) still ends the run cleanly."""
    import pty
    import select

    master, slave = pty.openpty()
    e = dict(os.environ, SYNESTHESIA_RUNTIME_DIR=str(tmp_path / "rt"), PYTHONUNBUFFERED="1", TERM="xterm")
    p = subprocess.Popen([sys.executable, "-m", "synesthesia", "run", "--port", "0", "--duration", "60"],
                         stdin=slave, stdout=slave, stderr=slave, env=e, cwd=tmp_path, close_fds=True)
    os.close(slave)
    screen = b""

    def read_for(seconds: float) -> None:
        nonlocal screen
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    screen += os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    return

    try:
        wait_for_status(tmp_path, lambda s: frames_of(s) > 0 and all(x["state"] == "running" for x in s["stages"]), 60)
        read_for(2.0)  # at least one redraw after every stage runs
        last = screen.rsplit(b"\x1b[H\x1b[2J", 1)[-1].decode(errors="replace")
        assert screen.count(b"\x1b[H\x1b[2J") >= 2, "the table is redrawn in place"
        assert "(Ctrl-C to stop)" in last and "viewer: http://127.0.0.1:" in last
        for stage in ("capture", "listen", "nlp", "world", "encode", "serve"):
            assert any(line.split()[:2] == [stage, "running"] for line in last.splitlines()), (stage, last)
        assert "frames: " in last and "transcript:" in last
    finally:
        p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 60
        while p.poll() is None and time.monotonic() < deadline:
            read_for(0.2)  # keep draining: a child blocked on a full terminal could not stop
        if p.poll() is None:
            p.kill()
        p.wait()
        os.close(master)
    assert p.returncode == 0, screen.decode(errors="replace")[-3000:]
    assert children_of(p.pid) == []
