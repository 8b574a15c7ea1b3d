"""What the soak found growing, kept bounded: the listen stage's per-window VAD timings and
Whisper's decode records (kept for the bench), and the viewer server's state per client, which
must all go when the clients go, however many come and leave; and what made a fresh stage
process grow for minutes after its start: viewer timing histories filling one object at a time,
an allocator that hands memory back and takes it again per thread, and recognizer buffers that
grew with each utterance longer than any before."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import tracemalloc
from collections.abc import Iterator

import aiohttp
import numpy as np
import pytest

from synesthesia.stream.ports import LatestSlot
from synesthesia.stream.records import JpegRecord
from synesthesia.stream.server import StreamServer


def test_listener_vad_timings_and_whisper_decodes_stay_bounded() -> None:
    from synesthesia.hearing.listener import Listener
    from synesthesia.hearing.whisper import WhisperRecognizer
    from synesthesia.hearing.sources import AudioChunk

    rec = WhisperRecognizer(["ocean", "forest", "snow"])
    rec.keep_decodes = 3
    rng = np.random.default_rng(5)
    for _ in range(8):
        rec.transcribe((rng.standard_normal(8000) * 0.01).astype(np.float32))
    # Trimmed to the newest `keep_decodes` once twice that many piled up.
    assert 3 <= len(rec.decodes) <= 6, len(rec.decodes)

    listener = Listener(rec)
    silence = np.zeros(512 * 64, np.float32)
    windows = 0
    for i in range(20):  # 20 x 64 windows of 32 ms: 41 s of audio
        listener.process(AudioChunk(silence, i * len(silence), i))
        windows += 64
    assert windows > 1024
    assert len(listener.vad_ns) == 1024


@pytest.fixture
def server() -> Iterator[StreamServer]:
    slot: LatestSlot[JpegRecord] = LatestSlot()
    srv = StreamServer(slot.reader(), None, None, port=0)
    srv.start_in_thread()
    yield srv
    slot.close()
    srv.stop_thread()


def _sockets() -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return n


async def _come_and_go(srv: StreamServer, n: int, hud: bool = False) -> None:
    """``n`` viewers, eight at a time, each saying hello, sending a prompt, an ack, a resync and
    junk and reading the answers (with ``hud``, also its first HUD line) before it leaves."""
    async with aiohttp.ClientSession() as session:
        async def one() -> None:
            async with session.ws_connect(f"http://127.0.0.1:{srv.port}/ws") as ws:
                await ws.send_str(json.dumps({"type": "hello", "codecs": ["h264", "jpeg"]}))
                await ws.send_str(json.dumps({"type": "prompt", "text": "snow over the forest"}))
                await ws.send_str(json.dumps({"type": "ack", "frame": 1}))
                await ws.send_str(json.dumps({"type": "resync"}))
                await ws.send_str("{not json")
                seen: set[str] = set()
                while not ({"hello", "error", "hud"} if hud else {"hello", "error"}) <= seen:
                    msg = await ws.receive(timeout=5)
                    seen.add(json.loads(msg.data)["type"])

        for _ in range(n // 8):
            await asyncio.gather(*(one() for _ in range(8)))


def _settle(srv: StreamServer) -> None:
    for _ in range(100):
        if not srv.clients:
            break
        asyncio.run(asyncio.sleep(0.05))
    gc.collect()


def test_viewer_server_keeps_nothing_per_client_after_it_leaves(server: StreamServer) -> None:
    base = _sockets()
    # Warm-up, through a HUD tick: the loop's, aiohttp's and numpy's lazy imports and caches fill.
    asyncio.run(_come_and_go(server, 16, hud=True))
    asyncio.run(_come_and_go(server, 48))
    _settle(server)
    tracemalloc.start()
    try:
        asyncio.run(_come_and_go(server, 16))
        _settle(server)
        before = tracemalloc.get_traced_memory()[0]
        asyncio.run(_come_and_go(server, 320))
        _settle(server)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert not server.clients
    assert _sockets() <= base + 1
    # A client's own state (its queues, windows, per-frame maps, rate bucket) is several KB:
    # 320 of them kept would be well over this.
    assert grown < 256 * 1024, f"{grown / 1024:.0f} KiB kept after 320 viewers came and went"


def test_jpeg_encoder_cache_stays_small_as_quality_wanders() -> None:
    from synesthesia.stream.encoder import EncodeLoop
    from synesthesia.stream.records import FrameMeta

    loop = EncodeLoop(None, None, "nano")
    frame = np.random.default_rng(2).integers(0, 255, (176, 320, 3), dtype=np.uint8)
    for i, quality in enumerate(range(20, 96, 3)):
        loop.controller._q = float(quality)  # where a changing scene would steer it
        record = loop.encode(frame, FrameMeta(i, (), {}))
        assert record.quality == quality
    assert len(loop._encoders) <= 8


def test_viewer_timing_histories_cost_their_size_from_the_first_frame() -> None:
    from synesthesia.stream.server import NsRing

    ring = NsRing(1024)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(3000):  # a viewer acknowledging frames for two minutes
            ring.append(40_000_000 + i)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # A deque of ints grew ~40 KB over its first 1024 entries, so a fresh serve process kept
    # growing for as long as its viewers took to fill theirs.
    assert grown < 2048, f"{grown} bytes grown after the buffer was made"
    values = np.asarray(ring)
    assert len(ring) == 1024 and values.dtype == np.int64
    assert values[0] == 40_000_000 + 3000 - 1024 and values[-1] == 40_000_000 + 2999  # oldest first
    ring.clear()
    assert not ring and np.asarray(ring).size == 0


_HEAP_BURSTS = """
import json, os, sys, threading
from synesthesia.bench.soak import proc_sample
from synesthesia.stages.host import keep_heap

