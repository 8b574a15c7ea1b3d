"""Adaptive encoding of the newest frame: the domain logic of the encode stage (encode process).

Two codecs behind one shape (``encode(frame, meta) -> record``, ``report() -> dict``): the JPEG
path in this module and H.264 in :mod:`synesthesia.stream.h264`. With a video codec the loop
encodes every frame with it while some viewer decodes video and, only while some viewer cannot
(see :meth:`EncodeLoop.demand`), a nano JPEG beside it. With no video viewer the video side
rests (about 5 ms of a core per frame saved) and starts again with a key frame at once.

:class:`EncodeLoop` reads the newest frame from a :class:`~synesthesia.stream.ports.FrameSource`
(skipping, never queueing behind, and counting what it skipped), encodes it with the Rust kernels
and puts a :class:`~synesthesia.stream.records.JpegRecord` into a record sink.

Modes set the largest picture the stream may carry: ``nano`` (4:1 per axis, 4:2:0, the ``turbo``
tables; the default), ``preview`` (2:1, Annex K tables) and ``full`` (1:1). Within a mode the
:class:`BitrateController` moves JPEG quality first and the scale second (never above the mode's
resolution) to hold a target bitrate and an encode-time budget, and records every choice it makes
with its reason, because a person looking at a blurry picture should be able to find out why.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from synesthesia import kernels
from synesthesia.errors import StreamConfigError
from synesthesia.stream.ports import FrameSource, RecordSink
from synesthesia.stream.records import MODES, FrameMeta, JpegRecord

__all__ = ["ModeSpec", "MODE_SPECS", "ControllerConfig", "Decision", "BitrateController", "EncodeLoop"]

log = logging.getLogger("synesthesia.stream.encoder")
Frame = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class ModeSpec:
    scale: int
    method: kernels.Method
    turbo: bool


MODE_SPECS = {
    "nano": ModeSpec(4, "nearest", True),
    # Area averaging costs more but a 2:1 picture is looked at closely; nano favours speed.
    "preview": ModeSpec(2, "area", False),
    "full": ModeSpec(1, "nearest", False),
}
_SCALES = (1, 2, 4, 8)


def _ijg_factor(quality: int) -> float:
    return 5000.0 / quality if quality < 50 else 200.0 - 2.0 * quality


def turbo_tables_at(quality: int) -> tuple[list[int], list[int]]:
    """The ``turbo`` tables rescaled so that quality 75 is the preset itself; IJG's curve otherwise."""
    f = _ijg_factor(quality) / _ijg_factor(75)
    luma, chroma = kernels.turbo_tables()
    return (
        [min(255, max(1, round(v * f))) for v in luma],
        [min(255, max(1, round(v * f))) for v in chroma],
    )


@dataclass(slots=True)
class ControllerConfig:
    target_bps: float = 2_000_000.0
    fps: float = 25.0
    # Half a frame period at 25 fps: encode must never be what makes the stream fall behind.
    budget_ms: float = 20.0
    quality: int = 75
    q_min: int = 20
    q_max: int = 95
    adaptive: bool = True

    def check(self) -> None:
        if not self.target_bps > 0:
            raise StreamConfigError(f"target_bps: must be > 0, got {self.target_bps}")
        if not self.fps > 0:
            raise StreamConfigError(f"fps: must be > 0, got {self.fps}")
        if not self.budget_ms > 0:
            raise StreamConfigError(f"budget_ms: must be > 0, got {self.budget_ms}")
        if not 1 <= self.q_min <= self.quality <= self.q_max <= 100:
            raise StreamConfigError(
                f"quality: need 1 <= q_min <= quality <= q_max <= 100, got {self.q_min}, {self.quality}, {self.q_max}"
            )


@dataclass(frozen=True, slots=True)
class Decision:
    frame: int
    quality: int
    scale: int
    reason: str


