"""Encode and serve, in-process: records, the adaptive controller, the recorder, and the server
driven by plain WebSocket clients (real sockets, real JPEG decoders)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from synesthesia.errors import RecordFormatError, StreamConfigError
from synesthesia.stream.demo import DemoAudio, DemoBrain, DemoPipeline, DemoWorld
from synesthesia.stream.encoder import BitrateController, ControllerConfig, EncodeLoop
from synesthesia.stream.ports import LatestSlot, Prompt
from synesthesia.stream.recorder import MjpegRecorder
from synesthesia.stream.records import FrameMeta, JpegRecord
from synesthesia.stream.server import StreamServer, is_loopback

Frame = npt.NDArray[np.uint8]


def panning(frame: Frame, n: int, step: int = 8) -> Iterator[tuple[Frame, FrameMeta]]:
    """Moving content without rendering: a window sliding over the frame doubled in width."""
    w = frame.shape[1]
    wide = np.concatenate([frame, frame], axis=1)
    for i in range(n):
        off = (i * step) % w
        yield wide[:, off : off + w], FrameMeta(i)


# ------------------------------------------------------------------------------- records


def test_record_round_trip_bytes_and_view() -> None:
    rec = JpegRecord(
        frame=12345678901, jpeg=b"\xff\xd8jpeg\xff\xd9", width=320, height=176, mode="nano", quality=83,
        scale=4, trace_ids=(7, 2**63 + 5), t={"intent": 10, "rendered": 20, "encoded": 30},
    )
    packed = rec.pack()
    assert JpegRecord.unpack(packed) == rec
    view = JpegRecord.unpack(memoryview(bytearray(packed)))
    assert isinstance(view.jpeg, memoryview) and bytes(view.jpeg) == rec.jpeg
    assert view.t == rec.t and view.trace_ids == rec.trace_ids
    bare = JpegRecord(1, b"x", 1, 1, "full", 50, 1)
    assert JpegRecord.unpack(bare.pack()) == bare
    slot = bytearray(4096)
    n = rec.pack_into(slot)
    assert n == len(packed) and JpegRecord.unpack(memoryview(slot)[:n]) == JpegRecord.unpack(packed)
    with pytest.raises(RecordFormatError, match="buffer"):
        rec.pack_into(bytearray(10))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b"XXXX" + b[4:], "bad magic"),
        (lambda b: b[:4] + b"\x09\x00" + b[6:], "layout version 9"),
        (lambda b: b[:-1], "inconsistent header"),
        (lambda b: b[:10], "too short"),
    ],
)
def test_record_rejects_damage(mutate: object, message: str) -> None:
    packed = JpegRecord(3, b"abc", 2, 2, "preview", 60, 2, (1,), {"encoded": 5}).pack()
    with pytest.raises(RecordFormatError, match=message):
        JpegRecord.unpack(mutate(packed))  # type: ignore[operator]


def test_record_rejects_unknown_fields() -> None:
    with pytest.raises(RecordFormatError, match="mode"):
        JpegRecord(1, b"", 1, 1, "huge", 50, 1).pack()
    with pytest.raises(RecordFormatError, match="unknown hops"):
        JpegRecord(1, b"", 1, 1, "nano", 50, 1, t={"teleported": 1}).pack()


# ------------------------------------------------------------------------------- encoder


@pytest.mark.parametrize(("mode", "target"), [("nano", 2e6), ("nano", 1e6), ("preview", 2e6)])
def test_controller_converges_to_target_bitrate(frame: Frame, mode: str, target: float) -> None:
    loop = EncodeLoop(None, None, mode, ControllerConfig(target_bps=target, fps=25))
    sizes = [len(loop.encode(f, m).jpeg) for f, m in panning(frame, 90)]
    held = np.mean(sizes[-40:]) * 8 * 25
    assert abs(held / target - 1) < 0.10, f"{mode}: {held / 1e6:.2f} Mbps for a {target / 1e6:g} Mbps target"
    report = loop.report()
    assert report["mode"] == mode and report["frames"] == 90 and report["last_decision"]["reason"] == "bitrate"


def test_controller_converges_on_photos(photos: dict[str, Frame]) -> None:
    photo = np.ascontiguousarray(np.concatenate([photos["astronaut"][:400], photos["coffee"]], axis=1))
    loop = EncodeLoop(None, None, "preview", ControllerConfig(target_bps=1.5e6, fps=25))
    sizes = [len(loop.encode(f, m).jpeg) for f, m in panning(photo, 80, step=12)]
    assert abs(np.mean(sizes[-30:]) * 200 / 1.5e6 - 1) < 0.10


def test_controller_shrinks_scale_when_quality_cannot_go_lower(frame: Frame) -> None:
    loop = EncodeLoop(None, None, "nano", ControllerConfig(target_bps=40e3, fps=25))
    records = [loop.encode(f, m) for f, m in panning(frame, 40)]
    assert loop.controller.scale == 8 and records[-1].scale == 8 and records[-1].width == 160
    assert any("quality at minimum" in d.reason for d in loop.controller.decisions)


def test_controller_shrinks_scale_over_encode_budget(frame: Frame) -> None:
    loop = EncodeLoop(None, None, "full", ControllerConfig(budget_ms=0.001))
    for f, m in panning(frame, 12):
        loop.encode(f, m)
    assert loop.controller.scale > 1
    assert any(d.reason.startswith("encode time") for d in loop.controller.decisions)


def test_fixed_quality_when_not_adaptive(frame: Frame) -> None:
    loop = EncodeLoop(None, None, "nano", ControllerConfig(quality=60, adaptive=False))
    assert {loop.encode(f, m).quality for f, m in panning(frame, 5)} == {60}


def test_bad_settings_are_named() -> None:
    with pytest.raises(StreamConfigError, match="mode"):
        EncodeLoop(None, None, "tiny")
    with pytest.raises(StreamConfigError, match="target_bps"):
        BitrateController(4, ControllerConfig(target_bps=0))
    with pytest.raises(StreamConfigError, match="quality"):
        BitrateController(4, ControllerConfig(quality=99, q_max=90))
    with pytest.raises(StreamConfigError, match="token"):
        StreamServer(None, token="short")


def test_encode_loop_takes_the_newest_frame_and_counts_skips(frame: Frame) -> None:
    slot: LatestSlot[tuple[Frame, FrameMeta]] = LatestSlot()
    out: LatestSlot[JpegRecord] = LatestSlot()
    reader = slot.reader()
    loop = EncodeLoop(reader, out, "nano")
    jpegs = out.reader()
    for i in range(5):
        slot.put((frame, FrameMeta(i, (99,), {"rendered": i})))
    rec = loop.step(0.1)
    assert rec is not None and rec.frame == 4 and reader.skipped == 4
    for i in range(5, 8):
        slot.put((frame, FrameMeta(i)))
    rec = loop.step(0.1)
    assert rec is not None and rec.frame == 7 and loop.stats.dropped == 2
    got = jpegs.latest(0.1)
    assert got is rec and jpegs.skipped == 1
    assert set(rec.t) >= {"encode_start", "encoded"} and rec.t["encoded"] >= rec.t["encode_start"]
    assert loop.step(0.01) is None  # nothing newer: waits, never repeats a frame


def test_slot_reader_descriptor_signals_new_values() -> None:
    import select

    slot: LatestSlot[int] = LatestSlot()
    reader = slot.reader()
    fd = reader.fileno()
    assert select.select([fd], [], [], 0)[0] == []
    slot.put(1)
    slot.put(2)
    assert select.select([fd], [], [], 1)[0] == [fd]
    assert reader.latest(0) == 2 and reader.skipped == 1
    assert select.select([fd], [], [], 0)[0] == []
    reader.close()
    slot.put(3)  # a closed reader is no longer signalled


def test_recorder_writes_an_avi_players_open(tmp_path: Path, frame: Frame) -> None:
    cv2 = pytest.importorskip("cv2")
    loop = EncodeLoop(None, None, "nano")
    path = tmp_path / "clip.avi"
    with MjpegRecorder(path, fps=25) as rec:
        for f, m in panning(frame, 20):
            rec.put(loop.encode(f, m))
    cap = cv2.VideoCapture(str(path))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(25)
    decoded = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        decoded.append(img)
    cap.release()
    assert len(decoded) == 20 and decoded[0].shape == (176, 320, 3)
    assert not np.array_equal(decoded[0], decoded[-1])


# ------------------------------------------------------------------------------- server


class Prompts:
    def __init__(self) -> None:
        self.got: list[Prompt] = []

    def submit(self, prompt: Prompt) -> None:
        self.got.append(prompt)


class Audio:
    def __init__(self) -> None:
        self.pcm: list[npt.NDArray[np.int16]] = []

    def push(self, pcm: npt.NDArray[np.int16], t_ns: int, client: str) -> None:
        self.pcm.append(pcm.copy())


class BlockingOnly:
    """A record source without a descriptor, like a ring that only offers a blocking read."""

    def __init__(self, slot: LatestSlot[JpegRecord]) -> None:
        self._reader = slot.reader()

    def latest(self, timeout: float) -> JpegRecord | None:
        return self._reader.latest(timeout)


@pytest.fixture(params=["fd", "thread"])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[StreamServer, LatestSlot[JpegRecord], Prompts, Audio]]:
    slot: LatestSlot[JpegRecord] = LatestSlot()
    prompts, audio = Prompts(), Audio()
    source = slot.reader() if request.param == "fd" else BlockingOnly(slot)
    server = StreamServer(source, prompts, audio, port=0)
    server.start_in_thread()
    yield server, slot, prompts, audio
    slot.close()
    server.stop_thread()


def ws_url(server: StreamServer, token: str | None = None) -> str:
    return f"http://127.0.0.1:{server.port}/ws" + (f"?token={token}" if token else "")


class Producer:
    """Puts records into a slot at a steady rate from its own thread, like the jpeg ring's writer."""

    def __init__(self, slot: LatestSlot[JpegRecord], jpeg: bytes, fps: float = 25.0) -> None:
        self.slot, self.jpeg, self.period = slot, jpeg, 1 / fps
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        nxt = time.monotonic()
        while not self._stop.is_set():
            self.slot.put(JpegRecord(self.sent, self.jpeg, 320, 176, "nano", 75, 4, t={"encoded": time.monotonic_ns()}))
            self.sent += 1
            nxt += self.period
            self._stop.wait(max(0.0, nxt - time.monotonic()))

    def __enter__(self) -> Producer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def nano_jpeg() -> bytes:
    from synesthesia.frames import synthetic_frame

    return EncodeLoop(None, None).encode(synthetic_frame(0.5, 640, 352), FrameMeta(0)).jpeg  # type: ignore[return-value]