if sys.argv[1] == "keep":
    assert keep_heap()
anon = lambda: proc_sample(os.getpid())[2]
out = {"base": anon()}

def burst(i):
    blocks = [bytes([1]) * (256 << 10) for _ in range(64)]  # 16 MiB written
    out[f"peak{i}"] = anon()
    del blocks
    out[f"after{i}"] = anon()

def worker():  # a thread of its own, like a recognizer's: its own malloc arena
    burst(0)
    burst(1)

t = threading.Thread(target=worker)
t.start()
t.join()
print(json.dumps(out))
"""


def _heap_bursts(mode: str) -> dict[str, float]:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _HEAP_BURSTS, mode], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return {k: float(v) for k, v in json.loads(done.stdout).items()}


def test_stage_processes_keep_the_heap_they_grew() -> None:
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("the allocator settings are glibc's")
    # glibc by default: a burst freed goes back to the kernel, so RSS follows where the last big
    # buffers landed (the listen stage's 2-3 MiB swings between utterances).
    plain = _heap_bursts("plain")
    assert plain["after1"] - plain["base"] < 0.5 * (plain["peak1"] - plain["base"]), plain
    # A stage process keeps it: freeing does not shrink it and the same burst again reuses it.
    kept = _heap_bursts("keep")
    assert kept["peak0"] - kept["base"] > 14, kept
    assert kept["after0"] > kept["peak0"] - 1 and kept["after1"] > kept["peak1"] - 1, kept
    assert kept["peak1"] - kept["peak0"] < 1, kept


_DECODES_AFTER_WARM_UP = """
import json, os, sys
from importlib import resources
from synesthesia.bench.soak import proc_sample
from synesthesia.hearing.sources import read_audio
from synesthesia.hearing.whisper import WhisperRecognizer
from synesthesia.stages.host import keep_heap
from synesthesia.stages.listen import warm_up

keep_heap()  # as in every stage process
anon = lambda: proc_sample(os.getpid())[2]
speech = read_audio(resources.files("synesthesia.data").joinpath("demo.flac"))
rec = WhisperRecognizer(["ocean", "forest", "storm", "stars", "fire", "city", "purple", "day", "calm"])
if sys.argv[1] == "warm":
    warm_up(rec)
    assert not rec.finish().text  # nothing left open
out = [anon()]
for a, b in ((5, 6), (9, 10.5), (20, 24), (25, 29), (36, 40), (41, 45)):  # none of the warm-up's audio
    rec.transcribe(speech[int(a * 16000):int(b * 16000)])
    out.append(anon())
print(json.dumps(out))
"""


def test_listen_stage_warm_up_grows_the_recognizer_to_its_longest_decode_at_start() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _DECODES_AFTER_WARM_UP, "warm"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    rss = json.loads(done.stdout)
    # Without the warm-up these six utterances grew a fresh recognizer by ~20 MiB, ~9 of them
    # after its first decode; after it, by 2-4 MiB (which of its threads' heaps a buffer lands in
    # varies from run to run).
    assert max(rss) - rss[0] < 6, f"RssAnon MiB after warm-up, then after each decode: {rss}"