class BitrateController:
    """Chooses (quality, scale) for the next frame from the sizes and encode times of the last ones.

    Quality follows the log of (smoothed size / target size): JPEG size is close to exponential
    in quality over the useful range, so a step proportional to the log error converges in a
    few frames without oscillating. Scale only moves when quality is pinned at a bound (or the
    encode-time budget is blown) for a while, because a resolution change is visible.
    """

    DEADBAND = 0.03
    GAIN = 20.0
    MAX_STEP = 6.0

    def __init__(self, base_scale: int, config: ControllerConfig | None = None) -> None:
        self.config = config or ControllerConfig()
        self.config.check()
        if base_scale not in _SCALES:
            raise StreamConfigError(f"base_scale: expected one of {_SCALES}, got {base_scale}")
        self.base_scale = base_scale
        self.scale = base_scale
        self._q = float(self.config.quality)
        self._log_err: float | None = None
        self._time_ema: float | None = None
        self._pinned_high = 0
        self._pinned_low = 0
        self._over_budget = 0
        self.decisions: collections.deque[Decision] = collections.deque(maxlen=64)

    @property
    def quality(self) -> int:
        return int(round(self._q))

    @property
    def target_bytes(self) -> float:
        return self.config.target_bps / 8.0 / self.config.fps

    def observe(self, frame: int, size: int, encode_ns: int) -> None:
        if not self.config.adaptive:
            return
        cfg = self.config
        err = math.log(max(size, 1) / self.target_bytes)
        self._log_err = err if self._log_err is None else 0.5 * self._log_err + 0.5 * err
        ms = encode_ns / 1e6
        self._time_ema = ms if self._time_ema is None else 0.8 * self._time_ema + 0.2 * ms
        before = (self.quality, self.scale)
        if abs(self._log_err) > self.DEADBAND:
            step = max(-self.MAX_STEP, min(self.MAX_STEP, -self.GAIN * self._log_err))
            self._q = max(cfg.q_min, min(cfg.q_max, self._q + step))
        reason = "bitrate"
        self._pinned_low = self._pinned_low + 1 if self._q <= cfg.q_min and self._log_err > 0.1 else 0
        self._pinned_high = self._pinned_high + 1 if self._q >= cfg.q_max and self._log_err < -0.3 else 0
        self._over_budget = self._over_budget + 1 if self._time_ema > cfg.budget_ms else 0
        if self._over_budget >= 5 and self.scale < _SCALES[-1]:
            reason = f"encode time {self._time_ema:.2f} ms over budget {cfg.budget_ms:g} ms"
            self._rescale(+1)
        elif self._pinned_low >= 5 and self.scale < _SCALES[-1]:
            reason = f"quality at minimum {cfg.q_min} and still {math.exp(self._log_err):.2f}x over target"
            self._rescale(+1)
        elif (
            self._pinned_high >= 25
            and self.scale > self.base_scale
            and self._time_ema * 4 < cfg.budget_ms
        ):
            self._rescale(-1)
            reason = "quality at maximum and well under target: more pixels"
        if (self.quality, self.scale) != before:
            d = Decision(frame, self.quality, self.scale, reason)
            if self.scale != before[1]:
                log.info("encoder: frame %d scale %d -> %d (%s)", frame, before[1], self.scale, reason)
            self.decisions.append(d)

    def _rescale(self, direction: int) -> None:
        i = _SCALES.index(self.scale) + direction
        self.scale = _SCALES[i]
        # A quarter of the pixels gives about a third of the bytes: start near where quality
        # will settle instead of letting the stream swing.
        self._q = max(self.config.q_min, min(self.config.q_max, self._q + 15 * direction))
        self._pinned_high = self._pinned_low = self._over_budget = 0
        self._log_err = None
        self._time_ema = None


@dataclass
class EncodeStats:
    frames: int = 0
    dropped: int = 0
    bytes: int = 0
    encode_ns: collections.deque[int] = field(default_factory=lambda: collections.deque(maxlen=250))
    sizes: collections.deque[int] = field(default_factory=lambda: collections.deque(maxlen=25))


