"""In-process behaviour of the shared-memory rings: API, metadata, read modes, lifecycle, and a
model-based property test of the ring's index arithmetic."""

from __future__ import annotations

import os
from collections.abc import Iterator
from multiprocessing import resource_tracker, shared_memory

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synesthesia import shm
from synesthesia.errors import RingArgumentError, RingError, RingLayoutError
from synesthesia.shm import ByteRing, FrameRing, SlotMeta


@pytest.fixture
def prefix() -> Iterator[str]:
    p = f"syn-test-{os.getpid()}-"
    yield p
    leftovers = shm.segments(p)
    shm.cleanup(p, rings_only=False)
    assert leftovers == [], f"segments left behind: {leftovers}"


def test_frames_are_written_in_place_and_read_as_views(prefix: str) -> None:
    with FrameRing.create(prefix + "f", (4, 6, 3), np.uint8, slots=3) as w:
        r = FrameRing.attach(prefix + "f")
        assert (r.shape, r.dtype, r.slots) == ((4, 6, 3), np.uint8, 3)
        assert r.read(timeout=0) is None
        with w.write() as slot:
            slot.array[...] = 7
            slot.meta.trace_ids = (11, 12)
            slot.meta.t_source_ns = 5
        rec = r.read(timeout=1)
        assert rec is not None
        assert (rec.seq, rec.missed) == (0, 0)
        assert (rec.array == 7).all() and not rec.array.flags.writeable
        m = rec.meta
        assert (m.frame, m.size, m.trace_ids, m.t_source_ns) == (0, 72, (11, 12), 5)
        assert shm.monotonic_ns() >= m.t_publish_ns >= m.t_write_ns > 0
        assert rec.valid()
        # The view aliases the slot: the writer lapping the ring shows through it and valid()
        # reports it.
        for i in range(3):
            with w.write() as slot:
                slot.array[...] = 100 + i
        assert not rec.valid()
        del rec, m
        r.close()


def test_read_latest_skips_to_the_newest_and_counts_what_it_skipped(prefix: str) -> None:
    with FrameRing.create(prefix + "f", 8, np.float32, slots=4) as w:
        r = FrameRing.attach(prefix + "f", shape=(8,), dtype="float32", slots=4)
        for i in range(3):
            with w.write() as slot:
                slot.array[:] = i
        rec = r.read_latest(timeout=0)
        assert rec is not None and (rec.seq, rec.missed, float(rec.array[0])) == (2, 2, 2.0)
        assert r.read_latest(timeout=0) is None
        assert r.read(timeout=0) is None
        del rec
        r.close()


def test_a_lapped_reader_gets_the_oldest_survivor_and_the_count_of_lost_frames(prefix: str) -> None:
    with FrameRing.create(prefix + "f", (2,), np.int64, slots=4) as w:
        r = FrameRing.attach(prefix + "f")
        for i in range(10):
            with w.write() as slot:
                slot.array[:] = i
                slot.meta.frame = 1000 + i
        got = []
        while (rec := r.read(timeout=0)) is not None:
            got.append((rec.seq, rec.missed, int(rec.array[0]), rec.meta.frame))
        assert got == [(6, 6, 6, 1006), (7, 0, 7, 1007), (8, 0, 8, 1008), (9, 0, 9, 1009)]
        del rec
        r.close()


def test_an_exception_inside_write_publishes_nothing(prefix: str) -> None:
    with FrameRing.create(prefix + "f", (2,), np.uint8, slots=2) as w:
        r = FrameRing.attach(prefix + "f")
        with pytest.raises(ZeroDivisionError), w.write() as slot:
            slot.array[:] = 1
            1 / 0  # noqa: B018
        assert w.head == 0 and r.read(timeout=0) is None
        with w.write() as slot:
            slot.array[:] = 2
        with pytest.raises(RingError, match="already published"):
            slot.array[:] = 3
        rec = r.read(timeout=0)
        assert rec is not None and rec.seq == 0 and rec.array[0] == 2
        del rec
        r.close()


def test_byte_ring_records_of_any_size(prefix: str) -> None:
    with ByteRing.create(prefix + "b", record_size=64, slots=4) as w:
        r = ByteRing.attach(prefix + "b", record_size=64)
        assert w.put(b"hello", SlotMeta(trace_ids=(9,))) == 0
        with w.write() as slot:
            slot.array[:3] = [1, 2, 3]
            slot.size = 3
        w.put(np.arange(64, dtype=np.uint8))
        w.put(b"")
        a, b, c, d = (r.read(timeout=0) for _ in range(4))
        assert a is not None and b is not None and c is not None and d is not None
        assert bytes(a) == b"hello" and a.meta.trace_ids == (9,) and a.meta.size == 5
        assert bytes(b) == b"\x01\x02\x03" and len(b) == 3
        assert (c.array == np.arange(64)).all() and len(d) == 0
        assert a.data.readonly
        with pytest.raises(RingArgumentError) as e:
            w.put(b"x" * 65)
        assert e.value.argument == "size"
        del a, b, c, d
        r.close()