async def _receive_frames(url: str, seconds: float) -> tuple[list[dict[str, object]], list[bytes], list[float]]:
    metas: list[dict[str, object]] = []
    jpegs: list[bytes] = []
    latency_ms: list[float] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        end = time.monotonic() + seconds
        pending = None
        while time.monotonic() < end:
            try:
                msg = await ws.receive(timeout=max(0.01, end - time.monotonic()))
            except asyncio.TimeoutError:
                break
            if msg.type == aiohttp.WSMsgType.TEXT:
                ev = json.loads(msg.data)
                if ev["type"] == "frame":
                    pending = ev
            elif msg.type == aiohttp.WSMsgType.BINARY:
                assert pending is not None, "a JPEG arrived without its metadata message"
                assert pending["bytes"] == len(msg.data)
                latency_ms.append((time.monotonic_ns() - pending["t"]["encoded"]) / 1e6)  # type: ignore[index]
                metas.append(pending)
                jpegs.append(msg.data)
                pending = None
            else:
                break
    return metas, jpegs, latency_ms


def test_plain_client_receives_decodable_jpegs(served: tuple[StreamServer, LatestSlot[JpegRecord], Prompts, Audio], nano_jpeg: bytes) -> None:
    server, slot, _, _ = served
    with Producer(slot, nano_jpeg):
        metas, jpegs, _ = asyncio.run(_receive_frames(ws_url(server), 1.0))
    assert len(jpegs) >= 10
    for data in jpegs[:3]:
        img = Image.open(io.BytesIO(data))
        img.load()
        assert img.format == "JPEG" and img.size == (160, 88)
    frames = [m["frame"] for m in metas]
    assert frames == sorted(frames) and len(set(frames)) == len(frames)


