"""H.264 delta-frame encoding of the full picture through libx264 (encode process).

:class:`H264Codec` turns RGB frames into Annex-B access units (SPS and PPS in-band before every
IDR, so a WebCodecs ``VideoDecoder`` configured without ``description`` can start at any key
frame) and wraps each in a record with the frame's trace ids and hop timestamps. The RGB ->
I420 conversion is the Rust core's (:func:`synesthesia.kernels.rgb_to_i420`); PyAV only carries
the picture to libx264.

Zero latency: no B-frames, no lookahead, one access unit out for every frame in, and a VBV
buffer of about one frame interval so no frame can be much larger than the bitrate allows (a
big frame is a late frame on a thin link). libx264's own rate control (ABR under that VBV)
holds the bitrate frame by frame (2 s windows within 10% of the target); :class:`H264Controller` watches what comes out and, when the
encoder runs over its time budget, halves the frame rate before the stream falls behind, and
asks for the full rate back once there is room again.

Key frames only when needed: the first frame, whenever a viewer joins or must resynchronise
(:meth:`H264Codec.request_keyframe`, rate-limited so a crowd joining costs one), and at a cut
that libx264's scene-cut detection finds; otherwise one long GOP of P frames (see
``bench/results/stream.md`` for the comparison with periodic intra refresh).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from synesthesia import kernels
from synesthesia.errors import StreamConfigError
from synesthesia.stream.records import FrameMeta, JpegRecord

__all__ = ["H264Config", "H264Codec", "H264Controller", "CODEC_STRING"]

log = logging.getLogger("synesthesia.stream.h264")
Frame = npt.NDArray[np.uint8]

#: What the viewer passes to ``VideoDecoder.configure``: Constrained Baseline would forbid
#: nothing libx264 ultrafast uses except CABAC; High profile level 3.1 covers 1280x720 at 30 fps.
CODEC_STRING = "avc1.64001F"
#: The hard cap on any frame interval's bits, over the target (see ``_open``).
VBV_HEADROOM = 1.15
#: libx264's ABR target over ours: under a one-frame VBV, ABR lands 10-20% low (every frame is
#: capped near the mean), so it is asked for more and the cap decides (measured on the
#: procedural world: 2 s windows within 0.91-1.02 of the target at 2 Mbps, bench/results/stream.md).
ABR_OVER = 1.3


@dataclass(slots=True)
class H264Config:
    target_bps: float = 2_000_000.0
    fps: float = 25.0
    preset: str = "ultrafast"
    #: Wall time per frame the stage may spend (half a frame period at 25 fps, as for JPEG);
    #: over it for a while, the frame rate halves before the stream falls behind.
    budget_ms: float = 20.0
    #: "gop": one IDR then P frames until a key frame is asked for or a scene cut is found;
    #: "intra-refresh": no IDR after the first, a moving column of intra blocks instead.
    refresh: str = "gop"
    scenecut: bool = True
    #: Shortest gap between two key frames asked for by viewers (requests in between merge).
    min_key_interval_s: float = 0.1
    threads: int = 1

    def check(self) -> None:
        if not self.target_bps >= 50_000:
            raise StreamConfigError(f"target_bps: must be >= 50000, got {self.target_bps}")
        if not 1 <= self.fps <= 120:
            raise StreamConfigError(f"fps: must be in 1..120, got {self.fps}")
        if self.refresh not in ("gop", "intra-refresh"):
            raise StreamConfigError(f"refresh: expected 'gop' or 'intra-refresh', got {self.refresh!r}")
        if self.preset not in ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium"):
            raise StreamConfigError(f"preset: not a libx264 speed preset we use: {self.preset!r}")
        if not self.budget_ms > 0:
            raise StreamConfigError(f"budget_ms: must be > 0, got {self.budget_ms}")


class H264Controller:
    """Frame-rate degradation under the encode-time budget (libx264 holds the bitrate).

    ``stride`` is how many input frames make one output frame: 1 at full rate, 2 at half. It
    goes to 2 after 10 frames whose smoothed encode time is over the budget, and back to 1
    after 50 frames under half of it.
    """

    def __init__(self, config: H264Config) -> None:
        self.config = config
        self.stride = 1
        self._ema: float | None = None
        self._over = 0
        self._under = 0
        self.decisions: collections.deque[tuple[int, int, str]] = collections.deque(maxlen=32)

    def observe(self, frame: int, encode_ns: int) -> None:
        ms = encode_ns / 1e6
        self._ema = ms if self._ema is None else 0.8 * self._ema + 0.2 * ms
        budget = self.config.budget_ms
        self._over = self._over + 1 if self._ema > budget else 0
        self._under = self._under + 1 if self._ema < budget / 2 else 0
        if self.stride == 1 and self._over >= 10:
            self.stride = 2
            reason = f"encode {self._ema:.2f} ms over budget {budget:g} ms: half frame rate"
        elif self.stride == 2 and self._under >= 50:
            self.stride = 1
            reason = "encode well under budget: full frame rate"
        else:
            return
        self._over = self._under = 0
        self.decisions.append((frame, self.stride, reason))
        log.info("h264: frame %d stride %d (%s)", frame, self.stride, reason)


@dataclass
class H264Stats:
    frames: int = 0
    keyframes: int = 0
    skipped: int = 0
    bytes: int = 0
    encode_ns: collections.deque[int] = field(default_factory=lambda: collections.deque(maxlen=250))
    window: collections.deque[tuple[int, int]] = field(default_factory=lambda: collections.deque(maxlen=256))


class H264Codec:
    """RGB frame in, one Annex-B access unit record out. Not thread-safe except for
    :meth:`request_keyframe`, which any thread may call."""

    name = "h264"

    def __init__(self, width: int, height: int, config: H264Config | None = None) -> None:
        import av  # heavy; only the processes that encode video pay for it

        self.config = config or H264Config()
        self.config.check()
        if width % 2 or height % 2 or width < 16 or height < 16:
            raise StreamConfigError(f"size: H.264 4:2:0 needs even sizes >= 16, got {width}x{height}")
        self.width, self.height = width, height
        self._av = av
        self.controller = H264Controller(self.config)
        self.stats = H264Stats()
        self._i420 = np.empty((height * 3 // 2, width), np.uint8)
        self._frame: Any = None
        self._planes: list[npt.NDArray[np.uint8]] = []
        self._pts = 0
        self._seq = 0
        self._key_lock = threading.Lock()
        self._key_wanted: str | None = "first frame"
        self._last_key = -1e9
        self._abr = float(self.config.target_bps) * ABR_OVER
        self._ctx = self._open()

    def _open(self) -> Any:
        cfg = self.config
        fps = Fraction(cfg.fps).limit_denominator(1001)
        try:
            ctx = self._av.CodecContext.create("libx264", "w")
        except ValueError as exc:  # av.codec.codec.UnknownCodecError
            raise StreamConfigError(f"encode.codec: h264 needs libx264, which this PyAV build lacks ({exc}); "
                                    "use encode.codec = 'jpeg' (--codec jpeg)") from None
        ctx.width, ctx.height, ctx.pix_fmt = self.width, self.height, "yuv420p"
        ctx.time_base = 1 / fps
        ctx.framerate = fps
        ctx.bit_rate = int(self._abr)
        kbps = int(cfg.target_bps / 1000)
        # The VBV cap (a one-frame buffer at 1.15x the target rate) bounds every window.
        maxrate = int(kbps * VBV_HEADROOM)
        params = [
            "bframes=0", "rc-lookahead=0", "sync-lookahead=0", "sliced-threads=0", f"threads={cfg.threads}",
            f"vbv-maxrate={maxrate}", f"vbv-bufsize={max(1, round(maxrate / cfg.fps))}",
            "repeat-headers=1", "annexb=1", "aud=0",
            # BT.601 limited range, which is what rgb_to_i420 writes; said in the VUI so that
            # decoders do not guess.
            "colorprim=smpte170m", "transfer=smpte170m", "colormatrix=smpte170m", "range=tv",
        ]
        if cfg.refresh == "intra-refresh":
            params += ["intra-refresh=1", f"keyint={round(cfg.fps * 2)}"]
        else:
            params += ["keyint=infinite", "min-keyint=1"]
        if not cfg.scenecut:
            params.append("scenecut=0")
        ctx.options = {"preset": cfg.preset, "tune": "zerolatency", "forced-idr": "1", "x264-params": ":".join(params)}
        ctx.open()
        return ctx

    def _picture(self, frame: Frame) -> Any:
        """The frame as libx264's input. The Rust kernel writes straight into one reused
        picture's planes when they are unpadded (they are for widths that are multiples of 64);
        libx264 copies its input during ``encode``, so reusing the picture is safe."""
        if self._frame is None:
            vf = self._av.VideoFrame(self.width, self.height, "yuv420p")
            if all(p.line_size == p.width for p in vf.planes):
                self._frame = vf
                self._planes = [np.frombuffer(memoryview(p), np.uint8) for p in vf.planes]
        if self._frame is not None:
            kernels.rgb_to_i420_planes(frame, *self._planes)
            self._frame.pict_type = self._av.video.frame.PictureType.NONE
            return self._frame
        kernels.rgb_to_i420(frame, self._i420)
        return self._av.VideoFrame.from_ndarray(self._i420, format="yuv420p")

    def request_keyframe(self, reason: str = "viewer") -> None:
        """Ask for an IDR at the next encoded frame (merged with any request already pending)."""
        with self._key_lock:
            if self._key_wanted is None:
                self._key_wanted = reason

    def _take_key_request(self, now: float) -> str | None:
        with self._key_lock:
            if self._key_wanted is None or now - self._last_key < self.config.min_key_interval_s:
                return None
            reason, self._key_wanted = self._key_wanted, None
            return reason

    def set_bitrate(self, bps: float) -> None:
        """A new target: libx264 is reopened with its cap (the next frame is a key frame)."""
        self.config.target_bps = float(bps)
        self._abr = float(bps) * ABR_OVER
        self._ctx = self._open()
        self.request_keyframe("new bitrate")

    def wants(self, frame: int) -> bool:
        """Whether this input frame is encoded at the controller's current frame rate."""
        return frame % self.controller.stride == 0 or self._key_wanted is not None

    def encode(self, frame: Frame, meta: FrameMeta) -> JpegRecord | None:
        """Encode one frame; None when the frame-rate controller skips it."""
        if frame.shape[0] != self.height or frame.shape[1] != self.width:
            raise StreamConfigError(f"frame: expected {self.width}x{self.height}, got {frame.shape[1]}x{frame.shape[0]}")
        if not self.wants(meta.frame):
            self.stats.skipped += 1
            return None
        t0 = time.monotonic_ns()
        key_reason = self._take_key_request(t0 / 1e9)
        vf = self._picture(frame)
        vf.pts = self._pts
        self._pts += 1
        if key_reason is not None:
            vf.pict_type = self._av.video.frame.PictureType.I
        packets = self._ctx.encode(vf)
        t1 = time.monotonic_ns()
        if not packets:  # libx264 with zero latency never holds a frame back; say so if it does
            log.warning("h264: no access unit for frame %d", meta.frame)
            return None
        data = b"".join(bytes(p) for p in packets)
        key = any(p.is_keyframe for p in packets)
        if key:
            self._last_key = t1 / 1e9
        self.controller.observe(meta.frame, t1 - t0)
        s = self.stats
        s.frames += 1
        s.keyframes += key
        s.bytes += len(data)
        s.encode_ns.append(t1 - t0)
        s.window.append((t1, len(data)))
        t = dict(meta.t)
        t["encode_start"], t["encoded"] = t0, t1
        seq = self._seq
        self._seq += 1
        return JpegRecord(meta.frame, data, self.width, self.height, "full", 0, 1, meta.trace_ids, t,
                          codec="h264", key=key, seq=seq)

    def flush(self) -> list[bytes]:
        """Whatever the encoder still holds (nothing, with these settings)."""
        return [bytes(p) for p in self._ctx.encode(None)]

    def report(self) -> dict[str, Any]:
        s, cfg = self.stats, self.config
        times = np.asarray(s.encode_ns or [0], dtype=np.float64) / 1e6
        now = time.monotonic_ns()
        recent = [n for t, n in s.window if now - t < 2_000_000_000]
        last = self.controller.decisions[-1] if self.controller.decisions else None
        return {
            "type": "encode.stats",
            "codec": "h264",
            "mode": "full",
            "quality": 0,
            "scale": 1,
            "stride": self.controller.stride,
            "target_kbps": cfg.target_bps / 1e3,
            "kbps": round(sum(recent) * 8 / 2 / 1e3, 1),
            "encode_ms_p50": round(float(np.median(times)), 3),
            "encode_ms_p99": round(float(np.percentile(times, 99)), 3),
            "frames": s.frames,
            "keyframes": s.keyframes,
            "dropped": s.skipped,
            "last_decision": None if last is None else {"frame": last[0], "stride": last[1], "reason": last[2]},
        }
