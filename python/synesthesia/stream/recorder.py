"""Recording the encoded stream without re-encoding (serve process, or any record consumer).

:func:`open_recorder` picks by the file's suffix: ``.mp4`` takes the H.264 records
(:class:`Mp4Recorder`, over the reusable :class:`H264Mp4Writer`), ``.avi`` the JPEG records
(:class:`MjpegRecorder`). Each recorder ignores the other codec's records, so a run that sends
both (video to most viewers, JPEG to one without a decoder) records one clean stream.

AVI with the ``MJPG`` codec is what VLC, mpv, ffmpeg/ffplay, browsers' download previews and the
Windows and macOS players open without asking; the JPEG records go in as they are, untouched.
The file is playable even if the process dies before :meth:`MjpegRecorder.close`: players fall
back to scanning the ``movi`` list when the index and sizes were never patched. The header
carries the first frame's size; if the adaptive controller later changes the scale, each JPEG
still decodes at its own size (players rescale or show it as is).
"""

from __future__ import annotations

import struct
import threading
from pathlib import Path
from types import TracebackType
from fractions import Fraction
from typing import BinaryIO

from synesthesia.errors import StreamConfigError
from synesthesia.stream.records import JpegRecord

__all__ = ["MjpegRecorder", "Mp4Recorder", "H264Mp4Writer", "open_recorder", "RECORD_SUFFIXES"]

#: suffix -> the codec a recording with it holds
RECORD_SUFFIXES = {".avi": "jpeg", ".mp4": "h264"}

_AVIF_HASINDEX = 0x10
_AVIIF_KEYFRAME = 0x10


class MjpegRecorder:
    """``put`` JPEG records (it is a record sink); ``close`` writes the index and sizes."""

    def __init__(self, path: str | Path, fps: float = 25.0) -> None:
        self.path = Path(path)
        self.fps = fps
        self.frames = 0
        self._f: BinaryIO = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._lock = threading.Lock()
        self._index: list[tuple[int, int]] = []
        self._size: tuple[int, int] | None = None
        self._max_frame = 0
        self._movi_at = 0
        self._closed = False

    def put(self, record: JpegRecord) -> None:
        with self._lock:
            if self._closed or record.codec != "jpeg":
                return
            if self._size is None:
                self._size = (record.width, record.height)
                self._write_headers()
            data = bytes(record.jpeg)
            f = self._f
            self._index.append((f.tell() - self._movi_at, len(data)))
            f.write(b"00dc" + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b""))
            self._max_frame = max(self._max_frame, len(data))
            self.frames += 1

    def _write_headers(self) -> None:
        assert self._size is not None
        w, h = self._size
        us = round(1e6 / self.fps)
        avih = struct.pack("<10I16x", us, 0, 0, _AVIF_HASINDEX, 0, 0, 1, 0, w, h)
        rate, scale = round(self.fps * 1000), 1000
        strh = b"vidsMJPG" + struct.pack("<IHHIIIIIIIIhhhh", 0, 0, 0, 0, scale, rate, 0, 0, 0, 0xFFFFFFFF, 0, 0, 0, w, h)
        strf = struct.pack("<IiiHH4sIiiII", 40, w, h, 1, 24, b"MJPG", w * h * 3, 0, 0, 0, 0)
        strl = b"strl" + _chunk(b"strh", strh) + _chunk(b"strf", strf)
        hdrl = b"hdrl" + _chunk(b"avih", avih) + _chunk(b"LIST", strl)
        f = self._f
        f.write(b"RIFF" + struct.pack("<I", 0) + b"AVI ")
        f.write(_chunk(b"LIST", hdrl))
        f.write(b"LIST" + struct.pack("<I", 0))
        self._movi_at = f.tell()
        f.write(b"movi")

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            f = self._f
            if self._size is not None:
                end_movi = f.tell()
                idx = b"".join(struct.pack("<4sIII", b"00dc", _AVIIF_KEYFRAME, off, n) for off, n in self._index)
                f.write(_chunk(b"idx1", idx))
                end = f.tell()
                f.seek(4)
                f.write(struct.pack("<I", end - 8))
                # avih: total frames and the largest chunk; strh: length and buffer size.
                f.seek(12 + 8 + 4 + 8 + 16)
                f.write(struct.pack("<I", self.frames))
                f.seek(12 + 8 + 4 + 8 + 28)
                f.write(struct.pack("<I", self._max_frame))
                strh_at = 12 + 8 + 4 + 8 + 56 + 8 + 4 + 8
                f.seek(strh_at + 32)
                f.write(struct.pack("<II", self.frames, self._max_frame))
                f.seek(self._movi_at - 4)
                f.write(struct.pack("<I", end_movi - self._movi_at))
            f.close()

    def __enter__(self) -> MjpegRecorder:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _chunk(fourcc: bytes, data: bytes) -> bytes:
    return fourcc + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")