def _stalled_socket(port: int) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads a byte."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def test_stalled_client_does_not_slow_the_others(served: tuple[StreamServer, LatestSlot[JpegRecord], Prompts, Audio]) -> None:
    server, slot, _, _ = served
    fat = os.urandom(200_000)  # big frames fill a stalled socket's buffers within a few sends
    stalled = [_stalled_socket(server.port) for _ in range(2)]
    try:
        with Producer(slot, fat) as producer:
            metas, _, latency = asyncio.run(_receive_frames(ws_url(server), 2.5))
            sent = producer.sent
        assert len(metas) >= 0.85 * sent - 3, f"healthy client got {len(metas)} of {sent} frames"
        assert np.percentile(latency, 90) < 40, f"healthy client latency p90 {np.percentile(latency, 90):.1f} ms"
        stuck = list(server.clients)  # the healthy client has left; these two never read
        assert len(stuck) == 2 and all(c.frames < sent / 2 and c.dropped > sent / 3 for c in stuck), [
            (c.frames, c.dropped, sent) for c in stuck
        ]
        # One pending slot each, and the socket's own buffer stays bounded: nothing queues behind
        # a client that does not read.
        assert all(c.pending is None or c.pending[0].frame >= sent - 3 for c in stuck)
        assert all(c.transport is not None and c.transport.get_write_buffer_size() <= 2 * len(fat) + (1 << 16) for c in stuck)
    finally:
        for s in stalled:
            s.close()


