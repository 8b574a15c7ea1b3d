"""Session benchmark: offline render speed, and what writing a session log costs a live run.

    .venv/bin/python bench/render.py [--quick] [--seconds 60] [--out bench/results/render.md] [--json FILE]
    (or: synesthesia bench render)

1. A session of ``--seconds`` (default 60) is recorded at 1280x704, 25 fps, by driving the
   recorder tick by tick: intents every few seconds, the bundled demo speech as captured audio.
2. It is rendered to MP4 (H.264 superfast crf 20 + AAC) at 1280x704 and 1920x1056 with one
   worker on one core, and two workers on two cores (CPU affinity pins each run), reporting
   frames per second, x real time and CPU time per frame; beside them x264's ultrafast preset,
   the faster alternative (larger files). The 60 s target is the full session at 1920x1056 on
   two cores.
3. Live overhead: the pacer drives the procedural world at 1280x704, 25 fps, with and without
   the session recorder (alternating runs), reporting tick jitter p99 and the process's CPU; the
   recorder's own cost is measured directly too (its writer and audio-ring threads' CPU from
   /proc, and the work it adds to each tick).

The machine may be shared: the load average before and after is in the provenance, and CPU
time per frame is the figure that depends least on it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile  # type: ignore[import-untyped]

from synesthesia.bench.provenance import for_script
from synesthesia.world import Intent, Pacer, ProceduralBackend
from synesthesia.world.render import render_session
from synesthesia.world.session import SessionRecorder, read_session

DEMO = Path(__file__).resolve().parent.parent / "python" / "synesthesia" / "data" / "demo.flac"
PERIOD = 40_000_000
STEERING = [{"storm": 1.0}, {"night": 0.8}, {"ocean": 1.0}, {"snow": 0.7, "forest": 1.0}, {"sunrise": 1.0},
            {"desert": 1.0, "fog": 0.6}, {"city": 1.0, "rain": 0.8}, {"mountains": 1.0, "sunset": 0.8}]


def record(path: Path, seconds: float) -> None:
    audio, rate = soundfile.read(str(DEMO), dtype="float32")
    assert rate == 16000
    rec = SessionRecorder(ProceduralBackend(1280, 704, seed=1, tau=1.5), path, fps=25)
    rec.start("mountains at sunset")
    t0 = time.monotonic_ns()
    frames = int(seconds * 25)
    for k in range(frames):
        if k % 100 == 50:
            words = STEERING[(k // 100) % len(STEERING)]
            rec.apply(Intent(words, " ".join(words), str(k)))
        at = (k * 640) % max(1, len(audio) - 640)
        rec.feed_audio(audio[at : at + 640])
        rec.poll(t0 + k * PERIOD)
    rec.stop()


def cpu_now() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def bench_render(session_path: Path, runs: list[tuple[int, int, int, str]], seconds: float,
                 short: float) -> list[dict[str, object]]:
    session = read_session(session_path)
    rows: list[dict[str, object]] = []
    all_cpus = sorted(os.sched_getaffinity(0))
    for w, h, n, preset in runs:
        if n <= len(all_cpus):
            # The 2-core 1920x1056 run is the target: the whole session; the others a stretch.
            target = (w, h, n, preset) == (1920, 1056, 2, "superfast")
            span = seconds if target else min(short, seconds)
            os.sched_setaffinity(0, all_cpus[:n])
            try:
                with tempfile.TemporaryDirectory() as d:
                    c0, t0 = cpu_now(), time.monotonic()
                    res = render_session(session, Path(d) / "out.mp4", size=(w, h), start_s=0.0, end_s=span,
                                         workers=n, preset=preset)
                    wall, cpu = time.monotonic() - t0, cpu_now() - c0
                    size_mb = (Path(d) / "out.mp4").stat().st_size / 1e6
            finally:
                os.sched_setaffinity(0, all_cpus)
            rows.append({"group": "render speed (H.264 crf 20 + AAC, 1280x704 session)", "size": f"{w}x{h}",
                         "cores": n, "x264_preset": preset,
                         "video_s": round(res.seconds, 2), "wall_s": round(wall, 2),
                         "fps": round(res.frames / wall, 1), "x_real_time": round(res.seconds / wall, 2),
                         "cpu_ms_per_frame": round(cpu / res.frames * 1e3, 1),
                         "fps_if_unshared": round(n / (cpu / res.frames), 1),
                         "checked_frames": res.checked, "mismatched": len(res.mismatched),
                         "mbit_s": round(size_mb * 8 / res.seconds, 2),
                         "load_avg_1m": round(os.getloadavg()[0], 2)})
            print(f"render {w}x{h} on {n} core(s): {rows[-1]}", file=sys.stderr, flush=True)
    return rows


class _Sink:
    def __init__(self) -> None:
        self.buf = np.empty((704, 1280, 3), np.uint8)

    def put(self, frame: Any, meta: Any) -> None:
        self.buf[...] = frame  # as the world stage copies into the frame ring


def _thread_cpu_s(native_id: int) -> float:
    try:
        fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def live_run(seconds: float, session: Path | None) -> dict[str, float]:
    """The world stage's work without its process shell: the pacer at 25 fps, 512-sample audio
    chunks into a real shared-memory audio ring every 32 ms (the recorder keeps them from there,
    as in the stage) and into the world's pulse, an intent a second."""
    from synesthesia import shm

    backend = ProceduralBackend(1280, 704, seed=1, tau=1.5)
    ring = shm.FrameRing.create(f"syn-benchrender-{os.getpid()}-audio", shape=(512,), dtype=np.float32, slots=64)
    world = SessionRecorder(backend, session, fps=25) if session else backend
    if isinstance(world, SessionRecorder):
        world.record_audio_ring(ring.name)
    world.start("mountains at sunset")
    pacer = Pacer(world, _Sink(), fps=25)
    audio, _ = soundfile.read(str(DEMO), dtype="float32")
    c0, t0 = time.process_time(), time.monotonic()
    pacer.start()
    k = 0
    while time.monotonic() - t0 < seconds:
        at = (k * 512) % (len(audio) - 512)
        with ring.write() as slot:
            slot.array[:] = audio[at : at + 512]
            slot.meta.frame = k * 512
            slot.meta.t_source_ns = time.monotonic_ns()
        world.feed_audio(audio[at : at + 512])
        if k % 31 == 15:
            words = STEERING[(k // 31) % len(STEERING)]
            world.apply(Intent(words, " ".join(words), str(k)))
        k += 1
        time.sleep(0.032)
    pacer.stop()
    cpu, wall = time.process_time() - c0, time.monotonic() - t0
    threads_cpu = float("nan")
    if isinstance(world, SessionRecorder):
        ids = [t.native_id or 0 for t in (world._writer._thread, world._ring_reader) if t is not None]
        threads_cpu = sum(_thread_cpu_s(i) for i in ids)
    world.stop()
    ring.close()
    ring.unlink()
    st = pacer.stats()
    return {"frames": st.frames, "late_ticks": st.late_ticks, "jitter_p50_ms": st.jitter_ms_p50,
            "jitter_p99_ms": st.jitter_ms_p99, "cpu_pct": 100 * cpu / wall, "cpu_ms_per_frame": cpu / st.frames * 1e3,
            "recorder_threads_cpu_pct": 100 * threads_cpu / wall if session else 0.0}


def tick_cost(frames: int) -> dict[str, float]:
    """What the recorder adds to each tick on the pacer thread: a poll through it minus a plain
    poll, on a 32x32 world so the rendering (the same in both) does not drown the difference;
    and the checksum it takes every ``check_every`` frames, on a 1280x704 frame."""
    from synesthesia.world.session import frame_checksum

    with tempfile.TemporaryDirectory() as d:
        plain = ProceduralBackend(32, 32, seed=1, tau=1.5)
        rec = SessionRecorder(ProceduralBackend(32, 32, seed=1, tau=1.5), Path(d) / "s.jsonl", fps=25,
                              check_every=frames + 1)
        audio = np.zeros(640, np.float32)
        a: list[int] = []
        b: list[int] = []
        t = time.monotonic_ns()
        for k in range(frames):
            plain.feed_audio(audio)
            rec.feed_audio(audio)
            t += PERIOD
            # whichever polls first is slower (caches): alternate the order
            for world, times in ((plain, a), (rec, b)) if k % 2 else ((rec, b), (plain, a)):
                s = time.perf_counter_ns()
                world.poll(t)
                times.append(time.perf_counter_ns() - s)
        rec.stop()
    big = np.random.default_rng(1).integers(0, 255, (704, 1280, 3), dtype=np.uint8)
    crc = []
    for _ in range(20):
        s = time.perf_counter_ns()
        frame_checksum(big)
        crc.append(time.perf_counter_ns() - s)
    return {"added_us_median": (float(np.median(b)) - float(np.median(a))) / 1e3,
            "checksum_us_1280x704": float(np.median(crc)) / 1e3}


def targets(rows: list[dict[str, Any]]) -> list[dict[str, object]]:
    """The issue's targets against what the rows measured."""
    out: list[dict[str, object]] = []
    group = "targets"
    full = [r for r in rows if r.get("size") == "1920x1056" and r.get("cores") == 2
            and r.get("x264_preset") == "superfast"]
    if full:
        r = full[0]
        frames = float(r["video_s"]) * 25
        unshared = frames / float(r["fps_if_unshared"])
        out.append({"group": group, "target": f"{r['video_s']} s session at 1920x1056 renders in <= 60 s on 2 cores",
                    "measured": f"{r['wall_s']} s wall on the shared machine; {unshared:.1f} s of its CPU time "
                                "spread over 2 cores", "met": "on CPU time; not on this loaded machine's wall clock"
                    if float(r["wall_s"]) > 60 >= unshared else ("yes" if float(r["wall_s"]) <= 60 else "no")})
    live = [r for r in rows if "run" in r]
    cost = [r for r in rows if "cpu_pct_at_25fps" in r]
    if live and cost:
        threads = float(np.mean([float(r["recorder_threads_cpu_pct"]) for r in live if r["run"] == "with session log"]))
        tick = float(cost[0]["cpu_pct_at_25fps"])
        total = tick + threads
        out.append({"group": group, "target": "session log < 1% CPU on a live run",
                    "measured": f"{total:.2f}% of a core ({tick:.2f}% on the pacer thread + {threads:.2f}% in its "
                                "writer and audio threads)", "met": "yes" if total < 1 else "no"})
        p99 = {k: float(np.median([float(r["jitter_p99_ms"]) for r in live if r["run"] == k]))
               for k in ("without session log", "with session log")}
        out.append({"group": group, "target": "no change in frame jitter p99",
                    "measured": f"median p99 {p99['with session log']:.1f} ms with, {p99['without session log']:.1f} ms "
                                "without (alternating runs; the machine's load sets both)",
                    "met": f"not measurable here: without the log p99 is already {p99['without session log']:.1f} ms "
                           "(> the 2 ms budget) from the machine's load" if p99["without session log"] > 2.0
                           else ("yes" if p99["with session log"] <= p99["without session log"] + 0.5 else "no")})
    return out


def markdown(prov: dict[str, object], rows: list[dict[str, object]]) -> str:
    out = ["# Session benchmark: offline render and session log overhead", "",
           "Machine shared with other engineers' builds and tests (2 cores): wall-clock figures "
           "(fps, x real time) carry their load; `cpu_ms_per_frame` and `fps_if_unshared` "
           "(cores / CPU per frame) depend on it least.", "",
           "```json", json.dumps(prov, indent=2), "```", ""]
    groups: dict[str, list[dict[str, object]]] = {}
    for r in rows:
        groups.setdefault(str(r["group"]), []).append({k: v for k, v in r.items() if k != "group"})
    for name, rs in groups.items():
        cols = list(rs[0])
        out += [f"## {name}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        out += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rs]
        out.append("")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a 4 s session and short live runs")
    parser.add_argument("--seconds", type=float, default=60.0, help="session length (default: 60)")
    parser.add_argument("--out", type=Path, help="write the Markdown report here")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()
    seconds = 4.0 if args.quick else args.seconds
    prov = for_script("bench/render.py", vars(args), {"load_before": [round(x, 2) for x in os.getloadavg()],
                                                      "cpus": len(os.sched_getaffinity(0))})
    sys.setswitchinterval(0.0005)  # as the world stage does
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "bench.jsonl"
        t0 = time.monotonic()
        record(path, seconds)
        print(f"recorded {seconds:g} s in {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
        runs = [(1280, 704, 1, "superfast"), (1280, 704, 2, "superfast"), (1920, 1056, 1, "superfast"),
                (1920, 1056, 2, "superfast"), (1920, 1056, 2, "ultrafast")]
        rows += bench_render(path, runs, seconds, 4.0 if args.quick else 20.0)
        live_s = 3.0 if args.quick else 15.0
        for rnd in range(1 if args.quick else 2):
            for label, session in (("without session log", None), ("with session log", Path(d) / f"live{rnd}.jsonl")):
                r = live_run(live_s, session)
                rows.append({"group": "live run, 1280x704 at 25 fps (pacer + procedural world)", "run": label,
                             "round": rnd + 1, "seconds": live_s,
                             **{k: round(v, 3) for k, v in r.items()}})
                print(rows[-1], file=sys.stderr, flush=True)
        cost = tick_cost(50 if args.quick else 250)
        rows.append({"group": "session recorder cost per tick (pacer thread; one checksum a second)",
                     **{k: round(v, 3) for k, v in cost.items()},
                     # a second at 25 fps: 24 plain ticks and one with a checksum, as % of a core
                     "cpu_pct_at_25fps": round((cost["added_us_median"] * 25 + cost["checksum_us_1280x704"])
                                               / 1e4, 3)})
    rows += targets(rows)
    prov["load_after"] = [round(x, 2) for x in os.getloadavg()]
    text = markdown(prov, rows)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps({"provenance": prov, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
