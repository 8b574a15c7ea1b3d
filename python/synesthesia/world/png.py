"""A minimal PNG writer (RGB, 8-bit, Sub filter, zlib) so previews need no imaging library.
Used by the snapshot command, in the calling process."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["encode_png", "write_png"]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(img: npt.NDArray[np.uint8], level: int = 6) -> bytes:
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"img: expected uint8 (H, W, 3), got {img.dtype}{list(img.shape)}")
    h, w, _ = img.shape
    rows = img.reshape(h, w * 3)
    # Sub filter: each byte minus the same channel of the pixel to its left (mod 256); smooth
    # skies become runs of small numbers that deflate well.
    filtered = rows.copy()
    filtered[:, 3:] = rows[:, 3:] - rows[:, :-3]
    raw = np.empty((h, w * 3 + 1), dtype=np.uint8)
    raw[:, 0] = 1
    raw[:, 1:] = filtered
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw.tobytes(), level)) + _chunk(b"IEND", b"")


def write_png(path: str | Path, img: npt.NDArray[np.uint8]) -> None:
    Path(path).write_bytes(encode_png(img))
