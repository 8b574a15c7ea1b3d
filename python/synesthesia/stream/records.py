"""What travels between world -> encode -> serve: frame metadata and encoded records (any process).

A :class:`JpegRecord` is one encoded picture (a JPEG file, or an H.264 access unit when its
``codec`` is ``"h264"``; ``key`` marks pictures a decoder can start at, ``seq`` numbers the
pictures of one codec's stream so a gap is seen) with the frame number it came from, the trace ids it
answers to and the monotonic timestamps (``time.monotonic_ns``, CLOCK_MONOTONIC, so comparable
across processes on one host) of every hop it has passed. :meth:`JpegRecord.pack` gives the
byte layout written into a byte-ring slot; :meth:`JpegRecord.unpack` reads it back, copying
nothing but the small header when given a memoryview.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from synesthesia.errors import RecordFormatError

__all__ = ["HOPS", "MODES", "CODECS", "FrameMeta", "JpegRecord"]

#: Timestamps a record can carry, in pipeline order. ``encode_start`` and ``encoded`` are set
#: by the encoder; the earlier ones are copied from the frame's metadata when present.
HOPS = ("captured", "speech_end", "transcript", "intent", "applied", "rendered", "encode_start", "encoded")
#: Encoder modes, by wire code.
MODES = ("nano", "preview", "full")
#: Codecs, by wire code.
CODECS = ("jpeg", "h264")

_MAGIC = b"SJPG"
_VERSION = 2
# magic, version, header length, frame, width, height, quality, scale, mode, trace count,
# hop-present bitmask, payload length, codec, flags (bit 0: key), stream sequence; then one u64
# per hop and one u64 per trace id.
_HEAD = struct.Struct("<4sHHQHHBBBBHIBBI")
_MAX_TRACES = 16


@dataclass(frozen=True, slots=True)
class FrameMeta:
    """What the world says about a frame it wrote: its number, traces and hop timestamps."""

    frame: int
    trace_ids: tuple[int, ...] = ()
    t: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class JpegRecord:
    """One complete encoded picture (a JPEG file or an H.264 access unit) and where it came from."""

    frame: int
    jpeg: bytes | memoryview
    width: int
    height: int
    mode: str
    quality: int
    scale: int
    trace_ids: tuple[int, ...] = ()
    t: dict[str, int] = field(default_factory=dict)
    codec: str = "jpeg"
    key: bool = True
    seq: int = 0

    def pack(self) -> bytes:
        return b"".join((self._header(), self.jpeg))

    def pack_into(self, buffer: bytearray | memoryview) -> int:
        """Write the packed record into ``buffer`` (a ring slot); returns the bytes used."""
        head = self._header()
        n = len(head) + len(self.jpeg)
        view = memoryview(buffer).cast("B")
        if len(view) < n:
            raise RecordFormatError(f"buffer: {len(view)} bytes, the record needs {n}")
        view[: len(head)] = head
        view[len(head) : n] = self.jpeg
        return n

    def _header(self) -> bytes:
        if self.codec not in CODECS:
            raise RecordFormatError(f"codec: expected one of {CODECS}, got {self.codec!r}")
        if self.mode not in MODES:
            raise RecordFormatError(f"mode: expected one of {MODES}, got {self.mode!r}")
        if len(self.trace_ids) > _MAX_TRACES:
            raise RecordFormatError(f"trace_ids: at most {_MAX_TRACES}, got {len(self.trace_ids)}")
        unknown = set(self.t) - set(HOPS)
        if unknown:
            raise RecordFormatError(f"t: unknown hops {sorted(unknown)}; known: {HOPS}")
        mask = 0
        stamps = []
        for i, hop in enumerate(HOPS):
            if hop in self.t:
                mask |= 1 << i
                stamps.append(self.t[hop])
        tail = struct.pack(f"<{len(stamps)}Q{len(self.trace_ids)}Q", *stamps, *self.trace_ids)
        head = _HEAD.pack(
            _MAGIC, _VERSION, _HEAD.size + len(tail), self.frame, self.width, self.height, self.quality,
            self.scale, MODES.index(self.mode), len(self.trace_ids), mask, len(self.jpeg),
            CODECS.index(self.codec), int(self.key), self.seq & 0xFFFFFFFF,
        )
        return head + tail

    @classmethod
    def unpack(cls, data: bytes | bytearray | memoryview) -> JpegRecord:
        """Parse a packed record; the JPEG is a view into ``data`` when ``data`` is a memoryview."""
        view = memoryview(data)
        if len(view) < _HEAD.size:
            raise RecordFormatError(f"record too short: {len(view)} bytes, header needs {_HEAD.size}")
        magic, version, head_len, frame, w, h, q, scale, mode, ntrace, mask, n, codec, flags, seq = _HEAD.unpack_from(view)
        if magic != _MAGIC:
            raise RecordFormatError(f"bad magic {bytes(magic)!r}, expected {_MAGIC!r}")
        if version != _VERSION:
            raise RecordFormatError(f"record layout version {version}, this build reads {_VERSION}")
        nstamps = bin(mask).count("1")
        if head_len != _HEAD.size + 8 * (nstamps + ntrace) or mode >= len(MODES) or codec >= len(CODECS) or len(view) < head_len + n:
            raise RecordFormatError(f"inconsistent header (header {head_len} B, payload {n} B, buffer {len(view)} B)")
        values = struct.unpack_from(f"<{nstamps + ntrace}Q", view, _HEAD.size)
        hops = [hop for i, hop in enumerate(HOPS) if mask >> i & 1]
        payload = view[head_len : head_len + n]
        return cls(
            frame=frame, jpeg=payload if isinstance(data, memoryview) else bytes(payload), width=w, height=h,
            mode=MODES[mode], quality=q, scale=scale, trace_ids=tuple(values[nstamps:]),
            t=dict(zip(hops, values[:nstamps])), codec=CODECS[codec], key=bool(flags & 1), seq=seq,
        )

    def wire_meta(self, **extra: Any) -> dict[str, Any]:
        """The JSON object sent as a text message just before this JPEG on the WebSocket."""
        meta: dict[str, Any] = {
            "type": "frame", "frame": self.frame, "bytes": len(self.jpeg), "width": self.width,
            "height": self.height, "mode": self.mode, "quality": self.quality, "scale": self.scale,
            "trace": [str(t) for t in self.trace_ids], "t": dict(self.t),
            "codec": self.codec, "key": self.key, "seq": self.seq,
        }
        meta.update(extra)
        return meta