class EncodeLoop:
    """Newest frame in, one JPEG record out. ``run`` loops until ``stop`` is set."""

    def __init__(
        self,
        source: FrameSource | None,
        sink: RecordSink | None,
        mode: str = "nano",
        config: ControllerConfig | None = None,
        video: Any = None,
        jpeg_always: bool = False,
        video_always: bool = False,
    ) -> None:
        if mode not in MODES:
            raise StreamConfigError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self.spec = MODE_SPECS[mode]
        self.source = source
        self.sink = sink
        self.controller = BitrateController(self.spec.scale, config)
        self.stats = EncodeStats()
        self._encoders: collections.OrderedDict[tuple[int, int], kernels.NanoEncoder] = collections.OrderedDict()
        self._last_frame: int | None = None
        #: The video codec (an :class:`~synesthesia.stream.h264.H264Codec`) or None for JPEG only.
        self.video = video
        self._jpeg_until = 0.0
        #: JPEG beside the video whether or not a viewer asks (an .avi recording wants it).
        self.jpeg_always = jpeg_always
        #: Video whether or not a viewer asks (an .mp4 recording wants every frame).
        self.video_always = video_always
        # Until a server first says what its viewers need, video is made: whoever reads the
        # records without being a viewer (a headless bench's tap) is not left without frames.
        self._video_until = math.inf
        self._video_resting = False

    #: How long one "JPEG wanted" or "video wanted" lasts without being repeated (the server
    #: repeats what its viewers need every second).
    JPEG_DEMAND_S = 3.0
    VIDEO_DEMAND_S = 3.0

    def demand(self, keyframe: bool = False, jpeg: bool = False, reason: str = "", video: bool | None = None) -> None:
        """What the viewers need (thread-safe): a key frame next, JPEG beside the video, and
        whether any viewer decodes the video at all (None: not said, nothing changes)."""
        if keyframe and self.video is not None:
            self.video.request_keyframe(reason or "viewer")
        self._jpeg_until = time.monotonic() + self.JPEG_DEMAND_S if jpeg else 0.0
        if video:
            self._video_until = time.monotonic() + self.VIDEO_DEMAND_S
        elif video is not None and self._video_until == math.inf:
            # The first word from a server: no video viewer. What was made so far lasts a
            # moment more (a reader may be starting), then the video side rests.
            self._video_until = time.monotonic() + self.VIDEO_DEMAND_S

    @property
    def jpeg_wanted(self) -> bool:
        return self.video is None or self.jpeg_always or time.monotonic() < self._jpeg_until

    @property
    def video_wanted(self) -> bool:
        return self.video is not None and (self.video_always or time.monotonic() < self._video_until)

    def _encoder(self, scale: int, quality: int) -> kernels.NanoEncoder:
        key = (scale, quality)
        enc = self._encoders.get(key)
        if enc is None:
            if self.spec.turbo:
                enc = kernels.NanoEncoder(scale=scale, method=self.spec.method, qtables=turbo_tables_at(quality))
            else:
                enc = kernels.NanoEncoder(scale=scale, method=self.spec.method, quality=quality, qtables=None)
            self._encoders[key] = enc
            # Each holds ~0.2 MiB of buffers once used; 32 of them were 7 MiB that an encode
            # process kept growing into over minutes as the controller visited qualities.
            if len(self._encoders) > 8:
                self._encoders.popitem(last=False)
        else:
            self._encoders.move_to_end(key)
        return enc

    def encode(self, frame: Frame, meta: FrameMeta) -> JpegRecord:
        """Encode one frame with the controller's current choice and let it observe the result."""
        quality, scale = self.controller.quality, self.controller.scale
        enc = self._encoder(scale, quality)
        t0 = time.monotonic_ns()
        jpeg = enc.encode(frame)
        t1 = time.monotonic_ns()
        self.controller.observe(meta.frame, len(jpeg), t1 - t0)
        if self._last_frame is not None and meta.frame > self._last_frame + 1:
            self.stats.dropped += meta.frame - self._last_frame - 1
        self._last_frame = meta.frame
        s = self.stats
        s.frames += 1
        s.bytes += len(jpeg)
        s.encode_ns.append(t1 - t0)
        s.sizes.append(len(jpeg))
        w, h = enc.output_size(frame.shape[1], frame.shape[0])
        t = dict(meta.t)
        t["encode_start"], t["encoded"] = t0, t1
        return JpegRecord(meta.frame, jpeg, w, h, self.mode, quality, scale, meta.trace_ids, t)

    def step(self, timeout: float = 0.1) -> JpegRecord | None:
        """Encode the newest frame; returns the last record written (None if none)."""
        if self.source is None:
            raise StreamConfigError("source: this EncodeLoop was built without a frame source")
        got = self.source.latest(timeout)
        if got is None:
            return None
        record = None
        if self.video_wanted:
            if self._video_resting:
                # Every decoder that saw the stream before has gone: a new one needs a key frame.
                self._video_resting = False
                self.video.request_keyframe("a video viewer after a rest")
                log.info("encoder: video resumes (a viewer decodes it)")
            record = self.video.encode(*got)
            if record is not None and self.sink is not None:
                self.sink.put(record)
        elif self.video is not None and not self._video_resting:
            self._video_resting = True
            log.info("encoder: video rests (no viewer decodes it)")
        if self.jpeg_wanted:
            record = self.encode(*got)
            if self.sink is not None:
                self.sink.put(record)
        return record

    def run(self, stop: threading.Event, timeout: float = 0.1) -> None:
        while not stop.is_set():
            self.step(timeout)

    def streams(self) -> dict[str, dict[str, float]]:
        """Each stream this loop makes or has made (``h264``, ``jpeg``): frames, frames dropped,
        encode time p50 and p99 in ms. JPEG beside a video codec appears once it has been made."""
        out: dict[str, dict[str, float]] = {}
        if self.video is not None:
            r = self.video.report()
            out["h264"] = {"frames": r["frames"], "dropped": r["dropped"], "p50_ms": r["encode_ms_p50"], "p99_ms": r["encode_ms_p99"]}
        if self.video is None or self.stats.frames:
            times = np.asarray(self.stats.encode_ns or [0], dtype=np.float64) / 1e6
            out["jpeg"] = {"frames": self.stats.frames, "dropped": self.stats.dropped,
                           "p50_ms": round(float(np.median(times)), 3), "p99_ms": round(float(np.percentile(times, 99)), 3)}
        return out

    def report(self) -> dict[str, Any]:
        """The encoder's state as an event for the HUD and the logs."""
        if self.video is not None:
            return {**self.video.report(), "jpeg": self.jpeg_wanted, "video": self.video_wanted}
        s, c = self.stats, self.controller
        times = np.asarray(s.encode_ns or [0], dtype=np.float64) / 1e6
        kbps = (sum(s.sizes) / len(s.sizes) * 8 * c.config.fps / 1e3) if s.sizes else 0.0
        last = c.decisions[-1] if c.decisions else None
        return {
            "type": "encode.stats",
            "codec": "jpeg",
            "mode": self.mode,
            "quality": c.quality,
            "scale": c.scale,
            "target_kbps": c.config.target_bps / 1e3,
            "kbps": round(kbps, 1),
            "encode_ms_p50": round(float(np.median(times)), 3),
            "encode_ms_p99": round(float(np.percentile(times, 99)), 3),
            "frames": s.frames,
            "dropped": s.dropped,
            "last_decision": None if last is None else {"frame": last.frame, "quality": last.quality, "scale": last.scale, "reason": last.reason},
        }
