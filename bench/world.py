"""World benchmark: procedural render time at three sizes, and the pacer's cadence and
intent latency with a JPEG encoder running beside it, against the `emulate` backend that
replays the reference system's 1,274.8 ms latent wall.

    .venv/bin/python bench/world.py [--quick] [--out bench/results/world.md] [--json FILE]
    .venv/bin/python bench/world.py --words      # only the table of how far each word moves the picture
    .venv/bin/python bench/world.py --load 60    # only the running engine's cadence under load

Under load (``--load SECONDS``, also part of a full run): the whole engine runs (`synesthesia
run` with its spoken demo, so hearing decodes speech all along), 8 WebSocket viewers in another
process receive every frame, and the frames ring's publication stamps (the pacer's own tick
times) give the cadence after a warm-up.

Render times are per frame on one thread, timed round-robin over seven scenes (one frame of
each per round) so machine noise lands on all of them alike; both wall-clock time and the
thread's CPU time are reported, because on a shared machine the wall clock includes time the
thread spent waiting for a core.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any
from pathlib import Path

import numpy as np
import numpy.typing as npt

from synesthesia.bench.provenance import for_script
from synesthesia import _native, kernels
from synesthesia.world import VOCABULARY, Intent, Pacer, ProceduralBackend
from synesthesia.world.emulate import EmulatedBackend
from synesthesia.world.procedural import CATEGORIES, START_WORDS, word_visibility

SCENES: list[list[str]] = [
    [],
    ["storm", "mountains", "night"],
    ["ocean", "day"],
    ["city", "night"],
    ["forest", "fire", "snow"],
    ["space", "aurora"],
    ["desert", "sunrise", "fog"],
]
SIZES = [(640, 352), (1280, 704), (1920, 1056)]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def provenance(args: argparse.Namespace) -> dict[str, object]:
    return for_script("bench/world.py", vars(args), {"load_before": [round(x, 2) for x in os.getloadavg()]})


def bench_render(rounds: int) -> dict[str, dict[str, float]]:
    states = []
    for words in SCENES:
        scene = _native.WorldScene(0.8, 0.35)
        if words:
            scene.apply([(w, 1.0) for w in words])
        scene.settle()
        states.append(scene.current())
    results: dict[str, dict[str, float]] = {}
    for w, h in SIZES:
        renderer = _native.WorldRenderer(7)
        out = np.empty((h, w, 3), np.uint8)
        wall: list[float] = []
        cpu: list[float] = []
        per_scene: dict[int, list[float]] = {i: [] for i in range(len(SCENES))}
        for r in range(rounds + 2):
            for i, state in enumerate(states):
                t = 12.85 + 0.04 * r
                c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
                renderer.render_into(out, state, t)
                w1, c1 = time.perf_counter_ns(), time.thread_time_ns()
                if r >= 2:  # two warm-up rounds
                    wall.append((w1 - w0) / 1e6)
                    cpu.append((c1 - c0) / 1e6)
                    per_scene[i].append((c1 - c0) / 1e6)
        key = f"{w}x{h}"
        results[key] = {
            "wall_p50": pct(wall, 50),
            "wall_p99": pct(wall, 99),
            "cpu_p50": pct(cpu, 50),
            "cpu_p99": pct(cpu, 99),
            "n": len(wall),
        }
        for i, words in enumerate(SCENES):
            results[key]["scene:" + ("+".join(words) or "default (mountains, sunset)")] = pct(per_scene[i], 50)
    return results


class EncodingSink:
    """Copies each frame (as the frame ring would) and JPEG-encodes it on another thread,
    so the pacer competes with an encoder for the CPU as it does in the pipeline."""

    def __init__(self, shape: tuple[int, int, int]) -> None:
        self.buf = np.empty(shape, np.uint8)
        self.metas: list[dict[str, object]] = []
        self._ready = threading.Event()
        self._stop = False
        self.encoded = 0
        self._thread = threading.Thread(target=self._encode, daemon=True)
        self._thread.start()

    def put(self, frame: npt.NDArray[np.uint8], meta: Mapping[str, object]) -> None:
        np.copyto(self.buf, frame)
        self.metas.append(dict(meta))
        self._ready.set()

    def _encode(self) -> None:
        while not self._stop:
            if self._ready.wait(0.1):
                self._ready.clear()
                kernels.encode_jpeg(self.buf, quality=75)
                self.encoded += 1

    def close(self) -> None:
        self._stop = True
        self._thread.join(1)


def bench_pacer(
    backend_name: str, seconds: float, intent_every_s: float | None, respond: str = "immediate", realtime: bool = True
) -> dict[str, float]:
    if backend_name == "procedural":
        backend: ProceduralBackend | EmulatedBackend = ProceduralBackend(seed=3)
    else:
        backend = EmulatedBackend(seed=3)
    sink = EncodingSink((backend.height, backend.width, 3))
    pacer = Pacer(backend, sink, respond=respond, realtime=realtime)
    sent: dict[str, int] = {}
    stop = threading.Event()
    rng = random.Random(5)

    def speak() -> None:
        if intent_every_s is None:
            return
        i = 0
        while not stop.wait(intent_every_s * rng.uniform(0.5, 1.5)):
            i += 1
            tid = f"b{i}"
            now = time.monotonic_ns()
            sent[tid] = now
            pacer.submit(Intent({rng.choice(VOCABULARY): 1.0}, trace_id=tid, t_ns=now))

    speaker = threading.Thread(target=speak, daemon=True)
    pacer.start()
    speaker.start()
    time.sleep(seconds)
    stop.set()
    pacer.stop()
    speaker.join(1)
    sink.close()
    st = pacer.stats()
    latencies = [
        (int(m["t_ns"]) - sent[t]) / 1e6  # type: ignore[call-overload]
        for m in sink.metas
        for t in m["first_for"]  # type: ignore[attr-defined]
        if t in sent
    ]
    return {
        "frames": st.frames,
        "interval_p50": st.interval_ms_p50,
        "jitter_p50": st.jitter_ms_p50,
        "jitter_p99": st.jitter_ms_p99,
        "jitter_max": st.jitter_ms_max,
        "cadence_jitter_p99": st.cadence_jitter_ms_p99,
        "responses": st.responses,
        "priority": pacer.priority,  # type: ignore[dict-item]
        "late_ticks": st.late_ticks,
        "repeats": st.repeats,
        "encoded": sink.encoded,
        "intents": len(sent),
        "shown": len(latencies),
        "latency_p50": pct(latencies, 50),
        "latency_p95": pct(latencies, 95),
        "latency_max": max(latencies) if latencies else float("nan"),
    }


#: The issue's bar for a word to be seen (mean absolute difference, 0-255, at 640x352).
VISIBLE = 10.0


def _viewers(port: int, n: int, seconds: float, out: Any) -> None:
    """n WebSocket viewers that receive every frame for ``seconds`` (a spawned process)."""
    import asyncio

    import aiohttp

    async def one(session: aiohttp.ClientSession) -> int:
        frames = 0
        async with session.ws_connect(f"http://127.0.0.1:{port}/ws") as ws:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                try:
                    msg = await ws.receive(timeout=max(0.01, end - time.monotonic()))
                except asyncio.TimeoutError:
                    break
                if msg.type == aiohttp.WSMsgType.BINARY:
                    frames += 1
                elif msg.type != aiohttp.WSMsgType.TEXT:
                    break
        return frames

    async def main() -> list[int]:
        async with aiohttp.ClientSession() as session:
            return list(await asyncio.gather(*(one(session) for _ in range(n))))

    out.put(asyncio.run(main()))


def bench_load(seconds: float, viewers: int = 8, respond: str = "immediate", warmup_s: float = 3.0) -> dict[str, float]:
    """The running engine's frame cadence while hearing decodes the spoken demo and ``viewers``
    WebSocket clients receive every frame."""
    import multiprocessing as mp
    import tempfile
    from urllib.parse import urlparse

    from synesthesia import shm
    from synesthesia.bench.e2e import run_pipeline
    from synesthesia.settings import load_settings
    from synesthesia.supervisor.arbiter import default_graph

    settings = load_settings(overrides={"headless": False, "log_level": "warning", "world": {"respond": respond},
                                        "serve": {"host": "127.0.0.1", "port": 0, "token": None}})
    stamps: list[int] = []
    received: list[int] = []

    def drive(arbiter: Any, tap: Any, progress: Any) -> None:
        deadline = time.monotonic() + 30
        while not arbiter.viewer_url and time.monotonic() < deadline:
            time.sleep(0.05)
        port = urlparse(arbiter.viewer_url).port
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        clients = ctx.Process(target=_viewers, args=(port, viewers, seconds + warmup_s + 2, queue), daemon=True)
        clients.start()
        ring = shm.FrameRing.attach(arbiter.rings["frames"].name)
        try:
            end = time.monotonic() + warmup_s + seconds
            while time.monotonic() < end:
                rec = ring.read(timeout=0.1)
                if rec is not None:
                    stamps.append(rec.meta.t_source_ns)
                    del rec
        finally:
            ring.close()
        received.extend(queue.get(timeout=30))
        clients.join(10)

    with tempfile.TemporaryDirectory(prefix="synesthesia-load-") as tmp:
        res = run_pipeline(settings, default_graph(settings), drive, Path(tmp) / "trace.jsonl")
    if res.errors:
        raise RuntimeError("; ".join(res.errors))
    spoken = len({r.trace_id for r in res.records if r.hop == "speech_end"})
    intents = len({r.trace_id for r in res.records if r.hop == "applied"})
    t = np.asarray(stamps, dtype=np.int64)
    t = t[t >= t[0] + int(warmup_s * 1e9)]
    iv = np.diff(t) / 1e6
    period = 1000.0 / settings.world.fps
    jitter = np.abs(iv - period)
    # An immediate response to an intent makes one short interval by design.
    cadence = jitter[iv > 0.75 * period]
    return {
        "frames": float(len(t)),
        "interval_p50": pct(list(iv), 50),
        "jitter_p50": pct(list(jitter), 50),
        "jitter_p99": pct(list(jitter), 99),
        "jitter_max": float(jitter.max()) if len(jitter) else float("nan"),
        "cadence_jitter_p99": pct(list(cadence), 99),
        "responses": float(np.sum(iv <= 0.75 * period)),
        "late": float(np.sum(iv > 1.5 * period)),
        "utterances": float(spoken),
        "intents": float(intents),
        "viewer_frames_min": float(min(received) if received else 0),
        "viewers": float(len(received)),
    }


def load_markdown(load: Mapping[str, Mapping[str, float]], seconds: float) -> list[str]:
    lines = [
        "",
        f"## The running engine under load ({seconds:g} s after a 3 s warm-up)",
        "",
        "`synesthesia run` with the spoken demo (hearing decodes speech throughout), 8 WebSocket viewers "
        "receiving every frame from another process; cadence from the frames ring's publication stamps (the "
        "pacer's tick times). Cadence jitter leaves out the short intervals that end at an immediate response.",
        "",
        "| respond | frames | interval p50 ms | jitter p50 ms | jitter p99 ms | cadence jitter p99 ms | jitter max ms | "
        "responses | intervals > 60 ms | utterances | intents applied | viewers (min frames each) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for respond, r in load.items():
        lines.append(
            f"| {respond} | {int(r['frames'])} | {r['interval_p50']:.2f} | {r['jitter_p50']:.3f} | {r['jitter_p99']:.3f} | "
            f"{r['cadence_jitter_p99']:.3f} | {r['jitter_max']:.2f} | {int(r['responses'])} | {int(r['late'])} | "
            f"{int(r['utterances'])} | {int(r['intents'])} | {int(r['viewers'])} ({int(r['viewer_frames_min'])}) |"
        )
    lines.append("\nTarget from the issue: jitter p99 <= 2 ms at 25 fps under this load.")
    return lines


def words_markdown(moved: Mapping[str, float]) -> list[str]:
    lines = [
        "",
        "## How far each word moves the start scene (640x352, seed 0)",
        "",
        "Each word said once at its dictionary weight from the start scene (mountains at sunset), the "
        "transition settled, the snapshot at the `snapshot` command's world time; mean absolute "
        f"difference (0-255) against the start scene's snapshot. Bar: >= {VISIBLE:g} for every word the "
        "start scene does not already show.",
        "",
        "| word | category | mean abs difference | bar |",
        "| --- | --- | ---: | --- |",
    ]
    for word, d in sorted(moved.items(), key=lambda kv: kv[1]):
        bar = "in the start scene" if word in START_WORDS else ("met" if d >= VISIBLE else "missed")
        lines.append(f"| {word} | {CATEGORIES[word]} | {d:.1f} | {bar} |")
    lines.append(f"\nMedian over the vocabulary: {float(np.median(list(moved.values()))):.1f}.")
    return lines


def markdown(
    prov: Mapping[str, object],
    render: Mapping[str, Mapping[str, float]],
    pacers: Mapping[str, Mapping[str, float]],
    moved: Mapping[str, float],
) -> str:
    lines = ["# World benchmark", "", "Produced by `bench/world.py`; regenerate with the command below (after `make build`).", ""]
    lines += [f"- **{k}**: {v}" for k, v in prov.items()]
    lines += words_markdown(moved)
    lines += [
        "",
        "## Procedural render time per frame (one thread, seven scenes round-robin)",
        "",
        "| size | CPU median ms | CPU p99 ms | wall median ms | wall p99 ms | frames | target |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for size, r in render.items():
        target = ""
        if size == "1280x704":
            ok = r["wall_p50"] <= 15.0
            target = f"<= 15 ms: {'met' if ok else 'missed'} (wall median)"
        lines.append(
            f"| {size} | {r['cpu_p50']:.2f} | {r['cpu_p99']:.2f} | {r['wall_p50']:.2f} | {r['wall_p99']:.2f} | {int(r['n'])} | {target} |"
        )
    lines += ["", "Per-scene CPU median at 1280x704 (ms):", "", "| scene | ms |", "| --- | ---: |"]
    for k, v in render["1280x704"].items():
        if k.startswith("scene:"):
            lines.append(f"| {k[6:]} | {v:.2f} |")
    lines += [
        "",
        "## Pacer at 25 fps, 1280x704, with a full-size JPEG encoder on another thread",
        "",
        "Intents (one random vocabulary word) are submitted from a third thread every 0.5 s on average; "
        "latency is from submit to the pacer's `put` of the first frame marked with the intent's trace id. "
        "`respond`: `immediate` renders and publishes an intent's frame at once and re-phases the cadence "
        "from it (the default); `tick` waits for the next 40 ms tick. Jitter is over every interval between "
        "published frames (an immediate response makes one short interval by design); cadence jitter leaves "
        "out the intervals that end at a response frame.",
        "",
        "| backend | respond | intents | thread priority | frames | responses | interval p50 ms | jitter p50 ms | "
        "jitter p99 ms | cadence jitter p99 ms | jitter max ms | late ticks | intents shown | intent->frame p50 ms | "
        "p95 ms | max ms |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, p in pacers.items():
        backend, respond, intents = name.split(" / ")[:3]
        lines.append(
            f"| {backend} | {respond} | {intents} | {p['priority']} | {int(p['frames'])} | {int(p['responses'])} | "
            f"{p['interval_p50']:.2f} | "
            f"{p['jitter_p50']:.3f} | {p['jitter_p99']:.3f} | {p['cadence_jitter_p99']:.3f} | "
            f"{p['jitter_max']:.2f} | {int(p['late_ticks'])} | {int(p['shown'])}/{int(p['intents'])} | "
            f"{p['latency_p50']:.1f} | {p['latency_p95']:.1f} | {p['latency_max']:.1f} |"
        )
    lines += [
        "",
        "Reading these numbers: this machine is shared (its cores are busy with other builds and tests; see the "
        "load averages above), so wall-clock figures and jitter outliers include time spent waiting for a core. "
        "CPU time is what the renderer itself costs. A late tick is a tick the pacer skipped because the previous "
        "one overran its slot.",
        "",
        "Targets from the issues: render <= 15 ms per 1280x704 frame; jitter p99 <= 2 ms; intent -> first changed "
        "frame p95 <= 12 ms (procedural, respond immediate). `emulate` reproduces the reference system's 1,274.8 +- 42.3 ms wall "
        "around the same renderer: intents still inside that window when the run ends are not counted.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and shorter pacer runs")
    parser.add_argument("--out", type=Path, help="write the Markdown report here")
    parser.add_argument("--json", type=Path, help="also write the raw numbers as JSON")
    parser.add_argument("--words", action="store_true", help="only print how far each word moves the start scene")
    parser.add_argument("--load", type=float, metavar="SECONDS",
                        help="only measure the running engine's cadence under load for SECONDS")
    args = parser.parse_args()
    if args.load:
        load = {r: bench_load(args.load, respond=r) for r in ("immediate", "tick")}
        print("\n".join(load_markdown(load, args.load)))
        return 0
    moved = word_visibility((640, 352), seed=0)
    if args.words:
        print("\n".join(words_markdown(moved)))
        return 0
    prov = provenance(args)
    # As the world stage does: a thread waking for its tick must not wait out another
    # thread's 5 ms GIL slice.
    sys.setswitchinterval(0.0005)
    prov["gil_switch_interval_ms"] = 0.5
    render = bench_render(8 if args.quick else 40)
    seconds = 4.0 if args.quick else 12.0
    pacers = {
        "procedural / immediate / none": bench_pacer("procedural", seconds, None, "immediate"),
        "procedural / immediate / every 0.5 s": bench_pacer("procedural", seconds, 0.5, "immediate"),
        "procedural / tick / every 0.5 s": bench_pacer("procedural", seconds, 0.5, "tick"),
        "procedural / immediate / every 0.5 s / normal": bench_pacer("procedural", seconds, 0.5, "immediate", False),
        "emulate (1274.8 +- 42.3 ms) / immediate / every 0.5 s": bench_pacer("emulate", seconds, 0.5, "immediate"),
    }
    load_s = 10.0 if args.quick else 40.0
    load = {r: bench_load(load_s, respond=r) for r in ("immediate", "tick")}
    prov["load_after"] = [round(x, 2) for x in os.getloadavg()]
    text = markdown(prov, render, pacers, moved) + "\n".join(load_markdown(load, load_s)) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps({"provenance": prov, "render": render, "pacer": pacers, "words": moved, "load": load}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