def test_client_vanishing_mid_frame_harms_no_one(served: tuple[StreamServer, LatestSlot[JpegRecord], Prompts, Audio]) -> None:
    server, slot, _, _ = served
    fat = os.urandom(300_000)
    with Producer(slot, fat):
        quitter = _stalled_socket(server.port)
        time.sleep(0.3)
        quitter.recv(1000)  # part of a frame, then gone with unread data (a reset)
        quitter.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        quitter.close()
        metas, _, _ = asyncio.run(_receive_frames(ws_url(server), 1.0))
    assert len(metas) >= 15
    deadline = time.monotonic() + 5
    while server.clients and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not server.clients


async def _exchange(url: str, messages: list[str | bytes], wait_for: int, headers: dict[str, str] | None = None) -> list[dict[str, object]]:
    """Send messages, then collect text events until ``wait_for`` non-frame events have arrived."""
    events: list[dict[str, object]] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url, headers=headers) as ws:
        for m in messages:
            await (ws.send_bytes(m) if isinstance(m, bytes) else ws.send_str(m))
        end = time.monotonic() + 5
        while len(events) < wait_for and time.monotonic() < end:
            msg = await ws.receive(timeout=5)
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            ev = json.loads(msg.data)
            if ev["type"] not in ("frame", "hud", "hello"):
                events.append(ev)
    return events


def test_prompt_reaches_the_sink(served: tuple[StreamServer, LatestSlot[JpegRecord], Prompts, Audio]) -> None:
    server, _, prompts, _ = served
    events = asyncio.run(_exchange(ws_url(server), [json.dumps({"type": "prompt", "text": "  a storm over the sea "})], 1))
    assert events[0]["type"] == "prompt.accepted"
    assert [p.text for p in prompts.got] == ["a storm over the sea"]
    assert str(prompts.got[0].trace_id) == events[0]["trace"]  # a string: JSON numbers lose 64-bit ids in JS


def test_malformed_messages_are_rejected_and_logged(
    served: tuple[StreamServer, LatestSlot[JpegRecord], Prompts, Audio], caplog: pytest.LogCaptureFixture
) -> None:
    server, _, prompts, audio = served
    bad: list[str | bytes] = [
        "not json",
        "[1, 2]",
        json.dumps({"type": "teleport"}),
        json.dumps({"type": "prompt", "text": 5}),
        json.dumps({"type": "prompt", "text": "x" * 501}),
        json.dumps({"type": "ack", "frame": "7"}),
        b"\x00\x01",  # PCM before the mic was started
        json.dumps({"type": "mic", "state": "start", "rate": 44100, "format": "s16le"}),
        json.dumps({"type": "mic", "state": "start", "rate": 16000, "format": "s16le"}),
        b"\x00\x01\x02",  # odd byte count
        b"\x10\x00\x20\x00",  # valid PCM now
        json.dumps({"type": "prompt", "text": "still here"}),
    ]
    with caplog.at_level(logging.WARNING, logger="synesthesia.stream.server"):
        events = asyncio.run(_exchange(ws_url(server), bad, 10))
    errors = [e["error"] for e in events if e["type"] == "error"]
    assert len(errors) == 9, errors
    assert "not JSON" in errors[0] and "unknown message type" in errors[2] and "odd byte count" in errors[8]
    assert server.malformed == 9
    assert sum("rejected message" in r.getMessage() for r in caplog.records) == 9
    assert [p.text for p in prompts.got] == ["still here"]  # the socket survived all of it
    assert [a.tolist() for a in audio.pcm] == [[16, 32]]


