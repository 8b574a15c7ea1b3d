"""Recording the encoded stream to an MJPEG AVI file (serve process, or any record consumer).

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
from typing import BinaryIO

from synesthesia.stream.records import JpegRecord

__all__ = ["MjpegRecorder"]

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
            if self._closed:
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
