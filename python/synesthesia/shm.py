"""Shared-memory rings: the data plane between stage processes (frames, JPEG records, audio).

Used in every process: the supervisor creates rings and unlinks them, stages attach by name
(one writer, any number of readers). The protocol (seqlock slots, futex wait/wake, writer
claim) lives in the Rust core; this facade maps the segment with
:mod:`multiprocessing.shared_memory` and hands out numpy views of slots, never copies.

Writer::

    ring = FrameRing.create("syn-run1-frames", (704, 1280, 3), np.uint8, slots=8)
    with ring.write() as slot:          # opens the next slot (marks the one it replaces torn)
        slot.array[...] = frame         # fill in place; slot.meta.trace_ids = (tid,)
                                        # published, readers woken, on a clean exit
Reader::

    ring = FrameRing.attach("syn-run1-frames")
    rec = ring.read(timeout=0.1)        # next unread record, or None after 0.1 s
    rec = ring.read_latest(timeout=0.1) # newest record, skipping (and counting) older ones
    if rec is not None:
        use(rec.array)                  # read-only numpy view of the slot
        ok = rec.valid()                # False if the writer has started overwriting it

Reads that time out return ``None``; ``timeout=None`` waits forever, ``timeout=0`` polls.
``rec.missed`` counts the records this reader skipped since its previous one. A view stays
mapped as long as it is referenced, but its contents are only trustworthy while ``valid()``:
copy what must outlive the next ``slots - 1`` writes.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
from dataclasses import dataclass
from multiprocessing import resource_tracker, shared_memory
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from synesthesia import _native
from synesthesia.errors import RingArgumentError, RingError, RingLayoutError

try:  # CPython's own binding of shm_unlink(3); private but present on every POSIX build
    import _posixshmem  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - Windows has no named POSIX segments
    _posixshmem = None

__all__ = [
    "FrameRing",
    "ByteRing",
    "SlotMeta",
    "RecordMeta",
    "FrameRecord",
    "ByteRecord",
    "WriteSlot",
    "cleanup",
    "segments",
    "monotonic_ns",
    "MAX_TRACE_IDS",
]

MAX_TRACE_IDS = 4
_SHM_DIR = Path("/dev/shm")
_MAGIC = b"SYNRING\0"

monotonic_ns = _native.monotonic_ns


@dataclass(slots=True)
class SlotMeta:
    """What a writer attaches to a record. ``frame`` defaults to the record's sequence number;
    ``trace_ids`` holds up to four non-zero 64-bit trace ids the record answers to;
    ``t_source_ns`` is when the data was born upstream (``monotonic_ns()`` clock)."""

    frame: int | None = None
    trace_ids: tuple[int, ...] = ()
    t_source_ns: int = 0
    flags: int = 0

    def _trace_array(self) -> list[int]:
        ids = list(self.trace_ids)
        if len(ids) > MAX_TRACE_IDS:
            raise RingArgumentError(f"trace_ids: at most {MAX_TRACE_IDS} ids, got {len(ids)}", "trace_ids")
        return ids + [0] * (MAX_TRACE_IDS - len(ids))


@dataclass(frozen=True, slots=True)
class RecordMeta:
    """What a reader finds in a slot header. Timestamps are ``CLOCK_MONOTONIC`` ns:
    ``t_write_ns`` when the writer opened the slot, ``t_publish_ns`` when it published."""

    frame: int
    size: int
    trace_ids: tuple[int, ...]
    t_source_ns: int
    t_write_ns: int
    t_publish_ns: int
    flags: int


# (seq, offset, missed, len, t_write_ns, t_publish_ns, t_source_ns, frame, flags, trace_ids)
_Raw = tuple[int, int, int, int, int, int, int, int, int, list[int]]


def _meta(raw: _Raw) -> RecordMeta:
    _, _, _, size, t_write, t_publish, t_source, frame, flags, ids = raw
    return RecordMeta(frame, size, tuple(i for i in ids if i), t_source, t_write, t_publish, flags)


class _Record:
    __slots__ = ("_ring", "_raw", "seq", "missed")

    def __init__(self, ring: _native.Ring, raw: _Raw) -> None:
        self._ring = ring
        self._raw = raw
        self.seq: int = raw[0]
        self.missed: int = raw[2]

    @property
    def meta(self) -> RecordMeta:
        return _meta(self._raw)

    def valid(self) -> bool:
        """True while the writer has not started replacing this record. Check it after using
        the payload: if it is still True, everything read before the call was whole."""
        return self._ring.valid(self.seq)


class FrameRecord(_Record):
    """A frame handed to a reader: ``array`` is a read-only view of the slot (no copy)."""

    __slots__ = ("array",)

    def __init__(self, ring: _native.Ring, raw: _Raw, array: npt.NDArray[Any]) -> None:
        super().__init__(ring, raw)
        self.array = array


class ByteRecord(_Record):
    """A variable-size record: ``data`` is a read-only memoryview of its bytes (no copy),
    ``array`` the same bytes as a uint8 array; ``bytes(record)`` copies."""

    __slots__ = ("data",)

    def __init__(self, ring: _native.Ring, raw: _Raw, data: memoryview) -> None:
        super().__init__(ring, raw)
        self.data = data

    @property
    def array(self) -> npt.NDArray[np.uint8]:
        return np.frombuffer(self.data, np.uint8)

    def __len__(self) -> int:
        return len(self.data)

    def __bytes__(self) -> bytes:
        return bytes(self.data)


A = TypeVar("A")


class WriteSlot(Generic[A]):
    """The open record inside ``with ring.write() as slot``: fill ``array`` in place and set
    ``meta``; for a :class:`ByteRing` also set ``size`` (bytes used, default the whole slot).
    Once the block exits the slot belongs to the readers and ``array`` is no longer available
    (which also lets the ring close while the ``slot`` name is still in scope)."""

    __slots__ = ("seq", "size", "meta", "_array")

    def __init__(self, seq: int, array: A, size: int) -> None:
        self.seq = seq
        self.size = size
        self.meta = SlotMeta()
        self._array: A | None = array

    @property
    def array(self) -> A:
        if self._array is None:
            raise RingError(f"record {self.seq} is already published (or abandoned); open a new one with write()")
        return self._array


class _Writing(Generic[A]):
    __slots__ = ("_ring", "_slot")

    def __init__(self, ring: _Ring, slot: WriteSlot[A]) -> None:
        self._ring = ring
        self._slot = slot

    def __enter__(self) -> WriteSlot[A]:
        return self._slot

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        s = self._slot
        s._array = None
        # On an exception the record is not published: readers never see a half-filled slot,
        # and the next write reuses its sequence number.
        if et is None:
            m = s.meta
            self._ring._native_ring().publish(
                s.size, s.seq if m.frame is None else m.frame, m.flags, m.t_source_ns, m._trace_array()
            )


class _Segment(shared_memory.SharedMemory):
    """A SharedMemory whose finaliser tolerates views that outlive it: the mapping then goes
    away with the last view instead of raising from ``__del__``."""

    def __del__(self) -> None:
        try:
            self.close()
        except (OSError, BufferError):
            pass


# Names this process created and has not unlinked: removed at a clean exit.
_created: dict[str, int] = {}
_created_lock = threading.Lock()


def _unlink_name(name: str) -> bool:
    if _posixshmem is None:  # pragma: no cover
        raise RingError("named shared memory needs a POSIX system")
    try:
        _posixshmem.shm_unlink("/" + name.lstrip("/"))
        return True
    except FileNotFoundError:
        return False


@atexit.register
def _unlink_created() -> None:
    with _created_lock:
        for name, pid in list(_created.items()):
            if pid == os.getpid():
                _unlink_name(name)
        _created.clear()


def _untrack(shm: shared_memory.SharedMemory) -> None:
    # Python < 3.13 registers every SharedMemory, attached or created, with the resource
    # tracker, which unlinks it when *this* process exits: fatal for a ring the supervisor
    # shares with restarted stages. Ownership is explicit here instead (creator unlinks, atexit
    # and `cleanup` catch the rest).
    resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]


def _open(name: str, size: int | None) -> shared_memory.SharedMemory:
    if not name or "/" in name.strip("/") or len(name) > 200:
        raise RingArgumentError(f"name: expected a short name without '/', got {name!r}", "name")
    if size is None:
        try:
            shm = _Segment(name=name)
        except FileNotFoundError:
            raise RingError(f"no ring named {name!r} (was it created, or already unlinked?)") from None
    else:
        shm = _Segment(name=name, create=True, size=size)
        with _created_lock:
            _created[name] = os.getpid()
    _untrack(shm)
    return shm


class _Ring:
    _kind = ""

    def __init__(self, name: str, shm: shared_memory.SharedMemory, native: _native.Ring, owner: bool) -> None:
        self.name = name
        self._shm: shared_memory.SharedMemory | None = shm
        self._native: _native.Ring | None = native
        self._owner = owner
        self.slots = native.slots
        self.capacity = native.capacity
        self._offsets = [native.payload_offset(i) for i in range(self.slots)]

    @classmethod
    def _create(cls, name: str, slots: int, capacity: int, descriptor: bytes) -> tuple[shared_memory.SharedMemory, _native.Ring]:
        if isinstance(slots, bool) or not isinstance(slots, int) or not 1 <= slots <= 1 << 20:
            raise RingArgumentError(f"slots: expected an int in 1..{1 << 20}, got {slots!r}", "slots")
        shm = _open(name, _native.Ring.segment_size(slots, capacity))
        try:
            return shm, _native.Ring.create(shm.buf, cls._kind, slots, capacity, descriptor)
        except BaseException:
            shm.close()
            _unlink_name(name)
            with _created_lock:
                _created.pop(name, None)
            raise

    @classmethod
    def _attach(cls, name: str, slots: int | None, capacity: int | None) -> tuple[shared_memory.SharedMemory, _native.Ring]:
        shm = _open(name, None)
        try:
            return shm, _native.Ring.attach(shm.buf, cls._kind, slots, capacity)
        except BaseException:
            shm.close()
            raise

    def _buf(self) -> memoryview:
        buf = None if self._shm is None else self._shm.buf
        if buf is None:
            raise RingError(f"ring {self.name!r} is closed")
        return buf

    def _native_ring(self) -> _native.Ring:
        if self._native is None:
            raise RingError(f"ring {self.name!r} is closed")
        return self._native

    @property
    def head(self) -> int:
        """Records published so far (the next record's sequence number)."""
        return self._native_ring().head

    @property
    def writer_pid(self) -> int:
        """The process holding the writer role (0: none)."""
        return self._native_ring().writer_pid

    @property
    def closed(self) -> bool:
        return self._native is None

    def set_wait_policy(self, spin_us: float = 20.0, anticipate_us: float = 300.0) -> None:
        """Tune how this handle's reads wait: spin ``spin_us`` before sleeping in the kernel,
        and, when the writer publishes at a steady rate, wake ``anticipate_us`` before its next
        expected publish and spin across it (0 turns either off). Waking an idle vCPU costs
        tens of microseconds; these bounded spins trade a little CPU for that latency and
        stop as soon as the writer goes quiet."""
        self._native_ring().set_wait_policy(spin_us, anticipate_us)

    def seek(self, seq: int) -> None:
        """Move this handle's read cursor: ``seek(0)`` replays what is still in the ring,
        ``seek(ring.head)`` skips to the present (where a new handle starts)."""
        self._native_ring().seek(seq)

    def release_writer(self) -> None:
        """Give up the writer role so another process may write (closing does this too)."""
        self._native_ring().release_writer()

    def wake_readers(self) -> None:
        """Wake every reader blocked on this ring (in any process); they re-check and go back
        to waiting unless their timeout has passed."""
        self._native_ring().wake_all()

    def _drop_views(self) -> None:
        pass

    def close(self) -> None:
        """Unmap the ring from this process (idempotent). Raises :class:`RingError` if arrays or
        records from it are still referenced; the ring then stays open."""
        if self._native is None or self._shm is None:
            return
        native, shm = self._native, self._shm
        cursor = native.cursor
        native.release_writer()
        native.close()
        self._drop_views()
        try:
            shm.close()
        except BufferError:
            # A numpy view or record still holds the mapping. SharedMemory.close() has already
            # dropped its memoryview (CPython sets `_buf = None` before unmapping), so give it a
            # fresh one and put the handle back: the ring stays usable and close() can be retried.
            shm._buf = memoryview(shm._mmap)  # type: ignore[attr-defined]
            self._native = _native.Ring.attach(shm.buf, self._kind)
            self._native.seek(cursor)
            raise RingError(
                f"ring {self.name!r}: arrays or records from it are still referenced; drop them before close()"
            ) from None
        self._native = None
        self._shm = None

    def unlink(self) -> None:
        """Remove the ring's name from the system (the creator's job; idempotent). Processes
        that have it mapped keep working; new attaches fail."""
        if not self._owner:
            raise RingError(f"ring {self.name!r}: only the process that created it may unlink it")
        _unlink_name(self.name)
        with _created_lock:
            _created.pop(self.name, None)

    def __enter__(self: R) -> R:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        try:
            self.close()
        finally:
            if self._owner:
                self.unlink()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"head={self.head}"
        return f"{type(self).__name__}({self.name!r}, slots={self.slots}, capacity={self.capacity}, {state})"


R = TypeVar("R", bound=_Ring)


class FrameRing(_Ring):
    """Fixed-shape numpy frames, written in place. See the module docstring."""

    _kind = "frame"

    def __init__(self, name: str, shm: shared_memory.SharedMemory, native: _native.Ring, owner: bool) -> None:
        super().__init__(name, shm, native, owner)
        try:
            desc = json.loads(native.descriptor)
            self.shape: tuple[int, ...] = tuple(int(n) for n in desc["shape"])
            self.dtype: np.dtype[Any] = np.dtype(desc["dtype"])
        except (ValueError, KeyError, TypeError) as e:
            raise RingLayoutError(f"ring {name!r}: unreadable frame descriptor ({e})") from None
        if self.dtype.itemsize * int(np.prod(self.shape)) != self.capacity:
            raise RingLayoutError(f"ring {name!r}: descriptor {self.shape} {self.dtype} does not fill its {self.capacity}-byte slots")
        self._read_views: list[npt.NDArray[Any]] | None = None
        self._write_views: list[npt.NDArray[Any]] | None = None

    @classmethod
    def create(cls, name: str, shape: tuple[int, ...] | int, dtype: npt.DTypeLike, slots: int) -> FrameRing:
        """Create a ring of ``slots`` frames of ``shape`` and ``dtype``. The calling process
        owns it: it must :meth:`unlink` it (done at a clean exit if forgotten). A name that is
        already taken raises ``FileExistsError``: :func:`cleanup` a crashed run's prefix first."""
        shape_t = (shape,) if isinstance(shape, int) else tuple(shape)
        if not shape_t or any(not isinstance(n, (int, np.integer)) or n <= 0 for n in shape_t):
            raise RingArgumentError(f"shape: expected positive ints, got {shape!r}", "shape")
        dt = np.dtype(dtype)
        if dt.hasobject or dt.itemsize == 0:
            raise RingArgumentError(f"dtype: {dt} cannot live in shared memory", "dtype")
        capacity = dt.itemsize * int(np.prod(shape_t))
        desc = json.dumps({"shape": [int(n) for n in shape_t], "dtype": dt.str}).encode()
        shm, native = cls._create(name, slots, capacity, desc)
        return cls(name, shm, native, owner=True)

    @classmethod
    def attach(
        cls,
        name: str,
        *,
        shape: tuple[int, ...] | None = None,
        dtype: npt.DTypeLike | None = None,
        slots: int | None = None,
    ) -> FrameRing:
        """Attach to an existing frame ring. ``shape``, ``dtype`` and ``slots``, when given,
        must match the ring's or :class:`RingLayoutError` says what differs."""
        shm, native = cls._attach(name, slots, None)
        ring = cls(name, shm, native, owner=False)
        problems = []
        if shape is not None and tuple(shape) != ring.shape:
            problems.append(f"shape is {ring.shape}, expected {tuple(shape)}")
        if dtype is not None and np.dtype(dtype) != ring.dtype:
            problems.append(f"dtype is {ring.dtype}, expected {np.dtype(dtype)}")
        if problems:
            ring.close()
            raise RingLayoutError(f"ring {name!r}: " + "; ".join(problems))
        return ring

    def _views(self, writable: bool) -> list[npt.NDArray[Any]]:
        views = self._write_views if writable else self._read_views
        if views is None:
            buf = self._buf()
            views = []
            count = int(np.prod(self.shape))
            for off in self._offsets:
                # frombuffer (unlike ndarray(buffer=...)) keeps a buffer export alive for as long
                # as the view lives, so the mapping cannot be unmapped under it.
                v: npt.NDArray[Any] = np.frombuffer(buf, self.dtype, count, off).reshape(self.shape)
                v.flags.writeable = writable
                views.append(v)
            if writable:
                self._write_views = views
            else:
                self._read_views = views
        return views

    def _drop_views(self) -> None:
        self._read_views = self._write_views = None

    def write(self) -> _Writing[npt.NDArray[Any]]:
        """Open the next slot for writing in place; publishes when the ``with`` block exits
        cleanly. The first write takes the writer role (:class:`RingBusyError` if another live
        process holds it)."""
        seq, _ = self._native_ring().begin_write()
        views = self._views(True)
        return _Writing(self, WriteSlot(seq, views[seq % self.slots], self.capacity))

    def _record(self, native: _native.Ring, raw: _Raw | None) -> FrameRecord | None:
        if raw is None:
            return None
        views = self._read_views or self._views(False)
        return FrameRecord(native, raw, views[raw[0] % self.slots])

    def read(self, timeout: float | None = None) -> FrameRecord | None:
        """The next unread frame (oldest first, skipping overwritten ones), waiting up to
        ``timeout`` seconds; ``None`` if none came."""
        native = self._native_ring()
        return self._record(native, native.next(timeout))

    def read_latest(self, timeout: float | None = None) -> FrameRecord | None:
        """The newest frame if it is newer than the last one this handle returned, waiting up to
        ``timeout`` seconds; ``None`` if none came."""
        native = self._native_ring()
        return self._record(native, native.latest(timeout))


class ByteRing(_Ring):
    """Variable-size records of up to ``record_size`` bytes (JPEG frames, audio chunks)."""

    _kind = "bytes"

    def __init__(self, name: str, shm: shared_memory.SharedMemory, native: _native.Ring, owner: bool) -> None:
        super().__init__(name, shm, native, owner)
        self.record_size = self.capacity
        self._write_views: list[npt.NDArray[np.uint8]] | None = None

    @classmethod
    def create(cls, name: str, record_size: int, slots: int) -> ByteRing:
        """Create a ring of ``slots`` records of at most ``record_size`` bytes each."""
        if isinstance(record_size, bool) or not isinstance(record_size, int) or record_size <= 0:
            raise RingArgumentError(f"record_size: expected a positive int, got {record_size!r}", "record_size")
        shm, native = cls._create(name, slots, record_size, b"")
        return cls(name, shm, native, owner=True)

    @classmethod
    def attach(cls, name: str, *, record_size: int | None = None, slots: int | None = None) -> ByteRing:
        """Attach to an existing byte ring; ``record_size`` and ``slots`` must match if given."""
        shm, native = cls._attach(name, slots, record_size)
        return cls(name, shm, native, owner=False)

    def _drop_views(self) -> None:
        self._write_views = None

    def write(self, size: int | None = None) -> _Writing[npt.NDArray[np.uint8]]:
        """Open the next slot as a writable uint8 array of ``record_size`` bytes; set
        ``slot.size`` (or pass ``size``) to the bytes used. Publishes on a clean exit."""
        if size is not None and not 0 <= size <= self.capacity:
            raise RingArgumentError(f"size: record is {size} bytes, slot size is {self.capacity}", "size")
        seq, _ = self._native_ring().begin_write()
        if self._write_views is None:
            buf = self._buf()
            self._write_views = [np.frombuffer(buf, np.uint8, self.capacity, o) for o in self._offsets]
        return _Writing(self, WriteSlot(seq, self._write_views[seq % self.slots], self.capacity if size is None else size))

    def put(self, data: Any, meta: SlotMeta | None = None) -> int:
        """Copy ``data`` (any contiguous bytes-like object) into the next record and publish it
        in one call; returns its sequence number."""
        m = meta or SlotMeta()
        seq, _ = self._native_ring().push(data, m.frame, m.flags, m.t_source_ns, m._trace_array())
        return seq

    def _record(self, native: _native.Ring, raw: _Raw | None) -> ByteRecord | None:
        if raw is None:
            return None
        off = raw[1]
        return ByteRecord(native, raw, self._buf()[off : off + raw[3]].toreadonly())

    def read(self, timeout: float | None = None) -> ByteRecord | None:
        """The next unread record, waiting up to ``timeout`` seconds; ``None`` if none came."""
        native = self._native_ring()
        return self._record(native, native.next(timeout))

    def read_latest(self, timeout: float | None = None) -> ByteRecord | None:
        """The newest record if newer than the last one returned; ``None`` on timeout."""
        native = self._native_ring()
        return self._record(native, native.latest(timeout))


def segments(prefix: str) -> list[str]:
    """Names of the shared-memory segments in /dev/shm that start with ``prefix``."""
    if not _SHM_DIR.is_dir():
        return []
    return sorted(p.name for p in _SHM_DIR.iterdir() if p.name.startswith(prefix))


def cleanup(prefix: str, *, rings_only: bool = True) -> list[str]:
    """Unlink the segments a crashed run left behind, by name prefix; returns their names.

    Only segments that start with a ring header are removed unless ``rings_only`` is False, so
    a loose prefix cannot take out another program's memory. The prefix must be specific (at
    least 3 characters)."""
    if len(prefix) < 3 or "/" in prefix:
        raise RingArgumentError(f"prefix: need at least 3 characters and no '/', got {prefix!r}", "prefix")
    removed = []
    for name in segments(prefix):
        if rings_only:
            try:
                with open(_SHM_DIR / name, "rb") as f:
                    if f.read(len(_MAGIC)) != _MAGIC:
                        continue
            except OSError:
                continue
        if _unlink_name(name):
            removed.append(name)
        with _created_lock:
            _created.pop(name, None)
    return removed
