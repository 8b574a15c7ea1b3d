"""H.264 to the viewer: WebCodecs decoding in Debian's headless chromium, codec negotiation,
joining mid-stream, falling behind, and the JPEG fallback for a page without WebCodecs.

One chromium and one demo pipeline (real libx264 encoder, real server) serve the module.
Without chromium these tests skip, or fail under CI=true, like the other browser tests.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from synesthesia.bench.browser import CANVAS_DIGEST, NO_RGBA_COPY, VIEWER_STATE, Browser, find_chromium
from synesthesia.bench.browser import Cdp as PackageCdp
from synesthesia.frames import synthetic_frame
from synesthesia.stream.demo import LOOKS, DemoPipeline

NO_WEBCODECS = "delete window.VideoDecoder; delete window.EncodedVideoChunk; delete window.VideoFrame;"


def _chromium() -> str:
    if path := find_chromium():
        return path
    reason = "REAL-BROWSER H.264 TESTS NOT RUN: no chromium on PATH (`make test` installs it as root)."
    if os.environ.get("CI") == "true":
        pytest.fail(reason + " (CI=true: the browser tests must run here)", pytrace=False)
    pytest.skip(reason)


def _wait(cdp: PackageCdp, expression: str, timeout: float, what: str) -> Any:
    # CI shares 2 cores: generous multiples of what a quiet machine needs.
    return cdp.wait(expression, 3 * timeout, what, VIEWER_STATE)


@pytest.fixture(scope="module")
def pipe() -> Iterator[DemoPipeline]:
    with DemoPipeline(width=640, height=352, fps=25.0, codec="h264", target_bps=1_000_000) as p:
        yield p


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    with Browser(_chromium(), workdir=tmp_path_factory.mktemp("h264")) as b:
        yield b


def _open(browser: Browser, url: str, before: str | None = None) -> PackageCdp:
    """A fresh tab on ``url`` (``before``: a script run ahead of the page's own); the tabs of
    earlier tests are closed so that each test's page is the only viewer."""
    cdp = browser.page()
    old = [t["targetId"] for t in cdp.call("Target.getTargets")["targetInfos"] if t["type"] == "page"]
    cdp.open("about:blank")
    if before is not None:
        cdp.call("Page.addScriptToEvaluateOnNewDocument", {"source": before})
    cdp.call("Page.navigate", {"url": url})
    for target in old:
        cdp.call("Target.closeTarget", {"targetId": target})
    _wait(cdp, "window.synesthesia && window.synesthesia.connected", 10, "the viewer to connect")
    return cdp


def _video_client(pipe: DemoPipeline) -> Any:
    clients = [c for c in pipe.server.clients if "h264" in c.codecs]
    assert clients, [sorted(c.codecs) for c in pipe.server.clients]
    return clients[0]


def test_h264_frames_are_decoded_by_webcodecs_and_drawn(browser: Browser, pipe: DemoPipeline) -> None:
    cdp = _open(browser, pipe.server.url)
    _wait(cdp, "window.synesthesia.codec === 'h264' && window.synesthesia.framesDrawn >= 10", 20, "ten H.264 frames drawn")
    first = cdp.js(CANVAS_DIGEST)
    drawn = cdp.js("window.synesthesia.framesDrawn")
    _wait(cdp, f"window.synesthesia.framesDrawn >= {drawn + 10}", 20, "ten more frames")
    second = cdp.js(CANVAS_DIGEST)
    state = cdp.js("({codecs: window.synesthesia.codecs, keys: window.synesthesia.keyFrames, "
                   "errors: window.synesthesia.decodeErrors, resyncs: window.synesthesia.resyncs})")
    assert state["codecs"][0] == "h264", state
    # The browser took the latency hint (a config it did not understand would come back without it).
    config = cdp.js("window.synesthesia.decoderConfig")
    assert config["codec"] == "avc1.64001F" and config["optimizeForLatency"] is True, config
    assert state["keys"] >= 1 and state["errors"] == 0, state
    assert (first["w"], first["h"]) == (640, 352), first
    assert first["hash"] != second["hash"], "the decoded picture did not move"
    assert max(second["mean"]) > 20, second
    client = _video_client(pipe)
    assert client.frames > 10 and client.display_ns, "the page acknowledged no frames"


def test_typed_prompt_changes_the_decoded_picture(browser: Browser, pipe: DemoPipeline) -> None:
    cdp = _open(browser, pipe.server.url)
    _wait(cdp, "window.synesthesia.codec === 'h264' && window.synesthesia.framesDrawn >= 3", 20, "H.264 frames")
    before = cdp.js(CANVAS_DIGEST)["mean"]
    cdp.js("document.getElementById('prompt').focus()")
    cdp.call("Input.insertText", {"text": "the ocean"})
    cdp.js("document.querySelector('#prompt-form button').click()", gesture=True)
    _wait(cdp, "window.synesthesia.events.some(e => e.type === 'intent' && e.intent === 'ocean')", 10, "the ocean intent")
    trace = cdp.js("window.synesthesia.events.find(e => e.type === 'intent' && e.intent === 'ocean').trace")
    _wait(cdp, f"window.synesthesia.lastTraced && window.synesthesia.lastTraced.trace.includes({json.dumps(trace)})", 10,
          "an H.264 frame traced to the prompt")
    _wait(cdp, "window.synesthesia.lastDrawn > window.synesthesia.lastTraced.frame + 10", 10, "frames after the traced one drawn")
    after = cdp.js(CANVAS_DIGEST)["mean"]
    # The ocean look lifts blue against red in the decoded picture.
    assert after[2] / max(after[0], 1) > 1.3 * before[2] / max(before[0], 1), (before, after)
    assert cdp.js("window.synesthesia.decodeErrors") == 0


def test_client_joining_mid_stream_gets_a_key_frame_at_once(browser: Browser, pipe: DemoPipeline) -> None:
    cdp = _open(browser, pipe.server.url)
    _wait(cdp, "window.synesthesia.codec === 'h264' && window.synesthesia.framesDrawn >= 30", 20, "a stream well past its first key frame")
    requests = pipe.server.keyframe_requests
    join_ms = []
    for _ in range(3):
        cdp = _open(browser, pipe.server.url)  # a new client in the middle of the stream
        _wait(cdp, "window.synesthesia && window.synesthesia.codec === 'h264' && window.synesthesia.joinMs !== null", 10,
              "the rejoined page's first frame")
        join_ms.append(cdp.js("window.synesthesia.joinMs"))
    assert pipe.server.keyframe_requests > requests
    # Socket open -> first decoded frame on the canvas. The budget is 100 ms; this shared CI
    # machine gets twice that (the measured figure is in bench/results/stream.md).
    assert min(join_ms) < 200, join_ms


def test_page_joining_a_resting_encoder_draws_at_once(browser: Browser, pipe: DemoPipeline) -> None:
    """With no video viewer the encoder stops making H.264; a page that joins then gets a key
    frame at the next frame and draws it as fast as one joining a running stream."""
    cdp = browser.page()
    old = [t["targetId"] for t in cdp.call("Target.getTargets")["targetInfos"] if t["type"] == "page"]
    cdp.open("about:blank")
    for target in old:
        cdp.call("Target.closeTarget", {"targetId": target})
    pipe.encoder.VIDEO_DEMAND_S = 0.3  # the server repeats its demand every second
    try:
        deadline = time.monotonic() + 15
        while pipe.encoder.video_wanted and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not pipe.encoder.video_wanted, "the video side never rested without a viewer"
        made = pipe.encoder.video.stats.frames
        time.sleep(0.3)
        assert pipe.encoder.video.stats.frames == made, "H.264 frames were made with no viewer"
        cdp = _open(browser, pipe.server.url)
        _wait(cdp, "window.synesthesia.codec === 'h264' && window.synesthesia.joinMs !== null", 10, "the first frame")
        join_ms = cdp.js("window.synesthesia.joinMs")
        assert cdp.js("window.synesthesia.keyFrames") >= 1 and cdp.js("window.synesthesia.framesSkipped") == 0
    finally:
        del pipe.encoder.VIDEO_DEMAND_S
    assert pipe.encoder.video_wanted
    # The same allowance as a join mid-stream (100 ms budget, a shared CI machine).
    assert join_ms < 200, join_ms


class _RawSocket:
    """A minimal WebSocket client on a plain socket with a tiny receive buffer, so that not
    reading for a while really backs the server up (aiohttp would buffer on our behalf)."""

    def __init__(self, port: int) -> None:
        self.s = socket.socket()
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.s.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall(f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.s.recv(4096)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def send_text(self, text: str) -> None:
        data, mask = text.encode(), os.urandom(4)
        assert len(data) < 126
        self.s.sendall(bytes([0x81, 0x80 | len(data)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.s.recv(1 << 16)
            assert chunk, "the server closed the socket"
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def receive(self) -> tuple[int, bytes]:
        b0, b1 = self._take(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", self._take(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._take(8))[0]
        return b0 & 0x0F, self._take(n)


def test_throttled_client_skips_to_a_key_frame_and_decodes_on(pipe: DemoPipeline) -> None:
    """A real client that stops reading for a while: the server drops its frames instead of
    queueing them, asks for a key frame, and what the client gets afterwards decodes."""
    ws = _RawSocket(pipe.server.port)
    got: list[tuple[dict[str, Any], bytes]] = []
    pipe.encoder.video.set_bitrate(4_000_000)  # bigger frames back the socket up sooner
    try:
        ws.send_text(json.dumps({"type": "hello", "codecs": ["h264"]}))
        meta: dict[str, Any] | None = None
        for phase_s in (1.0, 2.0):
            end = time.monotonic() + phase_s
            ws.s.settimeout(5)
            while time.monotonic() < end:
                op, data = ws.receive()
                if op == 1:
                    ev = json.loads(data)
                    meta = ev if ev["type"] == "frame" else meta
                elif op == 2:
                    assert meta is not None and meta["codec"] == "h264"
                    got.append((meta, data))
                    meta = None
            if phase_s == 1.0:
                time.sleep(2.0)  # read nothing: the socket backs up, the server must drop
    finally:
        ws.s.close()
        pipe.encoder.video.set_bitrate(1_000_000)
    seqs = [m["seq"] for m, _ in got]
    assert got and got[0][0]["key"], "the first frame a joining client gets must be a key frame"
    gaps = [i for i in range(1, len(seqs)) if seqs[i] != seqs[i - 1] + 1]
    assert gaps, f"the stall dropped nothing ({len(seqs)} frames): the test did not throttle"
    assert all(got[i][0]["key"] for i in gaps), "after a gap the stream must restart at a key frame"
    assert len(got) - gaps[-1] >= 10, "the client did not get going again after the stall"
    # Everything received decodes, frame by frame, with no error.
    dec = av.CodecContext.create("h264", "r")
    frames = 0
    for _, data in got:
        for packet in dec.parse(data):
            frames += len(dec.decode(packet))
    frames += sum(len(dec.decode(p)) for p in dec.parse(b"")) + len(dec.decode(None))
    assert frames == len(got)


def test_page_without_webcodecs_falls_back_to_jpeg(browser: Browser, pipe: DemoPipeline) -> None:
    cdp = _open(browser, pipe.server.url, before=NO_WEBCODECS)
    _wait(cdp, "window.synesthesia.codec === 'jpeg' && window.synesthesia.framesDrawn >= 5", 20,
          "JPEG frames on a page without WebCodecs")
    assert cdp.js("window.synesthesia.codecs") == ["jpeg"]
    assert cdp.js("typeof VideoDecoder") == "undefined"
    assert any("h264" not in c.codecs and c.frames >= 5 for c in pipe.server.clients)
    shown = cdp.js(CANVAS_DIGEST)
    assert (shown["w"], shown["h"]) == (160, 88) and max(shown["mean"]) > 20, shown
    # Only while such a page is connected does the encoder make JPEG beside the video.
    assert pipe.encoder.jpeg_wanted


def test_corrupt_access_units_kill_neither_server_nor_page(browser: Browser, pipe: DemoPipeline) -> None:
    cdp = _open(browser, pipe.server.url)
    _wait(cdp, "window.synesthesia.codec === 'h264' && window.synesthesia.framesDrawn >= 3", 20, "H.264 frames")
    # Garbage marked as a key frame, then a real key frame cut short, through the real path
    # (record slot -> server -> socket -> page decoder), between the encoder's own records.
    real = next(r for r in iter(lambda: pipe.jpegs.reader().latest(2.0), None) if r is not None and r.codec == "h264")
    garbage = b"\x00\x00\x00\x01\x65" + os.urandom(3000)
    pipe.jpegs.put(dataclasses.replace(real, jpeg=garbage, key=True, seq=real.seq + 1))
    pipe.jpegs.put(dataclasses.replace(real, jpeg=bytes(real.jpeg)[: len(real.jpeg) // 3], key=True, seq=real.seq + 2))
    _wait(cdp, "window.synesthesia.resyncs >= 1", 10, "the page to notice the bad access units")
    drawn = cdp.js("window.synesthesia.framesDrawn")
    _wait(cdp, f"window.synesthesia.framesDrawn >= {drawn + 10}", 20, "the page drawing again after bad input")
    assert cdp.js("window.synesthesia.resyncs") >= 1
    assert pipe.server.clients, "the server lost its clients"
    np.testing.assert_array_less(0, cdp.js(CANVAS_DIGEST)["mean"])


#: Page expression: the frame number the canvas shows and its pixels (RGBA, base64), read in
#: one evaluation so that the two belong together.
CANVAS_FRAME = """(() => {
  const c = document.getElementById('view');
  const d = new Uint8Array(c.getContext('2d').getImageData(0, 0, c.width, c.height).data.buffer);
  let s = '';
  for (let i = 0; i < d.length; i += 8192) s += String.fromCharCode.apply(null, d.subarray(i, i + 8192));
  return {frame: window.synesthesia.lastDrawn, w: c.width, h: c.height, rgba: btoa(s)};
})()"""


def _source_frame(pipe: DemoPipeline, frame: int) -> np.ndarray:
    """What the demo world rendered as ``frame`` (its panning view under the current look)."""
    w, h = pipe.world.width, pipe.world.height
    base = synthetic_frame(0.0, w, h)
    wide = np.concatenate([base, base], axis=1)
    lut = LOOKS.get(pipe.world.look)
    if lut is not None:
        wide = np.stack([lut[c][wide[..., c]] for c in range(3)], axis=-1)
    off = (frame * 4) % w
    return wide[:, off : off + w]


@pytest.mark.parametrize("paint", ["copyTo", "drawImage"])
def test_canvas_shows_the_decoded_frame_in_the_right_colours(browser: Browser, pipe: DemoPipeline, paint: str) -> None:
    """The canvas holds the frame the page acknowledged, close to what the world rendered, by
    the fast path (VideoFrame.copyTo as RGBA, then putImageData) and by the drawImage fallback."""
    cdp = _open(browser, pipe.server.url, before=NO_RGBA_COPY if paint == "drawImage" else None)
    _wait(cdp, "window.synesthesia.codec === 'h264' && window.synesthesia.framesDrawn >= 10", 20, "H.264 frames drawn")
    assert cdp.js("window.synesthesia.videoPaint") == paint
    shown = cdp.js(CANVAS_FRAME)
    assert (shown["w"], shown["h"]) == (pipe.world.width, pipe.world.height), shown["w"]
    rgb = np.frombuffer(base64.b64decode(shown["rgba"]), np.uint8).reshape(shown["h"], shown["w"], 4)[..., :3]
    source = _source_frame(pipe, shown["frame"]).astype(np.float64)
    psnr = 10 * np.log10(255**2 / np.mean((rgb - source) ** 2))
    # Another frame (the view pans 4 pixels a frame) costs the PSNR over 5 dB; a wrong YUV
    # matrix (BT.709 for this BT.601 stream) moves a channel's mean by 2.5 levels, a wrong
    # range by more (measured: the right frame in the right colours 36.8 dB, means within 0.9).
    channel_error = np.abs(rgb.reshape(-1, 3).mean(0) - source.reshape(-1, 3).mean(0))
    assert psnr > 33 and channel_error.max() < 1.6, (psnr, channel_error)
    assert cdp.js("window.synesthesia.decodeErrors") == 0
