"""Offline rendering of a session log to MP4 (H.264 + AAC or Opus, through PyAV). Runs in the
process that calls it (`synesthesia render`, `synesthesia snapshot --session`, bench/render.py).

Frames are drawn by worker threads, each with its own renderer (the Rust renderer releases the
GIL, as does the colour conversion), straight into the encoder's frame buffers; the calling
thread walks the scene through the session in order and feeds the encoder, which runs its own
threads. At the session's own size and fps every frame that carries a live checksum is checked.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from synesthesia import _native
from synesthesia.errors import SessionError
from synesthesia.world.session import AUDIO_RATE, Sample, Session, frame_checksum, samples

__all__ = ["RenderResult", "Progress", "render_session", "render_moment", "soundtrack"]

AUDIO_CODECS = {"aac": ("aac", 48000), "opus": ("libopus", 48000)}


@dataclass
class RenderResult:
    frames: int = 0
    seconds: float = 0.0  # of video
    elapsed_s: float = 0.0
    checked: int = 0
    mismatched: list[int] = field(default_factory=list)  # session frames whose pixels differ
    notes: list[str] = field(default_factory=list)  # what the caller should be told


class Progress:
    """A progress bar with ETA on a terminal; plain lines (every 10 %) otherwise."""

    def __init__(self, total: int, stream: IO[str] | None = None, label: str = "render") -> None:
        self.total = max(1, total)
        self.stream = sys.stderr if stream is None else stream
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.label = label
        self.t0 = time.monotonic()
        self._shown = -1.0 if self.tty else 0.0

    def update(self, done: int) -> None:
        frac = min(1.0, done / self.total)
        elapsed = time.monotonic() - self.t0
        fps = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / fps if fps > 0 else float("nan")
        eta_text = "?" if math.isnan(eta) else f"{eta:.0f}s"
        if self.tty:
            if done != self.total and elapsed - self._shown < 0.2:
                return
            self._shown = elapsed
            bar = "#" * int(frac * 30)
            self.stream.write(f"\r{self.label} [{bar:<30}] {frac * 100:5.1f}% {done}/{self.total} "
                              f"{fps:.1f} fps ETA {eta_text}  ")
            if done >= self.total:
                self.stream.write("\n")
        else:
            step = int(frac * 10)
            if step <= self._shown and done != self.total:
                return
            if done == self.total and self._shown >= 10:
                return
            self._shown = step if done != self.total else 10
            self.stream.write(f"{self.label}: {frac * 100:.0f}% ({done}/{self.total} frames, {fps:.1f} fps, "
                              f"ETA {eta_text})\n")
        self.stream.flush()


def soundtrack(session: Session, start_s: float, end_s: float) -> tuple[npt.NDArray[np.float32], list[str]]:
    """The captured audio laid on the output timeline (16 kHz mono) from ``start_s`` to ``end_s``,
    silence where there is none; plus notes about audio files that are missing or unreadable."""
    import av

    notes: list[str] = []
    length = max(0, int(round((end_s - start_s) * AUDIO_RATE)))
    out = np.zeros(length, dtype=np.float32)
    ticks = session.ticks()
    for seg in session.segments:
        if seg.audio_start_ns is None or seg.first_frame >= len(ticks):
            continue  # this segment heard nothing
        if not seg.audio.exists():
            notes.append(f"audio {seg.audio.name} is missing: that stretch is silent")
            continue
        try:
            audio, rate = _read_audio(seg.audio)
        except (av.error.FFmpegError, IndexError) as e:
            notes.append(f"audio {seg.audio.name} is unreadable ({e}): that stretch is silent")
            continue
        if rate != AUDIO_RATE:
            notes.append(f"audio {seg.audio.name} is not {AUDIO_RATE} Hz audio (reads as {rate} Hz): that stretch is silent")
            continue
        # The segment's first frame sits at its tick; each mark places the samples after it.
        base = ticks[seg.first_frame] / session.header.fps
        nxt = seg.index + 1
        seg_end = (ticks[session.segments[nxt].first_frame] / session.header.fps
                   if nxt < len(session.segments) and session.segments[nxt].first_frame < len(ticks)
                   else (ticks[-1] + 1) / session.header.fps)
        marks = seg.audio_marks + [(0, len(audio))]
        for (ns, n), (_, n_next) in zip(marks, marks[1:]):
            t = base + ns / 1e9
            piece = audio[n : max(n, min(n_next, n + int((seg_end - t) * AUDIO_RATE)))]
            at = int(round((t - start_s) * AUDIO_RATE))
            lo, hi = max(0, at), min(length, at + len(piece))
            if hi > lo:
                out[lo:hi] = piece[lo - at : hi - at]
    return out, notes


def _read_audio(path: Path) -> tuple[npt.NDArray[np.float32], int]:
    """Decode a FLAC with FFmpeg's demuxer, which reads to where the data ends: the file of a
    writer that was killed has no final length in its header, and libsndfile refuses it."""
    import av

    blocks = []
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        rate = int(stream.rate)
        to_float = av.AudioResampler(format="flt", layout="mono", rate=rate)
        for frame in c.decode(stream):
            for out in to_float.resample(frame):
                blocks.append(out.to_ndarray().reshape(-1))
    return (np.concatenate(blocks).astype(np.float32) if blocks else np.zeros(0, np.float32)), rate


class _Drawer:
    """Per-thread renderer drawing samples into encoder frames (GIL released while it draws)."""

    def __init__(self, seed: int, size: tuple[int, int], check: Callable[[Sample], bool]) -> None:
        self.seed, self.size, self.check = seed, size, check
        self.local = threading.local()

    def __call__(self, smp: Sample) -> tuple[Any, int | None]:
        import av

        r = getattr(self.local, "renderer", None)
        if r is None:
            r = self.local.renderer = _native.WorldRenderer(self.seed)
        w, h = self.size
        frame = av.VideoFrame(w, h, "rgb24")
        plane = frame.planes[0]
        rows = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(h, plane.line_size)
        view = rows[:, : w * 3].reshape(h, w, 3)
        r.render_into(view, smp.state, smp.t, smp.pulse)
        crc = frame_checksum(view) if self.check(smp) else None
        return frame.reformat(format="yuv420p"), crc


def render_session(
    session: Session,
    out: str | Path,
    size: tuple[int, int] | None = None,
    fps: float | None = None,
    start_s: float = 0.0,
    end_s: float | None = None,
    crf: int | None = 20,
    bitrate: int | None = None,
    preset: str = "superfast",
    audio_codec: str = "aac",
    workers: int = 2,
    progress: Progress | Callable[[int], Progress] | None = None,
) -> RenderResult:
    """Render ``session`` to ``out`` (MP4). ``bitrate`` (bit/s) overrides ``crf``."""
    import av

    h = session.header
    h.check_replayable()
    width, height = size or (h.width, h.height)
    if width % 2 or height % 2:
        raise SessionError(f"H.264 needs even sides, got {width}x{height}", "size")
    out_fps = h.fps if fps is None else float(fps)
    if not 1 <= out_fps <= 240:
        raise SessionError(f"must be 1..240, got {out_fps:g}", "fps")
    if audio_codec not in AUDIO_CODECS:
        raise SessionError(f"unknown {audio_codec!r}; expected one of {', '.join(AUDIO_CODECS)}", "audio_codec")
    total = session.duration_s()
    end = total if end_s is None else min(end_s, total)
    if not 0 <= start_s < end:
        raise SessionError(f"nothing to render between {start_s:g} s and {end:g} s (session: {total:.2f} s)", "from")
    native = (width, height) == (h.width, h.height) and abs(out_fps - h.fps) < 1e-9
    ticks = session.ticks()

    def check(smp: Sample) -> bool:  # the first output frame showing a checksummed live frame
        return native and smp.source in session.checks and ticks[smp.source] == smp.index

    first = int(math.ceil(start_s * out_fps - 1e-9))
    count = int(math.ceil(end * out_fps - 1e-9)) - first
    bar = progress(count) if callable(progress) and not isinstance(progress, Progress) else progress
    result = RenderResult()
    t0 = time.monotonic()
    rate = _fraction(out_fps)
    container = av.open(str(out), "w", format="mp4")
    try:
        vs = container.add_stream("libx264", rate=rate)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        opts: dict[str, str] = {"preset": preset}
        if bitrate is not None:
            vs.bit_rate = int(bitrate)
        else:
            opts["crf"] = str(crf if crf is not None else 20)
        vs.options = dict(opts)
        vs.codec_context.thread_count = max(1, workers)
        codec_name, audio_rate = AUDIO_CODECS[audio_codec]
        aud = container.add_stream(codec_name, rate=audio_rate, layout="mono")
        drawer = _Drawer(h.seed, (width, height), check)
        pending: deque[tuple[Sample, Future[tuple[Any, int | None]]]] = deque()

        def drain(keep: int) -> None:
            while len(pending) > keep:
                smp, fut = pending.popleft()
                frame, crc = fut.result()
                if crc is not None:
                    result.checked += 1
                    if crc != session.checks[smp.source]:
                        result.mismatched.append(smp.source)
                frame.pts = smp.index - first
                frame.time_base = vs.codec_context.time_base or _inverse(rate)
                container.mux(vs.encode(frame))
                result.frames += 1
                if bar is not None:
                    bar.update(result.frames)

        with ThreadPoolExecutor(max(1, workers), thread_name_prefix="render") as pool:
            for smp in samples(session, out_fps, start_s, end):
                pending.append((smp, pool.submit(drawer, smp)))
                drain(2 * max(1, workers))
            drain(0)
        container.mux(vs.encode(None))
        audio, notes = soundtrack(session, first / out_fps, (first + count) / out_fps)
        result.notes += notes
        if not any(s.audio_start_ns is not None for s in session.segments):
            result.notes.append("the session has no captured audio: the soundtrack is silent")
        _encode_audio(container, aud, audio, audio_rate)
    finally:
        container.close()
    result.seconds = result.frames / out_fps
    result.elapsed_s = time.monotonic() - t0
    return result


def _encode_audio(container: Any, stream: Any, audio: npt.NDArray[np.float32], rate: int) -> None:
    import av
    import soxr  # type: ignore[import-untyped]

    x = soxr.resample(audio, AUDIO_RATE, rate).astype(np.float32) if len(audio) else audio
    n = stream.codec_context.frame_size or 1024
    for i in range(0, len(x), n):
        chunk = x[i : i + n]
        if len(chunk) < n:
            chunk = np.concatenate([chunk, np.zeros(n - len(chunk), dtype=np.float32)])
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = i
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def render_moment(session: Session, at_s: float, size: tuple[int, int] | None = None) -> npt.NDArray[np.uint8]:
    """The picture at ``at_s`` seconds into the session (the scene eased to that moment)."""
    h = session.header
    h.check_replayable()
    total = session.duration_s()
    if not 0 <= at_s < total:
        raise SessionError(f"{at_s:g} s is outside the session (0 to {total:.2f} s)", "at")
    # One output frame at a rate where at_s falls on a frame: ease the scene to that moment.
    fps = 1000.0
    smp = next(samples(session, fps, at_s, at_s + 0.5 / fps), None)
    if smp is None:
        raise SessionError(f"no frame at {at_s:g} s", "at")
    w, hh = size or (h.width, h.height)
    out = np.empty((hh, w, 3), dtype=np.uint8)
    _native.WorldRenderer(h.seed).render_into(out, smp.state, smp.t, smp.pulse)
    return out


def _fraction(fps: float) -> Any:
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1001)


def _inverse(rate: Any) -> Any:
    return 1 / rate