def test_attach_refuses_a_different_layout_with_a_clear_error(prefix: str) -> None:
    with FrameRing.create(prefix + "f", (4, 4), np.uint8, slots=2):
        with pytest.raises(RingLayoutError, match=r"shape is \(4, 4\), expected \(4, 5\)"):
            FrameRing.attach(prefix + "f", shape=(4, 5))
        with pytest.raises(RingLayoutError, match="dtype is uint8, expected float32"):
            FrameRing.attach(prefix + "f", dtype=np.float32)
        with pytest.raises(RingLayoutError, match="has 2 slots, expected 3"):
            FrameRing.attach(prefix + "f", slots=3)
        with pytest.raises(RingLayoutError, match="frame ring, expected a bytes ring"):
            ByteRing.attach(prefix + "f")
    plain = shared_memory.SharedMemory(prefix + "junk", create=True, size=4096)
    resource_tracker.unregister(plain._name, "shared_memory")  # type: ignore[attr-defined]
    try:
        with pytest.raises(RingLayoutError, match="not a synesthesia ring"):
            FrameRing.attach(prefix + "junk")
    finally:
        plain.close()
        shm.cleanup(prefix + "junk", rings_only=False)
    with pytest.raises(RingError, match="no ring named"):
        FrameRing.attach(prefix + "missing")


def test_create_checks_arguments(prefix: str) -> None:
    for kwargs, arg in [
        ({"shape": (0, 3), "dtype": np.uint8, "slots": 2}, "shape"),
        ({"shape": (2,), "dtype": object, "slots": 2}, "dtype"),
        ({"shape": (2,), "dtype": np.uint8, "slots": 0}, "slots"),
    ]:
        with pytest.raises(RingArgumentError) as e:
            FrameRing.create(prefix + "bad", **kwargs)  # type: ignore[arg-type]
        assert e.value.argument == arg
    with pytest.raises(RingArgumentError):
        ByteRing.create(prefix + "bad", record_size=0, slots=2)
    with FrameRing.create(prefix + "f", 4, np.uint8, 2) as w, pytest.raises(RingArgumentError) as e:
        with w.write() as slot:
            slot.meta.trace_ids = (1, 2, 3, 4, 5)
    assert e.value.argument == "trace_ids"


def test_close_with_live_views_raises_and_keeps_the_ring_usable(prefix: str) -> None:
    with FrameRing.create(prefix + "f", 4, np.uint8, 2) as w:
        r = FrameRing.attach(prefix + "f")
        with w.write() as slot:
            slot.array[:] = 1
        rec = r.read(timeout=0)
        with pytest.raises(RingError, match="still referenced"):
            r.close()
        assert not r.closed
        with w.write() as slot:
            slot.array[:] = 2
        nxt = r.read(timeout=0)
        assert nxt is not None and nxt.seq == 1
        del rec, nxt, slot
        r.close()
        r.close()  # idempotent
        assert r.closed
        with pytest.raises(RingError, match="closed"):
            r.read(timeout=0)


def test_only_the_creator_unlinks_and_cleanup_removes_leftovers(prefix: str) -> None:
    w = FrameRing.create(prefix + "a", 4, np.uint8, 2)
    ByteRing.create(prefix + "b", 16, 2).close()  # "forgotten": still linked
    r = FrameRing.attach(prefix + "a")
    with pytest.raises(RingError, match="only the process that created it"):
        r.unlink()
    r.close()
    assert shm.segments(prefix) == [prefix + "a", prefix + "b"]
    w.close()
    assert sorted(shm.cleanup(prefix)) == [prefix + "a", prefix + "b"]
    assert shm.segments(prefix) == []
    w.unlink()  # idempotent once gone
    with pytest.raises(RingArgumentError):
        shm.cleanup("sy")


# --- index arithmetic against a model -------------------------------------------------------

_ops = st.lists(
    st.one_of(st.tuples(st.just("write"), st.integers(1, 9)), st.tuples(st.sampled_from(["next", "latest"]), st.just(0))),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(slots=st.integers(1, 5), ops=_ops)
def test_read_modes_match_a_model(slots: int, ops: list[tuple[str, int]]) -> None:
    name = f"syn-test-{os.getpid()}-prop"
    with ByteRing.create(name, 8, slots) as w:
        r = ByteRing.attach(name)
        head = cursor = 0
        for op, n in ops:
            if op == "write":
                for _ in range(n):
                    w.put(head.to_bytes(8, "little"))
                    head += 1
                continue
            rec = r.read(timeout=0) if op == "next" else r.read_latest(timeout=0)
            if cursor == head:
                assert rec is None
                continue
            if op == "next":
                want = max(cursor, head - slots)
            else:
                want = head - 1
            assert rec is not None
            assert (rec.seq, rec.missed) == (want, want - cursor)
            assert int.from_bytes(bytes(rec), "little") == want and rec.valid()
            cursor = want + 1
            del rec
        r.close()