class H264Mp4Writer:
    """Mux H.264 Annex-B access units into an MP4 file as they are (no re-encoding).

    ``write(au, key, t_ms)``: the first access unit written must be a key frame carrying SPS
    and PPS (the muxer builds the ``avcC`` box from it; earlier delta frames are dropped and
    counted). ``t_ms`` is the presentation time in milliseconds (None: frame count / fps); times
    must increase. ``close`` writes the index; a file that was never closed is not playable,
    so call it (or use ``with``). Usable on its own, e.g. for offline renders.
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: float = 25.0) -> None:
        import av  # heavy; only recording processes pay for it

        self.path = Path(path)
        self.fps = fps
        self.frames = 0
        self.skipped = 0
        self._av = av
        self._container = av.open(str(self.path), "w", format="mp4")
        self._stream = self._container.add_stream("h264", rate=Fraction(fps).limit_denominator(1001))
        self._stream.width, self._stream.height = width, height
        self._stream.time_base = Fraction(1, 1000)
        self._started = False
        self._last_pts = -1
        self._closed = False

    def write(self, access_unit: bytes | memoryview, key: bool, t_ms: int | None = None) -> bool:
        """Append one access unit; returns False when it was dropped (a delta before the first key)."""
        if self._closed:
            raise ValueError(f"{self.path}: writer is closed")
        if not self._started and not key:
            self.skipped += 1
            return False
        self._started = True
        pts = round(self.frames * 1000 / self.fps) if t_ms is None else int(t_ms)
        pts = max(pts, self._last_pts + 1)
        self._last_pts = pts
        packet = self._av.Packet(bytes(access_unit))
        packet.stream = self._stream
        packet.time_base = Fraction(1, 1000)
        packet.pts = packet.dts = pts
        packet.is_keyframe = key
        self._container.mux(packet)
        self.frames += 1
        return True

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._container.close()

    def __enter__(self) -> H264Mp4Writer:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class Mp4Recorder:
    """``put`` H.264 records (a record sink); JPEG records are ignored. Times come from the
    records' ``encoded`` stamps, so skipped frames keep the clip's real pace. After a gap in the
    stream (a record this reader never saw) nothing is written until the next key frame."""

    def __init__(self, path: str | Path, fps: float = 25.0) -> None:
        self.path = Path(path)
        self.fps = fps
        self._writer: H264Mp4Writer | None = None
        self._lock = threading.Lock()
        self._t0: int | None = None
        self._seq: int | None = None
        self._lost = False
        self._closed = False
        # Created at once so a bad path fails at start, not at the first frame.
        self.path.open("wb").close()

    @property
    def frames(self) -> int:
        return 0 if self._writer is None else self._writer.frames

    def put(self, record: JpegRecord) -> None:
        with self._lock:
            if self._closed or record.codec != "h264":
                return
            if self._seq is not None and record.seq != (self._seq + 1) & 0xFFFFFFFF:
                self._lost = True
            self._seq = record.seq
            if self._lost and not record.key:
                return
            self._lost = False
            if self._writer is None:
                if not record.key:
                    return
                self._writer = H264Mp4Writer(self.path, record.width, record.height, self.fps)
            encoded = record.t.get("encoded")
            t_ms = None
            if encoded is not None:
                self._t0 = encoded if self._t0 is None else self._t0
                t_ms = (encoded - self._t0) // 1_000_000
            self._writer.write(record.jpeg, record.key, t_ms)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._writer is not None:
                self._writer.close()

    def __enter__(self) -> Mp4Recorder:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def open_recorder(path: str | Path, fps: float = 25.0) -> MjpegRecorder | Mp4Recorder:
    """The recorder for ``path``'s suffix (``.mp4``: H.264, ``.avi``: MJPEG)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".mp4":
        return Mp4Recorder(path, fps)
    if suffix == ".avi":
        return MjpegRecorder(path, fps)
    raise StreamConfigError(f"record: {path}: the suffix must be .mp4 (H.264) or .avi (MJPEG)")