def test_oversized_message_closes_only_that_socket(served: tuple[StreamServer, LatestSlot[JpegRecord], Prompts, Audio]) -> None:
    server, _, prompts, _ = served

    async def go() -> aiohttp.WSCloseCode | int | None:
        async with aiohttp.ClientSession() as session, session.ws_connect(ws_url(server)) as ws:
            await ws.send_str(json.dumps({"type": "prompt", "text": "x" * 100_000}))
            while True:
                msg = await ws.receive(timeout=5)
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                    return ws.close_code

    assert asyncio.run(go()) == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    asyncio.run(_exchange(ws_url(server), [json.dumps({"type": "prompt", "text": "fine"})], 1))
    assert [p.text for p in prompts.got] == ["fine"]


def test_token_required_beyond_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")
    server = StreamServer(None, host="0.0.0.0", port=0)
    assert server.token and len(server.token) >= 16
    server.start_in_thread()
    try:
        base = f"http://127.0.0.1:{server.port}"

        async def go() -> dict[str, int]:
            out: dict[str, int] = {}
            async with aiohttp.ClientSession() as session:
                for name, path, headers in [
                    ("page-none", "/", {}),
                    ("page-wrong", "/?token=" + "x" * 24, {}),
                    ("page-right", f"/?token={server.token}", {}),
                    ("page-bearer", "/", {"Authorization": f"Bearer {server.token}"}),
                    ("asset", "/viewer/viewer.js", {}),
                ]:
                    async with session.get(base + path, headers=headers) as r:
                        out[name] = r.status
                for name, path in [("ws-none", "/ws"), ("ws-wrong", "/ws?token=nope")]:
                    try:
                        async with session.ws_connect(base + path):
                            out[name] = 101
                    except aiohttp.WSServerHandshakeError as exc:
                        out[name] = exc.status
                async with session.ws_connect(f"{base}/ws?token={server.token}") as ws:
                    out["ws-right"] = 101 if json.loads((await ws.receive(timeout=5)).data)["type"] == "hello" else 0
                try:
                    async with session.ws_connect(f"{base}/ws?token={server.token}", headers={"Origin": "http://evil.example"}):
                        out["ws-cross-origin"] = 101
                except aiohttp.WSServerHandshakeError as exc:
                    out["ws-cross-origin"] = exc.status
            return out

        status = asyncio.run(go())
    finally:
        server.stop_thread()
    assert status == {
        "page-none": 401, "page-wrong": 401, "page-right": 200, "page-bearer": 200, "asset": 200,
        "ws-none": 401, "ws-wrong": 401, "ws-right": 101, "ws-cross-origin": 403,
    }
    assert server.refused == 5


def test_demo_pipeline_prompt_changes_the_picture_and_is_traced(tmp_path: Path) -> None:
    with DemoPipeline(width=640, height=352, record=tmp_path / "demo.avi") as pipe:

        async def go() -> tuple[list[dict[str, object]], dict[str, object] | None]:
            events: list[dict[str, object]] = []
            traced = None
            async with aiohttp.ClientSession() as session, session.ws_connect(ws_url(pipe.server)) as ws:
                await ws.send_str(json.dumps({"type": "prompt", "text": "night falls"}))
                end = time.monotonic() + 5
                while time.monotonic() < end and traced is None:
                    msg = await ws.receive(timeout=5)
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        ev = json.loads(msg.data)
                        if ev["type"] == "frame" and ev["trace"]:
                            traced = ev
                        elif ev["type"] != "frame":
                            events.append(ev)
            return events, traced

        events, traced = asyncio.run(go())
    intents = [e for e in events if e["type"] == "intent"]
    assert intents and intents[0]["intent"] == "night"
    assert traced is not None and traced["trace"] == [intents[0]["trace"]]
    t = traced["t"]
    assert isinstance(t, dict) and t["transcript"] <= t["intent"] <= t["applied"] <= t["rendered"] <= t["encoded"]
    assert pipe.world.look == "night" and pipe.recorder is not None and pipe.recorder.frames > 0


def test_demo_world_and_sinks_without_a_server() -> None:
    slot: LatestSlot[tuple[Frame, FrameMeta]] = LatestSlot()
    world = DemoWorld(slot, 64, 32)
    reader = slot.reader()
    world.tick()
    first = reader.latest(0.1)
    DemoBrain(world).submit(Prompt("deep ocean", "c1", time.monotonic_ns(), 5))
    world.tick()
    second = reader.latest(0.1)
    assert first is not None and second is not None and second[1].trace_ids == (5,)
    assert world.look == "ocean" and not np.array_equal(first[0], second[0])
    audio = DemoAudio()
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.int16)
    audio.push(tone, 0, "c1")
    assert audio.report()["pitch_hz"] == pytest.approx(440, abs=5)
