"""`synesthesia bench soak`: a real run under viewers, speech and random stage kills, watched
for leaks (runs in the invoking process; the engine runs as `synesthesia run` in a child).

For ``minutes``: ``viewers`` WebSocket clients stream and ack frames (reconnecting when the serve
stage is killed), the bundled spoken demo plays through capture/listen/nlp, a typed prompt goes
in every ``say_every_s``, and every ``kill_every_s`` a random stage is SIGKILLed (never with 0).
Sampled once a second from /proc: each process's RSS and open descriptors. Reported: RSS and fd
growth per minute per stage after warm-up (the first ``warmup_s`` of each process's own life, so
neither a restart nor a fresh process filling its caches counts as a leak), frame gaps at the
viewers (around a kill and otherwise), restarts against kills, frames the server skipped for a
viewer, and what is left after the run stops (processes, shared memory, directories).

With kills, few processes live long past warm-up, so the command line adds a run without kills
(``--leak-minutes``) beside it: one process per stage watched for its whole life. With
``idle_connections``, the end of the run opens that many connections to the serve stage that
never read or never send a request and reports what they cost it and how soon it closed them.

The chaos test in the suite runs the same harness for ~20 s (:func:`soak` with small numbers).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SoakConfig", "SoakResult", "proc_sample", "socket_fds", "soak", "to_markdown"]

STAGES = ("capture", "listen", "nlp", "world", "encode", "serve")
PROMPTS = ("snow over the forest", "a storm over the sea", "mountains at sunset", "fire in the desert at night")
#: A frame gap that starts within this long after a kill counts as "around a kill".
KILL_WINDOW_S = 3.0


@dataclass
class SoakConfig:
    minutes: float = 10.0
    viewers: int = 8
    kill_every_s: float = 10.0
    say_every_s: float = 15.0
    warmup_s: float = 60.0  # of each process, before its growth is measured
    seed: int = 1
    stages: tuple[str, ...] = STAGES
    run_args: tuple[str, ...] = ()
    #: Connections opened to the serve stage at the end of the run (0: none), the first
    #: :data:`STALLED_VIEWERS` of them WebSocket viewers that never read, the rest never send a request.
    idle_connections: int = 0


@dataclass
class _Process:
    stage: str
    pid: int
    born: float
    samples: list[tuple[float, float, int, float]] = field(default_factory=list)  # (t, rss MiB, fds, anon MiB)


@dataclass
class SoakResult:
    config: SoakConfig
    seconds: float
    kills: list[tuple[float, str]]
    restarts: dict[str, int]
    failed: list[str]
    growth: dict[str, dict[str, float]]  # stage -> rss_mib_per_min, fds_per_min, observed_s, processes
    max_gap_after_kill_ms: dict[str, float]
    gaps_kill_ms: list[float]
    gaps_steady_ms: list[float]
    viewer_frames: list[int]
    reconnects: int
    skipped_for_viewers: int
    published: int
    counts: dict[str, int]
    leftovers: list[str]
    exit_code: int | None
    log_tail: list[str]
    #: Every watched process: (stage, pid, [(seconds since it was first seen, RSS MiB, fds, private MiB)]).
    lives: list[tuple[str, int, list[tuple[float, float, int, float]]]] = field(default_factory=list)
    #: What ``idle_connections`` cost the serve stage (see :func:`_idle_probe`), or None.
    idle: dict[str, float] | None = None
    #: The machine's 1-minute load average, sampled once a second during the run.
    load: list[float] = field(default_factory=list)

    def gap(self, which: str, q: float) -> float | None:
        values = self.gaps_kill_ms if which == "kill" else self.gaps_steady_ms
        return float(np.percentile(values, q)) if values else None


def proc_sample(pid: int) -> tuple[float, int, float] | None:
    """RSS (MiB), open descriptors and the private part of RSS (``RssAnon``, MiB): the heap and
    anonymous maps, without pages of mapped files (libraries, models) or shared memory (the
    rings) that a process touches for the first time, which grow RSS but are no leak."""
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if line.startswith(("VmRSS", "RssAnon")))
        rss, anon = (int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "RssAnon"))
        return rss, len(os.listdir(f"/proc/{pid}/fd")), anon
    except (OSError, ValueError, IndexError, KeyError):
        return None


def socket_fds(pid: int) -> int:
    n = 0
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0
    for fd in fds:
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return n


#: How many of the idle connections are WebSocket viewers that never read (the serve stage
#: takes up to its viewer limit, 64 by default, and answers the rest 503).
STALLED_VIEWERS = 64
#: How long the idle probe waits for the serve stage to close every connection.
IDLE_PROBE_LIMIT_S = 60.0


def _idle_probe(port: int, pid: int, n: int) -> dict[str, float]:
    """Open ``n`` connections to the serve stage ``pid`` listening on ``port`` and hold them
    without reading: the first :data:`STALLED_VIEWERS` complete a WebSocket handshake (frames
    then pile up unread), the rest never send a request. Watched from the server's side (its
    socket descriptors and RSS; reading here would unstall them) until it has closed them all."""
    import base64
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < n + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n + 256, hard), hard))
    base = socket_fds(pid)
    sample = proc_sample(pid)
    before = sample[0] if sample else 0.0
    peak, peak_sockets = before, base
    conns: list[socket.socket] = []
    viewers = refused = 0
    t0 = time.monotonic()
    try:
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=5.0)
            conns.append(s)
            if i < STALLED_VIEWERS:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                key = base64.b64encode(os.urandom(16)).decode()
                s.sendall(f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                          .encode())
                head = b""
                while b"\r\n\r\n" not in head and len(head) < 4096:
                    got = s.recv(1)
                    if not got:
                        break
                    head += got
                if head.startswith(b"HTTP/1.1 101"):
                    viewers += 1
                else:
                    refused += 1
        opened = time.monotonic() - t0
        # Closed: the server holds no more sockets than before (2 of slack for a viewer reconnecting).
        while time.monotonic() - t0 < IDLE_PROBE_LIMIT_S:
            sockets = socket_fds(pid)
            sample = proc_sample(pid)
            if sample is not None:
                peak = max(peak, sample[0])
            peak_sockets = max(peak_sockets, sockets)
            if sockets <= base + 2:
                break
            time.sleep(0.25)
        closed_after = time.monotonic() - t0
        left = max(0, socket_fds(pid) - base)
        sample = proc_sample(pid)
        after = sample[0] if sample else 0.0
    finally:
        for s in conns:
            s.close()
    return {"connections": float(n), "viewers": float(viewers), "refused": float(refused), "opened_s": opened,
            "rss_before": before, "rss_peak": peak, "rss_after": after, "peak_sockets": float(peak_sockets - base),
            "closed_after_s": closed_after, "left_open": float(left)}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _pooled_slope_per_min(series: list[list[tuple[float, float]]]) -> float:
    """The growth per minute that all of a stage's processes share: a least-squares slope of value
    against time with one intercept per process, so each restart starts afresh and short lives
    still count, weighted by how long each was watched."""
    num = den = 0.0
    for points in series:
        t = np.asarray([p[0] for p in points])
        v = np.asarray([p[1] for p in points])
        t = t - t.mean()
        num += float(np.dot(t, v - v.mean()))
        den += float(np.dot(t, t))
    return num / den * 60.0 if den else 0.0


class _Viewers:
    """``n`` WebSocket viewers on their own event loop that record when each frame arrived,
    ack it like the browser viewer does, and reconnect after the serve stage restarts. Like
    pages with and without WebCodecs, even-numbered viewers announce H.264 (and get the video
    stream), odd-numbered ones JPEG only."""

    def __init__(self, n: int, url: Callable[[], str]) -> None:
        self.n, self.url = n, url
        self.arrivals: list[list[float]] = [[] for _ in range(n)]
        self.skipped: dict[str, int] = {}
        self.reconnects = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="soak-viewers", daemon=True)

    async def _one(self, i: int) -> None:
        import aiohttp

        async with aiohttp.ClientSession() as session:
            first = True
            while not self._stop.is_set():
                try:
                    async with session.ws_connect(self.url(), heartbeat=10.0) as ws:
                        if not first:
                            self.reconnects += 1
                        first = False
                        client = ""
                        while not self._stop.is_set():
                            msg = await ws.receive(timeout=1.0)
                            if msg.type == aiohttp.WSMsgType.BINARY:
                                self.arrivals[i].append(time.monotonic())
                            elif msg.type == aiohttp.WSMsgType.TEXT:
                                ev = json.loads(msg.data)
                                if ev.get("type") == "frame":
                                    await ws.send_str(json.dumps({"type": "ack", "frame": ev["frame"]}))
                                elif ev.get("type") == "hello":
                                    client = f"{ev.get('client')}@{self.reconnects}"
                                    await ws.send_str(json.dumps({"type": "hello", "codecs": list(self.codecs(i))}))
                                elif ev.get("type") == "hud" and client:
                                    self.skipped[f"{i}:{client}"] = int(ev.get("dropped", 0))
                            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                                break
                except (asyncio.TimeoutError, aiohttp.ClientError, ConnectionError):
                    pass
                await asyncio.sleep(0.2)

    async def _main(self) -> None:
        await asyncio.gather(*(self._one(i) for i in range(self.n)))
        await asyncio.sleep(0.25)  # closed transports finish closing before the loop goes

    @staticmethod
    def codecs(i: int) -> tuple[str, ...]:
        return ("h264", "jpeg") if i % 2 == 0 else ("jpeg",)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def soak(cfg: SoakConfig, progress: Callable[[str], None] = lambda s: None) -> SoakResult:
    from synesthesia.bus import CommandClient, Endpoints

    rng = random.Random(cfg.seed)
    with tempfile.TemporaryDirectory(prefix="synesthesia-soak-") as tmp:
        rt = Path(tmp) / "rt"
        log_path = Path(tmp) / "run.log"
        env = dict(os.environ, SYNESTHESIA_RUNTIME_DIR=str(rt), PYTHONUNBUFFERED="1")
        # A fixed port, as a user has (8765 by default): a restarted serve stage comes back where
        # the viewers reconnect to.
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with open(log_path, "w") as log:
            proc = subprocess.Popen([sys.executable, "-m", "synesthesia", "run", "--port", str(port), *cfg.run_args],
                                    stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp)
        client: CommandClient | None = None
        viewers: _Viewers | None = None
        procs: dict[int, _Process] = {}
        kills: list[tuple[float, str]] = []
        load: list[float] = []
        seen_pids: set[int] = set()
        status: dict[str, Any] = {}
        idle: dict[str, float] | None = None
        run_id = ""
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(f"the run ended during start-up: {log_path.read_text()[-2000:]}")
                runs = sorted(rt.glob("run-*/*-supervisor-cmd")) if rt.exists() else []
                if runs and client is None:
                    run_dir = runs[0].parent
                    run_id = run_dir.name[len("run-"):]
                    client = CommandClient(Endpoints.for_run(run_id, run_dir).command("supervisor"))
                if client is not None:
                    reply = client.call("status", timeout=2.0)
                    if reply is not None and reply.ok:
                        status = reply.result
                        if status["viewer"] and all(s["state"] == "running" for s in status["stages"]) and \
                                any(v["frames"] for s in status["stages"] for v in s.get("streams", {}).values()):
                            break
                time.sleep(0.3)
            else:
                raise RuntimeError("the run did not come up within 90 s")
            assert client is not None
            viewer_url: list[str] = [str(status["viewer"])]  # followed from the status replies

            def ws_url() -> str:
                return viewer_url[0].replace("http", "ws", 1).split("?")[0].rstrip("/") + "/ws"

            progress(f"run {run_id} up; {cfg.viewers} viewers on {ws_url()}")
            viewers = _Viewers(cfg.viewers, ws_url)
            viewers.start()
            t0 = time.monotonic()
            end = t0 + cfg.minutes * 60
            next_kill = t0 + cfg.kill_every_s
            next_say = t0 + 2.0
            next_note = t0 + 60
            while time.monotonic() < end:
                now = time.monotonic()
                load.append(os.getloadavg()[0])
                reply = client.call("status", timeout=2.0)
                if reply is not None and reply.ok:
                    status = reply.result
                    viewer_url[0] = status["viewer"] or viewer_url[0]
                    members = [("supervisor", int(status["pid"]))] + [(s["name"], s["pid"]) for s in status["stages"] if s["pid"]]
                    for stage, pid in members:
                        seen_pids.add(pid)
                        p = procs.setdefault(pid, _Process(stage, pid, now))
                        sample = proc_sample(pid)
                        if sample is not None:
                            p.samples.append((now, *sample))
                if now >= next_say:
                    client.call("say", {"text": rng.choice(PROMPTS)}, timeout=2.0)
                    next_say = now + cfg.say_every_s
                if cfg.kill_every_s > 0 and now >= next_kill and status:
                    victims = [s for s in status["stages"] if s["name"] in cfg.stages and s["state"] == "running" and s["pid"]]
                    if victims:
                        victim = rng.choice(victims)
                        try:
                            os.kill(victim["pid"], signal.SIGKILL)
                            kills.append((time.monotonic(), victim["name"]))
                        except ProcessLookupError:
                            pass
                    next_kill = now + cfg.kill_every_s
                if now >= next_note:
                    recent = sum(1 for a in viewers.arrivals for t in a[-2000:] if t > now - 60)
                    progress(f"{(now - t0) / 60:.0f} min: {len(kills)} kills, {recent} frames at the viewers "
                             "in the last minute")
                    next_note = now + 60
                time.sleep(max(0.0, 1.0 - (time.monotonic() - now)))
            seconds = time.monotonic() - t0
            # Let the last kill heal, then read the final state before stopping.
            heal = time.monotonic() + 15
            while time.monotonic() < heal:
                reply = client.call("status", timeout=2.0)
                if reply is not None and reply.ok:
                    status = reply.result
                    if all(s["state"] in ("running", "failed") for s in status["stages"]):
                        break
                time.sleep(0.3)
            serve_pid = next((s["pid"] for s in status.get("stages", []) if s["name"] == "serve" and s["pid"]), 0)
            if cfg.idle_connections > 0 and serve_pid:
                progress(f"idle probe: {cfg.idle_connections} connections to the serve stage (pid {serve_pid})")
                p0 = time.monotonic()
                idle = _idle_probe(port, serve_pid, cfg.idle_connections)
                p1 = time.monotonic()
                idle["viewer_gap_max_ms"] = max(((b - a) * 1000 for arr in viewers.arrivals
                                                 for a, b in zip(arr, arr[1:]) if p0 <= b and a <= p1), default=0.0)
                idle["viewer_frames"] = float(sum(1 for arr in viewers.arrivals for t in arr if p0 <= t <= p1))
                idle["probe_s"] = p1 - p0
            viewers.stop()
        finally:
            if viewers is not None:
                viewers.stop()
            if client is not None:
                client.close()
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        time.sleep(0.5)
        leftovers = [f"process {pid} ({procs[pid].stage if pid in procs else '?'})" for pid in sorted(seen_pids) if _alive(pid)]
        if run_id:
            leftovers += [f"shared memory /dev/shm/{p.name}" for p in Path("/dev/shm").iterdir() if run_id in p.name]
            if (rt / f"run-{run_id}").exists():
                leftovers.append(f"runtime directory run-{run_id}")
        log_tail = log_path.read_text(errors="replace").splitlines()[-40:]

    growth: dict[str, dict[str, float]] = {}
    for stage in ("supervisor", *STAGES):
        lives = [p for p in procs.values() if p.stage == stage]
        measured = [[s for s in p.samples if s[0] - p.born >= cfg.warmup_s] for p in lives]
        measured = [m for m in measured if len(m) >= 5]
        if not lives:
            continue
        if not measured:
            growth[stage] = {"processes": len(lives), "observed_s": 0.0}
            continue
        longest = max(measured, key=lambda m: m[-1][0] - m[0][0])
        growth[stage] = {
            "processes": len(lives),
            "measured": len(measured),
            "observed_s": sum(m[-1][0] - m[0][0] for m in measured),
            "longest_s": longest[-1][0] - longest[0][0],
            "rss_mib_per_min": _pooled_slope_per_min([[(s[0], s[1]) for s in m] for m in measured]),
            "anon_mib_per_min": _pooled_slope_per_min([[(s[0], s[3]) for s in m] for m in measured]),
            "fds_per_min": _pooled_slope_per_min([[(s[0], float(s[2])) for s in m] for m in measured]),
            "fds_growth_max": float(max(max(s[2] for s in m) - m[0][2] for m in measured)),
            "rss_longest_per_min": _pooled_slope_per_min([[(s[0], s[1]) for s in longest]]),
            "rss_last": longest[-1][1],
            "rss_first": longest[0][1],
            # The second half of the longest life alone: what is still growing once warm.
            "rss_late_per_min": _pooled_slope_per_min([[(s[0], s[1]) for s in longest[len(longest) // 2:]]]),
            "fds_first": float(longest[0][2]),
            "fds_last": float(longest[-1][2]),
        }
    gaps_kill: list[float] = []
    gaps_steady: list[float] = []
    after_kill: dict[str, float] = {}  # stage -> the longest gap after one of its kills
    for arrivals in viewers.arrivals if viewers else []:
        for a, b in zip(arrivals, arrivals[1:]):
            near = [stage for k, stage in kills if k - 0.5 <= a <= k + KILL_WINDOW_S or a <= k <= b]
            (gaps_kill if near else gaps_steady).append((b - a) * 1000)
            for stage in near:
                after_kill[stage] = max(after_kill.get(stage, 0.0), (b - a) * 1000)
    restarts = {s["name"]: int(s["restarts"]) for s in status.get("stages", [])}
    return SoakResult(
        config=cfg, seconds=seconds, kills=kills, restarts=restarts,
        failed=[s["name"] for s in status.get("stages", []) if s["state"] == "failed"],
        growth=growth, max_gap_after_kill_ms=after_kill, gaps_kill_ms=gaps_kill, gaps_steady_ms=gaps_steady,
        viewer_frames=[len(a) for a in viewers.arrivals] if viewers else [],
        reconnects=viewers.reconnects if viewers else 0,
        skipped_for_viewers=sum(viewers.skipped.values()) if viewers else 0,
        published=sum(v["frames"] for s in status.get("stages", []) if s["name"] == "encode" for v in s.get("streams", {}).values()),
        counts=dict(status.get("counts", {})), leftovers=leftovers, exit_code=proc.returncode, log_tail=log_tail,
        lives=[(p.stage, p.pid, [(t - p.born, rss, fds, anon) for t, rss, fds, anon in p.samples]) for p in procs.values()],
        idle=idle, load=load,
    )


def _f(v: float | None, digits: int = 2) -> str:
    return "" if v is None else f"{v:.{digits}f}"



def _load(r: SoakResult) -> str:
    if not r.load:
        return "not sampled"
    return f"median {np.median(r.load):.2f}, max {max(r.load):.2f}"


def _growth_lines(r: SoakResult) -> list[str]:
    """Per stage: every process pooled (kills) and the longest-lived one on its own."""
    lines = ["| stage | processes (watched past warm-up) | watched s (longest) | RSS MiB/min | of which private | fds/min | "
             "most fds gained by one process | longest: RSS MiB after warm-up -> end, MiB/min, MiB/min over its "
             "second half, fds first -> last |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for stage, g in r.growth.items():
        if "rss_mib_per_min" not in g:
            lines.append(f"| {stage} | {int(g['processes'])} (0) | 0 | | | | | |")
            continue
        lines.append(f"| {stage} | {int(g['processes'])} ({int(g['measured'])}) | {g['observed_s']:.0f} ({g['longest_s']:.0f}) | "
                     f"{g['rss_mib_per_min']:.3f} | {g['anon_mib_per_min']:.3f} | {g['fds_per_min']:.3f} | {g['fds_growth_max']:.0f} | "
                     f"{g['rss_first']:.1f} -> {g['rss_last']:.1f}, {g['rss_longest_per_min']:.3f}, "
                     f"{g['rss_late_per_min']:.3f}, {g['fds_first']:.0f} -> {g['fds_last']:.0f} |")
    return lines


def _gap_rows(label: str, r: SoakResult) -> list[str]:
    rows = []
    for which, values in ((f"{label}: steady (no kill within {KILL_WINDOW_S:g} s)", r.gaps_steady_ms),
                          (f"{label}: around a kill", r.gaps_kill_ms)):
        if values:
            rows.append(f"| {which} | {len(values)} | {np.percentile(values, 50):.1f} | {np.percentile(values, 99):.1f} | "
                        f"{max(values):.1f} |")
        elif r.config.kill_every_s > 0 or "steady" in which:
            rows.append(f"| {which} | 0 | | | |")
    return rows


def _idle_lines(idle: dict[str, float], viewers: int) -> list[str]:
    n = int(idle["connections"])
    return [
        f"## {n} idle connections to the serve stage", "",
        f"At the end of the run without kills, {n} connections were opened to the serve stage and never read: the "
        f"first {STALLED_VIEWERS} sent a WebSocket handshake (frames then pile up unread), the rest never sent a "
        f"request. RSS and open sockets were read from the serve process itself; \"closed\" is the time from the "
        f"first connection opened until the serve process held no more sockets than before (so no connection "
        f"lived longer). The {viewers} soak viewers stayed connected throughout.", "",
        "| connections | never-reading viewers accepted / refused 503 (limit 64, soak viewers included) | opened in s | "
        "serve RSS MiB before -> peak -> after | cost at peak (MiB) | most sockets held | all closed after (s) | "
        "left open | longest frame gap at the soak viewers meanwhile (ms) |",
        "|---:|---|---:|---|---:|---:|---:|---:|---:|",
        f"| {n} | {idle['viewers']:.0f} / {idle['refused']:.0f} | {idle['opened_s']:.1f} | {idle['rss_before']:.1f} -> "
        f"{idle['rss_peak']:.1f} -> {idle['rss_after']:.1f} | {idle['rss_peak'] - idle['rss_before']:.1f} | "
        f"{idle['peak_sockets']:.0f} | {idle['closed_after_s']:.1f} | {idle['left_open']:.0f} | "
        f"{idle.get('viewer_gap_max_ms', 0.0):.0f} |", "",
        "Target: at most 50 MiB and all closed within 30 s: "
        f"{'met' if idle['rss_peak'] - idle['rss_before'] <= 50 and idle['closed_after_s'] <= 30 and not idle['left_open'] else 'missed'}.",
        "",
    ]


def to_markdown(r: SoakResult, command: str, provenance: dict[str, Any], leak: SoakResult | None = None,
                note: str = "") -> str:
    """The report of a soak run ``r``; with ``leak``, a run without kills reported beside it."""
    cfg = r.config
    kills_by: dict[str, int] = {}
    for _, stage in r.kills:
        kills_by[stage] = kills_by.get(stage, 0) + 1
    title = (f"a random stage SIGKILLed every {cfg.kill_every_s:g} s" if cfg.kill_every_s > 0 else "no kills")
    if leak is not None:
        title += f"; {leak.seconds / 60:.1f} minutes without kills beside it"
    runs = [("with kills" if cfg.kill_every_s > 0 else "run", r)] + ([("without kills", leak)] if leak else [])
    lines = [
        f"# Soak: {r.seconds / 60:.1f} minutes, {cfg.viewers} viewers, {title}",
        "",
        f"- command: `{command}`",
        f"- date: {provenance.get('date')}; commit {provenance.get('git_commit')}; {provenance.get('cpu')}, "
        f"{provenance.get('cores')} cores; {provenance.get('platform')}",
        "- machine load (1-minute load average, sampled every second): "
        + "; ".join(f"{label} {_load(x)}" for label, x in runs)
        + f" on {provenance.get('cores')} cores. " + (note or "The machine may have been shared with other jobs: "
                                                             "frame gaps include their load."),
        f"- speech: the bundled spoken demo looping through capture/listen/nlp; a typed prompt every {cfg.say_every_s:g} s",
        "- run exit code after SIGINT: " + ", ".join(f"{x.exit_code} ({label})" for label, x in runs),
        "",
    ]
    if cfg.kill_every_s > 0:
        lines += ["## Kills and restarts", "",
                  "| stage | kills | restarts | longest frame gap at a viewer after its kill (ms) |",
                  "|---|---:|---:|---:|"]
        for stage in STAGES:
            lines.append(f"| {stage} | {kills_by.get(stage, 0)} | {r.restarts.get(stage, 0)} | "
                         f"{_f(r.max_gap_after_kill_ms.get(stage), 0)} |")
        lines += [f"| **all** | {len(r.kills)} | {sum(r.restarts.values())} | |", ""]
    for label, x in runs:
        lines.append(f"Stages failed ({label}): {', '.join(x.failed) or 'none'}. "
                     f"Counts: {', '.join(f'{k} {v}' for k, v in sorted(x.counts.items()))}.")
    lines += ["", f"## Growth after warm-up (the first {cfg.warmup_s:g} s of each process)", "",
              f"Warm-up is the first {cfg.warmup_s:g} s of each process's life, counted from when the supervisor "
              "first reported its pid: a fresh process fills its allocator arenas, codec and model buffers and "
              "import caches there, which is not a leak. Growth per minute is the slope of RSS (or open "
              "descriptors) against time shared by all of a stage's processes watched past warm-up (one "
              "intercept per process, so a restart is not growth); \"of which private\" is the same slope of "
              "RssAnon, the heap and anonymous maps without pages of mapped files or of the shared-memory rings "
              "touched for the first time. The longest-lived process is shown on its own beside it, with the "
              "slope over the second half of its life alone.", ""]
    for label, x in runs:
        if len(runs) > 1:
            extra = (f"most processes live {x.config.kill_every_s * len(x.config.stages):g} s on average, so "
                     "little is watched past warm-up and warm-up's tail still weighs in"
                     if x.config.kill_every_s > 0 else "one process per stage watched for the whole run: "
                     "this is the leak figure")
            lines += [f"### {label.capitalize()} ({x.seconds / 60:.1f} minutes; {extra})", ""]
        lines += [*_growth_lines(x), ""]
    lines += ["## Frame gaps at the viewers (ms between consecutive frames)", "",
              "| gaps | n | p50 | p99 | max |", "|---|---:|---:|---:|---:|"]
    for label, x in runs:
        lines += _gap_rows(label, x)
    lines.append("")
    for label, x in runs:
        per = ", ".join(f"{n} ({'/'.join(_Viewers.codecs(i))})" for i, n in enumerate(x.viewer_frames))
        lines.append(f"Frames received per viewer ({label}): {per} (the encode process "
                     f"alive at the end published {x.published}); reconnects after serve restarts: {x.reconnects}; "
                     f"frames the server skipped for a slow viewer: {x.skipped_for_viewers}.")
    lines.append("")
    for _, x in runs:
        if x.idle is not None:
            lines += _idle_lines(x.idle, x.config.viewers)
    lines += ["## Left after stop", ""]
    for label, x in runs:
        lines.append(f"- {label}: " + ("; ".join(x.leftovers) or "nothing (processes, shared memory, runtime directory)"))
    lines.append("")
    return "\n".join(lines)


def main(args: Any) -> int:
    from synesthesia.bench.provenance import collect

    def interrupt(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt  # stop the run and clean up, also when SIGINT is ignored (nohup, &)

    signal.signal(signal.SIGTERM, interrupt)
    leak_minutes = getattr(args, "leak_minutes", 0.0) or 0.0
    idle_n = getattr(args, "idle_connections", 0) or 0
    cfg = SoakConfig(minutes=args.minutes, viewers=args.viewers, kill_every_s=args.kill_every, seed=args.seed,
                     idle_connections=0 if leak_minutes > 0 else idle_n)
    command = "synesthesia " + " ".join(shlex.quote(a) for a in sys.argv[1:])

    def progress(s: str) -> None:
        print(f"soak: {s}", file=sys.stderr, flush=True)

    result = soak(cfg, progress=progress)
    leak = None
    if leak_minutes > 0:
        progress(f"then {leak_minutes:g} minutes without kills")
        leak = soak(SoakConfig(minutes=leak_minutes, viewers=args.viewers, kill_every_s=0.0, seed=args.seed,
                               idle_connections=idle_n), progress=progress)
    text = to_markdown(result, command, collect(command=command), leak, note=getattr(args, "note", "") or "")
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    bad = [x for x in (result, leak) if x is not None and (x.leftovers or x.failed)]
    return 1 if bad else 0
