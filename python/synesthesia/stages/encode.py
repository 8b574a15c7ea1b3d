"""Encode stage: newest frame from the frame ring -> JPEG record on the jpeg ring.

Runs in its own process. It always takes the newest frame (never queues behind the renderer),
encodes it with the Rust kernels straight into the jpeg ring's slot, and reports throughput.
"""

from __future__ import annotations

import time

import numpy as np

from synesthesia import kernels, shm
from synesthesia.messages import FrameStats
from synesthesia.stages.host import StageContext

_SCALE = {"nano": 4, "preview": 2, "full": 1}


def main(ctx: StageContext) -> None:
    cfg = ctx.settings.encode
    frames = shm.FrameRing.attach(ctx.rings["frames"])
    jpeg = shm.ByteRing.attach(ctx.rings["jpeg"])
    qtables = "turbo" if cfg.mode == "nano" else None
    enc = kernels.NanoEncoder(scale=_SCALE[cfg.mode], method="area", quality=cfg.quality, qtables=qtables)
    encoded = dropped = 0
    times: list[float] = []
    last = time.monotonic()
    try:
        while not ctx.stop.is_set():
            ctx.tick()
            rec = frames.read_latest(timeout=0.1)
            if rec is None:
                continue
            dropped += rec.missed
            t0 = time.perf_counter()
            with jpeg.write() as slot:
                n = enc.encode_into(rec.array, slot.array)
                slot.size = n
                slot.meta.frame = rec.meta.frame
                slot.meta.trace_ids = rec.meta.trace_ids
                slot.meta.t_source_ns = rec.meta.t_source_ns
            if not rec.valid():
                dropped += 1  # overwritten while we encoded it: what we sent may be torn
            times.append((time.perf_counter() - t0) * 1e6)
            encoded += 1
            now = time.monotonic()
            if now - last >= 1.0:
                a = np.asarray(times)
                ctx.publish(FrameStats(stage=ctx.name, stream=cfg.mode, frames=encoded, dropped=dropped,
                                       fps=len(a) / (now - last), latency_p50_us=float(np.median(a)),
                                       latency_p99_us=float(np.percentile(a, 99))))
                ctx.status.update(encoded=encoded, dropped=dropped)
                times.clear()
                last = now
    finally:
        frames.close()
        jpeg.close()
