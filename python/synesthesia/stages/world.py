"""World stage: renders the world into the frame ring at a steady output rate.

Runs in its own process. Interim shell: until the world backends land it animates the synthetic
scene from `synesthesia.frames`, paced to `world.fps` on the monotonic clock.
"""

from __future__ import annotations

import time

import numpy as np

from synesthesia import shm
from synesthesia.frames import synthetic_frame
from synesthesia.messages import FrameStats
from synesthesia.stages.host import StageContext


def main(ctx: StageContext) -> None:
    cfg = ctx.settings.world
    ring = shm.FrameRing.attach(ctx.rings["frames"])
    period = 1.0 / cfg.fps
    next_t = time.monotonic()
    frames = 0
    render_us: list[float] = []
    last_stats = time.monotonic()
    try:
        while not ctx.stop.is_set():
            ctx.tick()
            t0 = time.perf_counter()
            frame = synthetic_frame(frames * period, cfg.width, cfg.height, seed=cfg.seed)
            with ring.write() as slot:
                slot.array[...] = frame
                slot.meta.t_source_ns = time.monotonic_ns()
            render_us.append((time.perf_counter() - t0) * 1e6)
            frames += 1
            now = time.monotonic()
            if now - last_stats >= 1.0:
                a = np.asarray(render_us)
                ctx.publish(FrameStats(stage=ctx.name, stream="frames", frames=frames, fps=len(a) / (now - last_stats),
                                       latency_p50_us=float(np.median(a)), latency_p99_us=float(np.percentile(a, 99))))
                ctx.status.update(frames=frames)
                render_us.clear()
                last_stats = now
            next_t += period
            delay = next_t - time.monotonic()
            if delay > 0:
                ctx.stop.wait(delay)
            else:
                next_t = time.monotonic()  # fell behind: do not try to catch up with a burst
    finally:
        ring.close()
