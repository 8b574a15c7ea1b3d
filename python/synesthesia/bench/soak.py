"""`synesthesia bench soak`: a real run under viewers, speech and random stage kills, watched
for leaks (runs in the invoking process; the engine runs as `synesthesia run` in a child).

For ``minutes``: ``viewers`` WebSocket clients stream and ack frames (reconnecting when the serve
stage is killed), the bundled spoken demo plays through capture/listen/nlp, a typed prompt goes
in every ``say_every_s``, and every ``kill_every_s`` a random stage is SIGKILLed. Sampled once a
second from /proc: each process's RSS and open descriptors. Reported: RSS and fd growth per
minute per stage after warm-up (each process's own life, so a restart is not a leak), frame gaps
at the viewers (around a kill and otherwise), restarts against kills, frames the server skipped
for a viewer, and what is left after the run stops (processes, shared memory, directories).

The chaos test in the suite runs the same harness for ~20 s (:func:`soak` with small numbers).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
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

__all__ = ["SoakConfig", "SoakResult", "soak", "to_markdown"]

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
    warmup_s: float = 30.0  # of each process, before its growth is measured
    seed: int = 1
    stages: tuple[str, ...] = STAGES
    run_args: tuple[str, ...] = ()


@dataclass
class _Process:
    stage: str
    pid: int
    born: float
    samples: list[tuple[float, float, int]] = field(default_factory=list)  # (t, rss MiB, fds)


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

    def gap(self, which: str, q: float) -> float | None:
        values = self.gaps_kill_ms if which == "kill" else self.gaps_steady_ms
        return float(np.percentile(values, q)) if values else None


def _proc_sample(pid: int) -> tuple[float, int] | None:
    try:
        with open(f"/proc/{pid}/statm") as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1 << 20)
        return rss, len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, ValueError, IndexError):
        return None


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
    ack it like the browser viewer does, and reconnect after the serve stage restarts."""

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
        seen_pids: set[int] = set()
        status: dict[str, Any] = {}
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
            viewer_url = [status["viewer"]]  # followed from the status replies

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
                reply = client.call("status", timeout=2.0)
                if reply is not None and reply.ok:
                    status = reply.result
                    viewer_url[0] = status["viewer"] or viewer_url[0]
                    members = [("supervisor", int(status["pid"]))] + [(s["name"], s["pid"]) for s in status["stages"] if s["pid"]]
                    for stage, pid in members:
                        seen_pids.add(pid)
                        p = procs.setdefault(pid, _Process(stage, pid, now))
                        sample = _proc_sample(pid)
                        if sample is not None:
                            p.samples.append((now, *sample))
                if now >= next_say:
                    client.call("say", {"text": rng.choice(PROMPTS)}, timeout=2.0)
                    next_say = now + cfg.say_every_s
                if now >= next_kill and status:
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
            "fds_per_min": _pooled_slope_per_min([[(s[0], float(s[2])) for s in m] for m in measured]),
            "fds_growth_max": float(max(max(s[2] for s in m) - m[0][2] for m in measured)),
            "rss_longest_per_min": _pooled_slope_per_min([[(s[0], s[1]) for s in longest]]),
            "rss_last": longest[-1][1],
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
    )


def _f(v: float | None, digits: int = 2) -> str:
    return "" if v is None else f"{v:.{digits}f}"


