"""Encode-and-serve benchmark: encode time per mode, bitrate holding, frame -> on the wire, fan-out.

    .venv/bin/python bench/stream.py [--quick] [--out bench/results/stream.md] [--json FILE]

1. Encode time per frame *in the stage* (``EncodeLoop.encode``: controller, encoder cache and
   record building included) for nano, preview and full at a fixed quality 75, timed round-robin
   over the same panning 1280x704 frames so machine noise lands on all modes alike.
2. Bitrate held by the adaptive controller on moving content (a panning scene whose look changes
   every 4 s, like a prompt would), per 1-second window after a 1-second warm-up.
3. Frame -> on the wire: a writer thread puts nano records into the serve stage's source at
   25 fps; the server measures encoded -> handed to the socket; WebSocket clients in a separate
   process (spawned) measure encoded -> received (CLOCK_MONOTONIC is shared across processes).
   Run with 1 and with 8 simultaneous clients; latency growth compares the first and last thirds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from synesthesia.bench.provenance import for_script
from synesthesia import kernels
from synesthesia.frames import synthetic_frame
from synesthesia.stream.demo import LOOKS
from synesthesia.stream.encoder import ControllerConfig, EncodeLoop
from synesthesia.stream.ports import LatestSlot
from synesthesia.stream.records import FrameMeta, JpegRecord
from synesthesia.stream.server import StreamServer

Frame = npt.NDArray[np.uint8]


@dataclass
class Report:
    provenance: dict[str, Any]
    encode: list[dict[str, Any]] = field(default_factory=list)
    bitrate: list[dict[str, Any]] = field(default_factory=list)
    wire: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def provenance(args: argparse.Namespace) -> dict[str, Any]:
    try:
        load = "%.1f %.1f %.1f" % os.getloadavg()
    except OSError:
        load = "unknown"
    import aiohttp

    return for_script("bench/stream.py", vars(args), {"load average at start": load, "aiohttp": aiohttp.__version__})


class Scene:
    """A panning 1280x704 scene; ``look`` switches its colours (what a prompt does to the world)."""

    def __init__(self, width: int = 1280, height: int = 704) -> None:
        base = synthetic_frame(0.0, width, height)
        plain = np.concatenate([base, base], axis=1)
        self.width = width
        self.wides = [plain] + [np.stack([lut[c][plain[..., c]] for c in range(3)], axis=-1) for lut in (LOOKS["night"], LOOKS["sunset"])]

    def frame(self, i: int, look: int = 0) -> Frame:
        off = (i * 8) % self.width
        return self.wides[look % len(self.wides)][:, off : off + self.width]


def pct(a: list[float] | npt.NDArray[np.float64], q: float) -> float:
    return float(np.percentile(np.asarray(a, dtype=np.float64), q)) if len(a) else float("nan")


def bench_encode(report: Report, scene: Scene, rounds: int) -> None:
    loops = {m: EncodeLoop(None, None, m, ControllerConfig(quality=75, adaptive=False)) for m in ("nano", "preview", "full")}
    times: dict[str, list[float]] = {m: [] for m in loops}
    sizes: dict[str, list[int]] = {m: [] for m in loops}
    # The bare kernel at the same settings, in the same rounds: what the stage adds on top.
    bare = loops["nano"]._encoder(4, 75)
    kernel_us: list[float] = []
    for i in range(rounds + 5):
        f = scene.frame(i)
        t0 = time.perf_counter_ns()
        bare.encode(f)
        if i >= 5:
            kernel_us.append((time.perf_counter_ns() - t0) / 1e3)
        for mode, loop in loops.items():
            t0 = time.perf_counter_ns()
            rec = loop.encode(f, FrameMeta(i))
            t1 = time.perf_counter_ns()
            if i >= 5:
                times[mode].append((t1 - t0) / 1e3)
                sizes[mode].append(len(rec.jpeg))
    for mode in loops:
        rec = loops[mode].encode(scene.frame(0), FrameMeta(0))
        p50, p99 = pct(times[mode], 50), pct(times[mode], 99)
        target = "< 300 us median (architecture budget)" if mode == "nano" else ""
        report.encode.append({
            "mode": mode, "size": f"{rec.width}x{rec.height}", "median_us": p50, "p99_us": p99,
            "kib": float(np.mean(sizes[mode])) / 1024, "mbps_at_25": float(np.mean(sizes[mode])) * 8 * 25 / 1e6,
            "target": target, "met": (p50 < 300) if mode == "nano" else None,
        })
    report.encode.insert(1, {
        "mode": "nano, kernel alone", "size": "320x176", "median_us": pct(kernel_us, 50), "p99_us": pct(kernel_us, 99),
        "kib": report.encode[0]["kib"], "mbps_at_25": report.encode[0]["mbps_at_25"], "target": "", "met": None,
    })


def bench_bitrate(report: Report, scene: Scene, seconds: int) -> None:
    fps = 25
    for mode, target in (("nano", 2e6), ("nano", 1e6), ("preview", 2e6), ("preview", 4e6)):
        loop = EncodeLoop(None, None, mode, ControllerConfig(target_bps=target, fps=fps))
        sizes = []
        for i in range(seconds * fps):
            rec = loop.encode(scene.frame(i, look=i // (4 * fps)), FrameMeta(i))
            sizes.append(len(rec.jpeg))
        windows = [sum(sizes[s : s + fps]) * 8 for s in range(fps, len(sizes) - fps + 1, fps)]
        errs = [w / target - 1 for w in windows]
        report.bitrate.append({
            "mode": mode, "target_mbps": target / 1e6, "mean_mbps": float(np.mean(windows)) / 1e6,
            "worst_window_err_pct": 100 * max(errs, key=abs), "windows": len(windows),
            "final_quality": loop.controller.quality, "final_scale": loop.controller.scale,
            "met": all(abs(e) <= 0.10 for e in errs),
        })


def _client_process(port: int, n: int, seconds: float, out: Any) -> None:
    import aiohttp

    async def one(session: aiohttp.ClientSession) -> list[tuple[int, float]]:
        got: list[tuple[int, float]] = []
        async with session.ws_connect(f"http://127.0.0.1:{port}/ws") as ws:
            end = time.monotonic() + seconds
            meta = None
            while time.monotonic() < end:
                try:
                    msg = await ws.receive(timeout=max(0.01, end - time.monotonic()))
                except asyncio.TimeoutError:
                    break
                if msg.type == aiohttp.WSMsgType.TEXT:
                    ev = json.loads(msg.data)
                    if ev["type"] == "frame":
                        meta = ev
                elif msg.type == aiohttp.WSMsgType.BINARY and meta is not None:
                    got.append((meta["frame"], (time.monotonic_ns() - meta["t"]["encoded"]) / 1e6))
                    meta = None
                elif msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    break
        return got

    async def main() -> list[list[tuple[int, float]]]:
        async with aiohttp.ClientSession() as session:
            return list(await asyncio.gather(*(one(session) for _ in range(n))))

    out.put(asyncio.run(main()))


def bench_wire(report: Report, scene: Scene, seconds: float, clients: int) -> None:
    loop = EncodeLoop(None, None, "nano", ControllerConfig(target_bps=2e6))
    jpegs = [loop.encode(scene.frame(i), FrameMeta(i)) for i in range(50)]
    slot: LatestSlot[JpegRecord] = LatestSlot()
    server = StreamServer(slot.reader(), port=0)
    server.start_in_thread()
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_client_process, args=(server.port, clients, seconds, out), daemon=True)
    proc.start()
    while len(server.clients) < clients and proc.is_alive():
        time.sleep(0.01)
    stop = threading.Event()
    put = [0]

    def writer() -> None:
        nxt = time.monotonic()
        while not stop.is_set():
            r = jpegs[put[0] % len(jpegs)]
            slot.put(JpegRecord(put[0], r.jpeg, r.width, r.height, r.mode, r.quality, r.scale, t={"encoded": time.monotonic_ns()}))
            put[0] += 1
            nxt += 0.04
            stop.wait(max(0.0, nxt - time.monotonic()))

    server.wire_ns.clear()
    t = threading.Thread(target=writer, daemon=True)
    t.start()
    results = out.get(timeout=seconds + 60)
    stop.set()
    t.join()
    proc.join(10)
    dropped = sum(c.dropped for c in server.clients)
    slot.close()
    server.stop_thread()
    wire = np.asarray(server.wire_ns, dtype=np.float64) / 1e6
    recv = [lat for per in results for _, lat in per]
    thirds = []
    for per in results:
        k = len(per) // 3
        if k:
            thirds.append((np.median([x for _, x in per[:k]]), np.median([x for _, x in per[-k:]])))
    fps = [len(per) / seconds for per in results]
    growth = float(np.mean([b - a for a, b in thirds])) if thirds else float("nan")
    report.wire.append({
        "clients": clients, "seconds": seconds, "frames_put": put[0],
        "wire_p50_ms": pct(wire, 50), "wire_p99_ms": pct(wire, 99),
        "recv_p50_ms": pct(recv, 50), "recv_p99_ms": pct(recv, 99),
        "fps_min": min(fps), "fps_mean": float(np.mean(fps)), "server_dropped": dropped,
        "latency_growth_ms": growth,
        "met_wire": pct(wire, 99) <= 5.0, "met_fps": min(fps) >= 24.0 and abs(growth) < 2.0,
    })


def yes(v: bool | None) -> str:
    return "" if v is None else ("yes" if v else "**no**")


def markdown(report: Report) -> str:
    p = report.provenance
    lines = [
        "# Encode and serve benchmark", "", f"Command: `{p['command']}`", "",
        "| provenance | |", "| --- | --- |", *(f"| {k} | {v} |" for k, v in p.items() if k != "command"), "",
        "## Encode time per frame in the stage (1280x704 panning scene, quality 75, single thread)", "",
        "| mode | output | median us | p99 us | KiB/frame | Mbps at 25 fps | target | met |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for r in report.encode:
        lines.append(f"| {r['mode']} | {r['size']} | {r['median_us']:.1f} | {r['p99_us']:.1f} | {r['kib']:.1f} | {r['mbps_at_25']:.2f} | {r['target']} | {yes(r['met'])} |")
    lines += [
        "", "## Bitrate held by the adaptive controller (moving content, look changes every 4 s)", "",
        "Per 1-second window after a 1-second warm-up; target: every window within 10 %.", "",
        "| mode | target Mbps | mean Mbps | worst window | windows | final quality | final scale | met |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in report.bitrate:
        lines.append(f"| {r['mode']} | {r['target_mbps']:.1f} | {r['mean_mbps']:.3f} | {r['worst_window_err_pct']:+.1f} % | {r['windows']} | {r['final_quality']} | 1/{r['final_scale']} | {yes(r['met'])} |")
    lines += [
        "", "## Frame -> on the wire, and fan-out (nano records at 25 fps, clients in another process)", "",
        "wire = encoded -> handed to the client's socket (server side); recv = encoded -> received by the",
        "client. Targets: wire p99 <= 5 ms; every client >= 24 fps with no latency growth (|last third - first third| < 2 ms).", "",
        "| clients | frames put | wire p50 ms | wire p99 ms | recv p50 ms | recv p99 ms | min fps | server drops | growth ms | wire met | fps met |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for r in report.wire:
        lines.append(
            f"| {r['clients']} | {r['frames_put']} | {r['wire_p50_ms']:.2f} | {r['wire_p99_ms']:.2f} | {r['recv_p50_ms']:.2f} | "
            f"{r['recv_p99_ms']:.2f} | {r['fps_min']:.1f} | {r['server_dropped']} | {r['latency_growth_ms']:+.2f} | {yes(r['met_wire'])} | {yes(r['met_fps'])} |"
        )
    if report.notes:
        lines += ["", "## Notes", "", *report.notes]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=300, help="encode rounds per mode")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each fan-out run")
    parser.add_argument("--quick", action="store_true", help="a smoke run, not a measurement")
    parser.add_argument("--out", type=Path, help="write the Markdown here as well as to stdout")
    parser.add_argument("--json", type=Path, help="write the rows and provenance as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds = 30, 2.0
    report = Report(provenance(args))
    scene = Scene()
    print("bench: encode ...", file=sys.stderr, flush=True)
    bench_encode(report, scene, args.rounds)
    print("bench: bitrate ...", file=sys.stderr, flush=True)
    bench_bitrate(report, scene, 12 if not args.quick else 6)
    for n in (1, 8):
        print(f"bench: wire, {n} client(s) ...", file=sys.stderr, flush=True)
        bench_wire(report, scene, args.seconds, n)
    try:
        end_load = "%.1f %.1f %.1f" % os.getloadavg()
    except OSError:
        end_load = "unknown"
    report.notes += [
        f"- Load average at the end: {end_load} on {os.cpu_count()} cores. The p99 columns of the encode table",
        "  are dominated by preemption when the machine is shared (a 0.3 ms encode that loses its core waits",
        "  a scheduler slice); medians are the figures to compare, and the round-robin puts that noise on",
        "  every mode alike.",
        "- 'nano, kernel alone' is `NanoEncoder.encode` at the same settings in the same rounds; the stage row",
        "  adds the controller, the encoder cache and the record, so the two differ only by noise and order.",
        "- wire is measured after `send_bytes` returned, i.e. the frame is in the kernel's socket buffer.",
    ]
    text = markdown(report)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
