"""The rings across real processes (spawned, as stages are): integrity, slow readers, processes
killed mid-read and mid-write, and segments left behind."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
import zlib
from collections.abc import Iterator
from multiprocessing.connection import Connection

import numpy as np
import pytest

from synesthesia import shm
from synesthesia.errors import RingBusyError
from synesthesia.shm import ByteRing, FrameRing

ctx = mp.get_context("spawn")
SHAPE = (96, 160, 3)


def _fill(arr: np.ndarray, i: int) -> int:
    # A pattern that differs in every byte position and every frame, so a torn frame (part old,
    # part new) cannot have the checksum the header claims.
    rng = np.random.default_rng(i)
    arr[...] = rng.integers(0, 256, arr.shape, dtype=np.uint8)
    return zlib.crc32(arr)


def writer_main(name: str, n: int, interval: float, done: Connection) -> None:
    ring = FrameRing.attach(name)
    t0 = time.perf_counter()
    for i in range(n):
        with ring.write() as slot:
            slot.meta.flags = _fill(slot.array, i)
        if interval:
            time.sleep(interval)
    done.send(time.perf_counter() - t0)
    del slot
    ring.close()


def stuck_writer_main(name: str, ready: Connection) -> None:
    ring = FrameRing.attach(name)
    with ring.write() as slot:
        slot.array[: SHAPE[0] // 2] = 0xEE  # half a frame, then die here
        ready.send("mid-write")
        time.sleep(60)


def blocked_reader_main(name: str, ready: Connection) -> None:
    ring = FrameRing.attach(name)
    rec = ring.read(timeout=5)
    assert rec is not None
    ready.send(int(rec.array.sum()))
    ring.read(timeout=60)  # blocked in the futex here when killed


def creator_main(prefix: str, crash: bool) -> None:
    FrameRing.create(prefix + "x", (4,), np.uint8, 2)
    ByteRing.create(prefix + "y", 16, 2)
    if crash:
        os.kill(os.getpid(), signal.SIGKILL)
    # A clean exit without unlink: the atexit hook must remove both.


@pytest.fixture
def prefix() -> Iterator[str]:
    p = f"syn-ptest-{os.getpid()}-"
    yield p
    leftovers = shm.segments(p)
    shm.cleanup(p, rings_only=False)
    assert leftovers == [], f"segments left behind: {leftovers}"


def _read_checked(ring: FrameRing, rec: shm.FrameRecord) -> bool:
    """True if the record was whole; a torn-but-accepted frame fails the test."""
    crc = zlib.crc32(rec.array)
    if not rec.valid():
        return False
    assert crc == rec.meta.flags, f"torn frame {rec.seq} passed valid()"
    return True


def test_every_frame_arrives_intact_across_processes(prefix: str) -> None:
    n = 300
    with FrameRing.create(prefix + "f", SHAPE, np.uint8, slots=16) as ring:
        reader = FrameRing.attach(prefix + "f")
        parent, child = ctx.Pipe()
        p = ctx.Process(target=writer_main, args=(prefix + "f", n, 0.001, child))
        p.start()
        good = missed = 0
        last = -1
        while last < n - 1:
            rec = reader.read(timeout=20)
            assert rec is not None, "writer stalled"
            assert rec.seq == last + 1 + rec.missed
            last = rec.seq
            missed += rec.missed
            good += _read_checked(reader, rec)
            del rec
        p.join(20)
        assert p.exitcode == 0
        assert good + missed >= n - 2  # a record or two may be invalidated while checked
        assert good > n // 2
        reader.close()


def test_a_slow_reader_drops_frames_but_never_sees_a_torn_one_nor_slows_the_writer(prefix: str) -> None:
    n = 200
    with FrameRing.create(prefix + "f", SHAPE, np.uint8, slots=4) as ring:
        reader = FrameRing.attach(prefix + "f")
        parent, child = ctx.Pipe()
        p = ctx.Process(target=writer_main, args=(prefix + "f", n, 0.0005, child))
        p.start()
        seen = missed = torn = 0
        writer_done_at_seen = None
        while True:
            rec = reader.read(timeout=20)
            assert rec is not None
            time.sleep(0.01)  # a reader ~10x slower than the writer
            if _read_checked(reader, rec):
                seen += 1
            else:
                torn += 1
            missed += rec.missed
            last = rec.seq
            del rec
            if writer_done_at_seen is None and parent.poll():
                writer_done_at_seen = seen + torn
            if last == n - 1:
                break
        p.join(20)
        assert p.exitcode == 0
        assert missed > 0
        assert seen + torn + missed == n
        # The writer finished while the reader had handled a fraction of the frames: it never
        # waited for the reader.
        assert writer_done_at_seen is not None and writer_done_at_seen < n // 2
        reader.close()


def test_a_writer_killed_mid_write_leaves_a_usable_ring(prefix: str) -> None:
    with FrameRing.create(prefix + "f", SHAPE, np.uint8, slots=2) as ring:
        reader = FrameRing.attach(prefix + "f")
        with ring.write() as slot:
            slot.meta.flags = _fill(slot.array, 0)
        ring.release_writer()
        first = reader.read(timeout=1)
        assert first is not None and first.seq == 0
        del first
        parent, child = ctx.Pipe()
        p = ctx.Process(target=stuck_writer_main, args=(prefix + "f", child))
        p.start()
        assert parent.recv() == "mid-write"
        with pytest.raises(RingBusyError) as e:
            with ring.write():
                pass
        assert e.value.pid == p.pid
        p.kill()
        p.join(10)
        # The half-written record was never published; readers see nothing new.
        assert reader.read(timeout=0.05) is None
        # A successor takes over the writer role and the same record number.
        with ring.write() as slot:
            assert slot.seq == 1
            slot.meta.flags = _fill(slot.array, 1)
        rec = reader.read(timeout=1)
        assert rec is not None and rec.seq == 1 and rec.missed == 0
        assert _read_checked(reader, rec)
        del rec
        reader.close()


def test_a_reader_killed_while_blocked_leaves_a_usable_ring(prefix: str) -> None:
    with FrameRing.create(prefix + "f", SHAPE, np.uint8, slots=4) as ring:
        other = FrameRing.attach(prefix + "f")
        parent, child = ctx.Pipe()
        p = ctx.Process(target=blocked_reader_main, args=(prefix + "f", child))
        p.start()
        deadline = time.monotonic() + 20
        while not parent.poll(0.02):  # the child may attach after our first write
            assert time.monotonic() < deadline
            with ring.write() as slot:
                slot.array[...] = 1
        parent.recv()
        time.sleep(0.05)
        p.kill()
        p.join(10)
        for i in range(5):
            with ring.write() as slot:
                slot.meta.flags = _fill(slot.array, i)
        got = [other.read_latest(timeout=1)]
        assert got[0] is not None and _read_checked(other, got[0])
        del got
        other.close()


def test_clean_exit_leaves_nothing_and_cleanup_removes_a_crashed_runs_segments(prefix: str) -> None:
    p = ctx.Process(target=creator_main, args=(prefix, False))
    p.start()
    p.join(20)
    assert p.exitcode == 0
    assert shm.segments(prefix) == []
    p = ctx.Process(target=creator_main, args=(prefix, True))
    p.start()
    p.join(20)
    assert p.exitcode == -signal.SIGKILL
    assert shm.segments(prefix) == [prefix + "x", prefix + "y"]
    assert shm.cleanup(prefix) == [prefix + "x", prefix + "y"]