def to_markdown(r: SoakResult, command: str, provenance: dict[str, Any]) -> str:
    cfg = r.config
    kills_by: dict[str, int] = {}
    for _, stage in r.kills:
        kills_by[stage] = kills_by.get(stage, 0) + 1
    lines = [
        f"# Soak: {r.seconds / 60:.1f} minutes, {cfg.viewers} viewers, a random stage SIGKILLed every {cfg.kill_every_s:g} s",
        "",
        f"- command: `{command}`",
        f"- date: {provenance.get('date')}; commit {provenance.get('git_commit')}; {provenance.get('cpu')}, "
        f"{provenance.get('cores')} cores; {provenance.get('platform')}",
        "- the machine was shared with other builds and benchmarks while this ran: frame gaps include their load",
        f"- speech: the bundled spoken demo looping through capture/listen/nlp; a typed prompt every {cfg.say_every_s:g} s",
        f"- run exit code after SIGINT: {r.exit_code}",
        "",
        "## Kills and restarts",
        "",
        "| stage | kills | restarts | longest frame gap at a viewer after its kill (ms) |",
        "|---|---:|---:|---:|",
    ]
    for stage in STAGES:
        lines.append(f"| {stage} | {kills_by.get(stage, 0)} | {r.restarts.get(stage, 0)} | "
                     f"{_f(r.max_gap_after_kill_ms.get(stage), 0)} |")
    lines += [f"| **all** | {len(r.kills)} | {sum(r.restarts.values())} | |", "",
              f"Stages failed: {', '.join(r.failed) or 'none'}. "
              f"Counts: {', '.join(f'{k} {v}' for k, v in sorted(r.counts.items()))}.", "",
              f"## Growth after each process's first {cfg.warmup_s:g} s", "",
              "Growth per minute is the slope of RSS (or open descriptors) against time shared by all of a stage's "
              "processes watched past warm-up (one intercept per process, so a restart is not growth). "
              "The longest-lived process is shown on its own beside it.", "",
              "| stage | processes (watched past warm-up) | watched s (longest) | RSS MiB/min | fds/min | "
              "most fds gained by one process | longest: RSS MiB/min, fds first -> last, RSS MiB at end |",
              "|---|---:|---:|---:|---:|---:|---|"]
    for stage, g in r.growth.items():
        if "rss_mib_per_min" not in g:
            lines.append(f"| {stage} | {int(g['processes'])} (0) | 0 | | | | |")
            continue
        lines.append(f"| {stage} | {int(g['processes'])} ({int(g['measured'])}) | {g['observed_s']:.0f} ({g['longest_s']:.0f}) | "
                     f"{g['rss_mib_per_min']:.3f} | {g['fds_per_min']:.3f} | {g['fds_growth_max']:.0f} | "
                     f"{g['rss_longest_per_min']:.3f}, {g['fds_first']:.0f} -> {g['fds_last']:.0f}, {g['rss_last']:.1f} |")
    lines += ["", "## Frame gaps at the viewers (ms between consecutive frames)", "",
              "| gaps | n | p50 | p99 | max |", "|---|---:|---:|---:|---:|"]
    for which, values in (("steady (no kill within 3 s)", r.gaps_steady_ms), ("around a kill", r.gaps_kill_ms)):
        if values:
            lines.append(f"| {which} | {len(values)} | {np.percentile(values, 50):.1f} | {np.percentile(values, 99):.1f} | "
                         f"{max(values):.1f} |")
        else:
            lines.append(f"| {which} | 0 | | | |")
    lines += ["", f"Frames received per viewer: {', '.join(map(str, r.viewer_frames))} (the encode process alive at the end published {r.published}); "
              f"reconnects after serve restarts: {r.reconnects}; frames the server skipped for a slow viewer: "
              f"{r.skipped_for_viewers}.", "",
              "## Left after stop", "", "\n".join(f"- {x}" for x in r.leftovers) or "nothing (processes, shared memory, runtime directory)", ""]
    return "\n".join(lines)


def main(args: Any) -> int:
    from synesthesia.bench.provenance import collect

    def interrupt(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt  # stop the run and clean up, also when SIGINT is ignored (nohup, &)

    signal.signal(signal.SIGTERM, interrupt)
    cfg = SoakConfig(minutes=args.minutes, viewers=args.viewers, kill_every_s=args.kill_every, seed=args.seed)
    command = "synesthesia " + " ".join(sys.argv[1:])
    result = soak(cfg, progress=lambda s: print(f"soak: {s}", file=sys.stderr, flush=True))
    text = to_markdown(result, command, collect(command=command))
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    return 0 if not result.leftovers and not result.failed else 1
