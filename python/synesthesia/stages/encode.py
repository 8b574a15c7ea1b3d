"""Encode stage: newest frame from the frame ring -> encoded records on the jpeg ring.

Runs in its own process: a shell over :class:`synesthesia.stream.encoder.EncodeLoop`. It always
takes the newest frame (never queues behind the renderer), encodes it (H.264 through libx264,
and/or JPEG with the Rust kernels at the adaptive controller's quality and scale), and writes
the packed records into the jpeg ring. The serve stage's ``serve.encode_request`` events say
when a viewer needs a key frame, whether any viewer needs JPEG beside the video, and whether any
decodes the video at all (with none, and no .mp4 recording, the H.264 side rests).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from synesthesia import shm
from synesthesia.messages import EncodeRequest, FrameStats
from synesthesia.stages.host import StageContext
from synesthesia.stream.encoder import ControllerConfig, EncodeLoop
from synesthesia.stream.h264 import H264Codec, H264Config
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
            slot.meta.flags = int(record.key)


def _follow_requests(ctx: StageContext, loop: EncodeLoop) -> None:
    sub = ctx.subscribe(["serve.encode_request"])
    try:
        while not ctx.stop.is_set():
            got = sub.recv(timeout=0.2)
            if got is not None and isinstance(got[1], EncodeRequest):
                loop.demand(got[1].keyframe, got[1].jpeg, got[1].reason, video=got[1].video)
    finally:
        sub.close()


def main(ctx: StageContext) -> None:
    cfg = ctx.settings
    frames = shm.FrameRing.attach(ctx.rings["frames"])
    jpeg = shm.ByteRing.attach(ctx.rings["jpeg"])
    source = FrameRingSource(frames)
    video = None
    if cfg.encode.codec == "h264":
        video = H264Codec(cfg.world.width, cfg.world.height, H264Config(target_bps=cfg.encode.bitrate_bps, fps=cfg.world.fps))
    loop = EncodeLoop(source, JpegRingSink(jpeg), cfg.encode.mode,
                      ControllerConfig(target_bps=cfg.encode.bitrate_bps, fps=cfg.world.fps), video=video,
                      jpeg_always=(cfg.record or "").lower().endswith(".avi"),
                      video_always=(cfg.record or "").lower().endswith(".mp4"))
    requests = threading.Thread(target=_follow_requests, args=(ctx, loop), name="requests", daemon=True)
    requests.start()
    torn = 0
    last = time.monotonic()
    last_frames: dict[str, float] = {}
    try:
        while not ctx.stop.is_set():
            ctx.tick()
            record = loop.step(timeout=0.1)
            if record is not None and source.last is not None and not source.last.valid():
                torn += 1  # the renderer lapped us mid-encode: counted, the next frame replaces it
            now = time.monotonic()
            if now - last >= 1.0:
                report = loop.report()
                # One FrameStats per stream made: H.264 rests without video viewers while JPEG
                # for the others goes on, and the run's frame counts add both up.
                for i, (stream, st) in enumerate(loop.streams().items()):
                    ctx.publish(FrameStats(stage=ctx.name, stream=stream, frames=int(st["frames"]),
                                           dropped=int(st["dropped"]) + (torn if i == 0 else 0),
                                           fps=(st["frames"] - last_frames.get(stream, 0)) / (now - last),
                                           latency_p50_us=st["p50_ms"] * 1e3, latency_p99_us=st["p99_ms"] * 1e3))
                    last_frames[stream] = st["frames"]
                ctx.status.update(codec=report["codec"], quality=report["quality"], scale=report["scale"],
                                  kbps=report["kbps"], torn=torn)
                if loop.video is not None:  # "resting": no viewer decodes video, none is made
                    ctx.status.update(video="on" if report["video"] else "resting")
                last = now
    finally:
        frames.close()
        jpeg.close()
