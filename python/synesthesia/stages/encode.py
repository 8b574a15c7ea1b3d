"""Encode stage: newest frame from the frame ring -> JPEG record on the jpeg ring.

Runs in its own process: a shell over :class:`synesthesia.stream.encoder.EncodeLoop`. It always
takes the newest frame (never queues behind the renderer), encodes it with the Rust kernels at
the adaptive controller's quality and scale, and writes the packed record into the jpeg ring.
"""

from __future__ import annotations

import time
from typing import Any

from synesthesia import shm
from synesthesia.messages import FrameStats
from synesthesia.stages.host import StageContext
from synesthesia.stream.encoder import ControllerConfig, EncodeLoop
from synesthesia.stream.records import FrameMeta, JpegRecord


class FrameRingSource:
    """`FrameSource` over the frame ring: the newest frame, as a view (no copy)."""

    def __init__(self, ring: shm.FrameRing) -> None:
        self.ring = ring
        self.last: shm.FrameRecord | None = None

    def latest(self, timeout: float) -> tuple[Any, FrameMeta] | None:
        rec = self.ring.read_latest(timeout=timeout)
        if rec is None:
            return None
        self.last = rec
        m = rec.meta
        t = {"rendered": m.t_source_ns} if m.t_source_ns else {}
        return rec.array, FrameMeta(frame=m.frame, trace_ids=tuple(i for i in m.trace_ids if i), t=t)


class JpegRingSink:
    """`RecordSink` into the jpeg ring: the packed record is written straight into the slot."""

    def __init__(self, ring: shm.ByteRing) -> None:
        self.ring = ring

    def put(self, record: JpegRecord) -> None:
        with self.ring.write() as slot:
            slot.size = record.pack_into(slot.array)
            slot.meta.frame = record.frame
            slot.meta.trace_ids = tuple(record.trace_ids[: shm.MAX_TRACE_IDS])
            slot.meta.t_source_ns = record.t.get("encoded", 0)


def main(ctx: StageContext) -> None:
    cfg = ctx.settings
    frames = shm.FrameRing.attach(ctx.rings["frames"])
    jpeg = shm.ByteRing.attach(ctx.rings["jpeg"])
    source = FrameRingSource(frames)
    loop = EncodeLoop(source, JpegRingSink(jpeg), cfg.encode.mode,
                      ControllerConfig(target_bps=cfg.encode.bitrate_bps, fps=cfg.world.fps))
    torn = 0
    last = time.monotonic()
    last_frames = 0
    try:
        while not ctx.stop.is_set():
            ctx.tick()
            record = loop.step(timeout=0.1)
            if record is not None and source.last is not None and not source.last.valid():
                torn += 1  # the renderer lapped us mid-encode: counted, the next frame replaces it
            now = time.monotonic()
            if now - last >= 1.0:
                report = loop.report()
                s = loop.stats
                ctx.publish(FrameStats(stage=ctx.name, stream=cfg.encode.mode, frames=s.frames,
                                       dropped=s.dropped + torn, fps=(s.frames - last_frames) / (now - last),
                                       latency_p50_us=report["encode_ms_p50"] * 1e3,
                                       latency_p99_us=report["encode_ms_p99"] * 1e3))
                ctx.status.update(quality=report["quality"], scale=report["scale"], kbps=report["kbps"], torn=torn)
                last, last_frames = now, s.frames
    finally:
        frames.close()
        jpeg.close()
