"""The video path below the browser: RGB -> I420 in the Rust core, the libx264 codec, the
records that carry access units, MP4 recording, the encode loop's JPEG fallback, and TLS."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import pytest

from synesthesia import kernels
from synesthesia.errors import KernelArgumentError, RecordFormatError, StreamConfigError
from synesthesia.frames import synthetic_frame
from synesthesia.stream.encoder import EncodeLoop
from synesthesia.stream.h264 import H264Codec, H264Config
from synesthesia.stream.ports import LatestSlot
from synesthesia.stream.recorder import H264Mp4Writer, Mp4Recorder, open_recorder
from synesthesia.stream.records import FrameMeta, JpegRecord
from synesthesia.stream.server import StreamServer
from synesthesia.stream.tls import self_signed, server_context

W, H = 320, 176


def _frames(n: int, w: int = W, h: int = H) -> list[np.ndarray]:
    return [synthetic_frame(i * 0.04, w, h) for i in range(n)]


def _i420_reference(rgb: np.ndarray) -> np.ndarray:
    """BT.601 limited range in floating point; chroma from each 2x2 block's mean."""
    x = rgb[..., :3].astype(np.float64)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    def pool(p: np.ndarray) -> np.ndarray:
        return p.reshape(p.shape[0] // 2, 2, p.shape[1] // 2, 2).mean(axis=(1, 3))
    return np.concatenate([y.reshape(-1), pool(u).reshape(-1), pool(v).reshape(-1)]).reshape(-1, rgb.shape[1])


@pytest.mark.parametrize("channels", [3, 4])
def test_i420_every_simd_level_equals_portable_and_the_reference(channels: int) -> None:
    rng = np.random.default_rng(channels)
    frame = rng.integers(0, 256, (H, W + 2, channels), dtype=np.uint8)[:, 1:-1]  # strided rows
    want = kernels.rgb_to_i420(frame, simd="portable")
    for level in kernels.available_simd_levels():
        np.testing.assert_array_equal(kernels.rgb_to_i420(frame, simd=level), want, err_msg=level)
    assert np.abs(want - _i420_reference(frame)).max() <= 1.0
    # And against libswscale on a smooth picture (it sites and filters chroma its own way).
    smooth = synthetic_frame(0.3, W, H)
    theirs = av.VideoFrame.from_ndarray(smooth, format="rgb24").reformat(format="yuv420p").to_ndarray()
    ours = kernels.rgb_to_i420(smooth)
    assert np.abs(ours[:H].astype(int) - theirs[:H]).max() <= 2
    assert np.abs(ours.astype(int) - theirs).mean() < 1.0


def test_i420_into_separate_planes_equals_the_packed_layout() -> None:
    frame = synthetic_frame(0.7, W, H)
    packed = kernels.rgb_to_i420(frame)
    y, u, v = np.empty(W * H, np.uint8), np.empty(W * H // 4, np.uint8), np.empty(W * H // 4, np.uint8)
    kernels.rgb_to_i420_planes(frame, y, u, v)
    np.testing.assert_array_equal(np.concatenate([y, u, v]), packed.reshape(-1))
    with pytest.raises(KernelArgumentError, match="^u: plane holds"):
        kernels.rgb_to_i420_planes(frame, y, u[:-1], v)
    with pytest.raises(KernelArgumentError, match="^v: buffer is read-only"):
        kernels.rgb_to_i420_planes(frame, y, u, bytes(len(v)))


def test_i420_rejects_what_it_cannot_convert() -> None:
    with pytest.raises(KernelArgumentError, match="^frame: 4:2:0 needs an even"):
        kernels.rgb_to_i420(np.zeros((5, 4, 3), np.uint8))
    with pytest.raises(KernelArgumentError, match="^frame: expected RGB"):
        kernels.rgb_to_i420(np.zeros((4, 4), np.uint8))
    with pytest.raises(KernelArgumentError, match="^out: expected a C-contiguous"):
        kernels.rgb_to_i420(np.zeros((4, 4, 3), np.uint8), out=np.zeros((4, 4), np.uint8))


def test_key_frames_only_when_asked_and_every_access_unit_is_annex_b() -> None:
    codec = H264Codec(W, H, H264Config(target_bps=500_000, scenecut=False, budget_ms=1e9, min_key_interval_s=0))
    records = [codec.encode(f, FrameMeta(i, (7,), {"rendered": 1})) for i, f in enumerate(_frames(30))]
    assert all(r is not None for r in records)
    keys = [r.key for r in records if r is not None]
    assert keys[0] and not any(keys[1:]), keys
    codec.request_keyframe("test")
    codec.request_keyframe("merged with the first")
    later = [codec.encode(f, FrameMeta(30 + i)) for i, f in enumerate(_frames(3))]
    assert [r.key for r in later if r is not None] == [True, False, False]
    for r in [*records, *later]:
        assert r is not None and bytes(r.jpeg[:4]) == b"\0\0\0\1" and r.codec == "h264"
    nal_types = {b & 0x1F for b in _nal_headers(bytes(records[0].jpeg))}  # type: ignore[union-attr]
    assert {7, 8, 5} <= nal_types, "a key frame carries SPS, PPS and an IDR slice in-band"
    assert [r.seq for r in records if r] == list(range(30))
    first = records[0]
    assert first is not None and first.trace_ids == (7,) and {"rendered", "encode_start", "encoded"} <= set(first.t)


def _nal_headers(au: bytes) -> list[int]:
    out, i = [], 0
    while (i := au.find(b"\0\0\1", i)) >= 0:
        out.append(au[i + 3])
        i += 3
    return out


class _Bits:
    """MSB-first bit reader over an RBSP (emulation-prevention bytes already removed)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def u(self, n: int) -> int:
        v = 0
        for _ in range(n):
            v = (v << 1) | (self.data[self.pos >> 3] >> (7 - (self.pos & 7))) & 1
            self.pos += 1
        return v

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k % 2 else -(k // 2)


def _sps_fields(au: bytes) -> dict[str, int]:
    """The fields of an access unit's SPS that say how a decoder may buffer (H.264 7.3.2.1.1, E.1.1)."""
    nal = next(n for n in au.split(b"\0\0\1")[1:] if n and n[0] & 0x1F == 7)
    rbsp = nal[1:].replace(b"\0\0\3", b"\0\0")
    b = _Bits(rbsp)
    sps = {"profile_idc": b.u(8)}
    b.u(16)  # constraint flags, level_idc
    b.ue()  # seq_parameter_set_id
    if sps["profile_idc"] in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        chroma = b.ue()
        if chroma == 3:
            b.u(1)
        b.ue(), b.ue(), b.u(1)  # bit depths, qpprime_y_zero_transform_bypass
        if b.u(1):  # seq_scaling_matrix_present
            for i in range(8 if chroma != 3 else 12):
                if b.u(1):
                    last = nxt = 8
                    for _ in range(16 if i < 6 else 64):
                        if nxt:
                            nxt = (last + b.se()) % 256
                        last = nxt or last
    b.ue()  # log2_max_frame_num_minus4
    poc = b.ue()
    if poc == 0:
        b.ue()
    elif poc == 1:
        b.u(1), b.se(), b.se()
        for _ in range(b.ue()):
            b.se()
    sps["max_num_ref_frames"] = b.ue()
    b.u(1)
    b.ue(), b.ue()  # picture size in macroblocks
    if not b.u(1):  # frame_mbs_only
        b.u(1)
    b.u(1)  # direct_8x8_inference
    if b.u(1):  # cropping
        b.ue(), b.ue(), b.ue(), b.ue()
    sps["vui"] = b.u(1)
    if not sps["vui"]:
        return sps
    if b.u(1) and b.u(8) == 255:  # aspect ratio
        b.u(32)
    if b.u(1):  # overscan
        b.u(1)
    if b.u(1):  # video signal type
        b.u(4)
        if b.u(1):
            sps["colour_primaries"], sps["transfer"], sps["matrix"] = b.u(8), b.u(8), b.u(8)
    if b.u(1):  # chroma location
        b.ue(), b.ue()
    if b.u(1):  # timing
        b.u(32), b.u(32), b.u(1)
    hrd = False
    for _ in range(2):  # NAL then VCL HRD parameters
        if b.u(1):
            hrd = True
            count = b.ue() + 1
            b.u(8)
            for _ in range(count):
                b.ue(), b.ue(), b.u(1)
            b.u(20)
    if hrd:
        b.u(1)  # low_delay_hrd
    b.u(1)  # pic_struct_present
    sps["bitstream_restriction"] = b.u(1)
    if sps["bitstream_restriction"]:
        b.u(1), b.ue(), b.ue(), b.ue(), b.ue()
        sps["max_num_reorder_frames"] = b.ue()
        sps["max_dec_frame_buffering"] = b.ue()
    return sps


@pytest.mark.parametrize("config", [H264Config(), H264Config(refresh="intra-refresh"), H264Config(preset="veryfast")],
                         ids=["gop", "intra-refresh", "veryfast"])
def test_sps_tells_decoders_that_no_frame_waits_for_reordering(config: H264Config) -> None:
    """A decoder may hold decoded frames back for reordering unless the SPS says it need not:
    the VUI's bitstream restriction with max_num_reorder_frames 0 and a one-frame buffer lets
    WebCodecs (and libavcodec) output each frame as soon as its access unit is decoded."""
    codec = H264Codec(W, H, config)
    key = codec.encode(_frames(1)[0], FrameMeta(0))
    assert key is not None and key.key
    sps = _sps_fields(bytes(key.jpeg))
    assert sps["vui"] and sps["bitstream_restriction"], sps
    assert sps["max_num_reorder_frames"] == 0 and sps["max_dec_frame_buffering"] == 1, sps
    assert (sps["colour_primaries"], sps["transfer"], sps["matrix"]) == (6, 6, 6), "BT.601 (SMPTE 170M) said in the VUI"
    # libavcodec reads the same SPS: no B-frame delay, each frame out as its access unit goes
    # in (one packet per access unit, no parser in between to wait for the next start code).
    dec = av.CodecContext.create("h264", "r")
    out = []
    for i, f in enumerate(_frames(5)):
        r = key if i == 0 else codec.encode(f, FrameMeta(i))
        assert r is not None
        out.append(len(dec.decode(av.Packet(bytes(r.jpeg)))))
    assert not dec.has_b_frames
    assert out == [1, 1, 1, 1, 1], out


def test_h264_stream_decodes_frame_by_frame_close_to_the_source() -> None:
    frames = _frames(40)
    codec = H264Codec(W, H, H264Config(target_bps=1_000_000, budget_ms=1e9))
    dec = av.CodecContext.create("h264", "r")
    decoded = []
    for i, f in enumerate(frames):
        r = codec.encode(f, FrameMeta(i))
        assert r is not None
        for packet in dec.parse(bytes(r.jpeg)):
            decoded += [d.to_ndarray(format="rgb24") for d in dec.decode(packet)]
    decoded += [d.to_ndarray(format="rgb24") for p in dec.parse(b"") for d in dec.decode(p)]
    decoded += [d.to_ndarray(format="rgb24") for d in dec.decode(None)]
    assert len(decoded) == len(frames)
    mse = np.mean([(a.astype(np.float64) - b) ** 2 for a, b in zip(decoded, frames)])
    assert 10 * np.log10(255**2 / mse) > 30


def test_frame_rate_halves_over_the_time_budget_and_comes_back() -> None:
    codec = H264Codec(W, H, H264Config(budget_ms=0.001))  # every frame is over this budget
    out = [codec.encode(f, FrameMeta(i)) for i, f in enumerate(_frames(40))]
    assert codec.controller.stride == 2 and codec.stats.skipped > 0
    assert any(r is None for r in out[12:]) and "half frame rate" in codec.report()["last_decision"]["reason"]
    codec.config.budget_ms = 1e9
    for i, f in enumerate(_frames(120)):
        codec.encode(f, FrameMeta(40 + i))
    assert codec.controller.stride == 1


def test_bad_codec_settings_are_named() -> None:
    with pytest.raises(StreamConfigError, match="^refresh"):
        H264Codec(W, H, H264Config(refresh="sometimes"))
    with pytest.raises(StreamConfigError, match="^size"):
        H264Codec(321, H)
    codec = H264Codec(W, H)
    with pytest.raises(StreamConfigError, match="^frame: expected 320x176"):
        codec.encode(np.zeros((10, 10, 3), np.uint8), FrameMeta(0))


def test_record_carries_codec_key_and_sequence() -> None:
    rec = JpegRecord(5, b"\0\0\0\1\x65abc", 1280, 704, "full", 0, 1, (1, 2), {"encoded": 9}, codec="h264", key=False, seq=77)
    back = JpegRecord.unpack(memoryview(rec.pack()))
    assert (back.codec, back.key, back.seq, bytes(back.jpeg), back.trace_ids) == ("h264", False, 77, rec.jpeg, (1, 2))
    assert rec.wire_meta()["codec"] == "h264" and rec.wire_meta()["key"] is False
    bad = bytearray(rec.pack())
    bad[30] = 9  # the codec byte
    with pytest.raises(RecordFormatError, match="inconsistent header"):
        JpegRecord.unpack(bytes(bad))
    with pytest.raises(RecordFormatError, match="^codec"):
        dataclasses.replace(rec, codec="vp9").pack()


def test_encode_loop_makes_jpeg_beside_video_only_while_asked() -> None:
    frames, records = LatestSlot[tuple[np.ndarray, FrameMeta]](), LatestSlot[JpegRecord](depth=8)
    reader, out = frames.reader(), records.reader(in_order=True)
    loop = EncodeLoop(reader, records, "nano", video=H264Codec(W, H, H264Config(min_key_interval_s=0)))

    def step(i: int) -> list[str]:
        frames.put((synthetic_frame(i * 0.04, W, H), FrameMeta(i)))
        loop.step(0.1)
        return [r.codec for r in iter(lambda: out.latest(0.0), None)]

    assert step(0) == ["h264"]
    loop.demand(jpeg=True)
    assert step(1) == ["h264", "jpeg"]
    loop.demand(keyframe=True, jpeg=False)
    frames.put((synthetic_frame(0.1, W, H), FrameMeta(2)))
    got = loop.step(0.1)
    assert got is not None and got.codec == "h264" and got.key
    assert loop.report()["codec"] == "h264" and loop.report()["jpeg"] is False


def test_video_rests_without_a_video_viewer_and_resumes_with_a_key_frame() -> None:
    frames, records = LatestSlot[tuple[np.ndarray, FrameMeta]](), LatestSlot[JpegRecord](depth=8)
    reader, out = frames.reader(), records.reader(in_order=True)
    video = H264Codec(W, H, H264Config(min_key_interval_s=0))
    loop = EncodeLoop(reader, records, "nano", video=video)
    loop.VIDEO_DEMAND_S = 0.05
    n = iter(range(1000))

    def step() -> list[JpegRecord]:
        i = next(n)
        frames.put((synthetic_frame(i * 0.04, W, H), FrameMeta(i)))
        loop.step(0.1)
        return list(iter(lambda: out.latest(0.0), None))

    # No server has spoken yet: video is made (a headless reader of the records needs it).
    assert [r.codec for r in step() + step()] == ["h264", "h264"]
    loop.demand(video=False)  # a server with no video viewer: a moment more, then rest
    assert [r.codec for r in step()] == ["h264"]
    time.sleep(0.06)
    assert step() == [] and step() == [] and loop.report()["video"] is False
    assert video.stats.frames == 3
    # A viewer that decodes video: the very next frame is a key frame, the sequence unbroken.
    loop.demand(video=True)
    got = step() + step()
    assert [(r.codec, r.key, r.seq) for r in got] == [("h264", True, 3), ("h264", False, 4)]
    assert loop.report()["video"] is True
    # JPEG for a viewer without video goes on while video rests.
    loop.demand(jpeg=True, video=False)
    time.sleep(0.06)
    assert [r.codec for r in step()] == ["jpeg"]
    # The stage reports each stream it has made (a run's frame count adds them up).
    streams = loop.streams()
    assert {k: v["frames"] for k, v in streams.items()} == {"h264": 5, "jpeg": 1}
    assert streams["h264"]["p50_ms"] > 0 and streams["jpeg"]["p50_ms"] > 0
    # An .mp4 recording needs every frame, viewers or not.
    rec_frames = LatestSlot[tuple[np.ndarray, FrameMeta]]()
    always = EncodeLoop(rec_frames.reader(), None, "nano", video=H264Codec(W, H), video_always=True)
    always.VIDEO_DEMAND_S = 0.0
    always.demand(video=False)
    rec_frames.put((synthetic_frame(0.0, W, H), FrameMeta(0)))
    assert (r := always.step(0.1)) is not None and r.codec == "h264"


def _records(n: int, w: int = W, h: int = H) -> list[JpegRecord]:
    codec = H264Codec(w, h, H264Config(budget_ms=1e9))
    out = []
    for i, f in enumerate(_frames(n, w, h)):
        r = codec.encode(f, FrameMeta(i, (), {"rendered": i}))
        assert r is not None
        out.append(dataclasses.replace(r, t={**r.t, "encoded": 1_000_000_000 + i * 40_000_000}))
    return out


def test_mp4_recording_opens_in_ffprobe_and_decodes_frame_by_frame(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    records = _records(50)
    with open_recorder(path, 25.0) as rec:
        assert isinstance(rec, Mp4Recorder)
        rec.put(JpegRecord(0, b"\xff\xd8", 8, 8, "nano", 75, 4))  # JPEG records are not for an mp4
        for r in records[:20] + records[25:]:  # a gap: nothing until the next key frame
            rec.put(r)
        assert rec.frames == 20
        gap_key = dataclasses.replace(records[30], key=True, jpeg=_records(1)[0].jpeg, seq=records[29].seq + 1)
        rec.put(gap_key)  # the stream's next record, a key frame: recording resumes
        assert rec.frames == 21
    probe = shutil.which("ffprobe")
    if probe is not None:
        out = subprocess.run([probe, "-v", "error", "-count_frames", "-show_streams", "-of", "json", str(path)],
                             capture_output=True, text=True, timeout=30, check=True)
        stream = json.loads(out.stdout)["streams"][0]
        assert stream["codec_name"] == "h264" and (stream["width"], stream["height"]) == (W, H)
        assert int(stream["nb_read_frames"]) == 21
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 21
    assert decoded[0].shape == (H, W, 3) and decoded[-1].std() > 10


def test_mp4_writer_refuses_to_start_on_a_delta_frame(tmp_path: Path) -> None:
    records = _records(3)
    with H264Mp4Writer(tmp_path / "w.mp4", W, H) as w:
        assert not w.write(records[1].jpeg, key=False)
        assert w.write(records[0].jpeg, key=True) and w.write(records[1].jpeg, key=False)
    with pytest.raises(StreamConfigError, match="^record: .*suffix"):
        open_recorder(tmp_path / "clip.mkv")


def test_serve_cli_records_mp4(tmp_path: Path) -> None:
    clip = tmp_path / "demo.mp4"
    done = subprocess.run([sys.executable, "-m", "synesthesia", "serve", "--demo", "--port", "0", "--size", "320x176",
                           "--seconds", "1.5", "--record", str(clip)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    with av.open(str(clip)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in container.decode(video=0)) >= 10


def test_server_over_tls_with_a_self_signed_certificate(tmp_path: Path) -> None:
    cert = self_signed("127.0.0.1", hours=1, directory=tmp_path / "tls")
    assert len(cert.fingerprint.split(":")) == 32 and (cert.key.stat().st_mode & 0o777) == 0o600
    slot: LatestSlot[JpegRecord] = LatestSlot(depth=8)
    server = StreamServer(slot.reader(in_order=True), port=0, ssl_context=server_context(cert.cert, cert.key))
    server.start_in_thread()
    try:
        assert server.url.startswith("https://127.0.0.1:")
        trust = ssl.create_default_context(cafile=str(cert.cert))

        async def fetch() -> tuple[str, dict[str, object]]:
            async with aiohttp.ClientSession() as session:
                async with session.get(server.url, ssl=trust) as page:
                    html = await page.text()
                async with session.ws_connect(f"wss://127.0.0.1:{server.port}/ws", ssl=trust) as ws:
                    await ws.send_str(json.dumps({"type": "hello", "codecs": ["h264", "jpeg"]}))
                    for r in _records(5):
                        slot.put(r)
                    while True:
                        msg = await ws.receive(timeout=10)
                        if msg.type == aiohttp.WSMsgType.TEXT and json.loads(msg.data)["type"] == "frame":
                            break
            await asyncio.sleep(0.25)  # aiohttp's graceful close: TLS transports finish closing
            return html, json.loads(msg.data)

        html, meta = asyncio.run(fetch())
        assert "<canvas" in html and meta["codec"] == "h264" and meta["key"] is True
        # Without trusting the certificate, a client refuses it.
        with pytest.raises(ssl.SSLCertVerificationError):
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
                ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1").close()
    finally:
        server.stop_thread()
    with pytest.raises(StreamConfigError, match="^serve.tls_cert: no such file"):
        server_context(tmp_path / "missing.pem", cert.key)


@pytest.mark.slow
def test_staged_run_streams_h264_with_key_frames_on_join_and_records_mp4(tmp_path: Path) -> None:
    """`synesthesia run` with real stage processes: a client that announces H.264 joins a running
    stream and its first frame is a key frame the serve stage asked the encode stage for over
    the bus; what it receives decodes; the run's .mp4 recording decodes frame by frame."""
    env = dict(os.environ, SYNESTHESIA_RUNTIME_DIR=str(tmp_path / "rt"), PYTHONUNBUFFERED="1")
    clip = tmp_path / "run.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "synesthesia", "run", "--port", "0", "--record", str(clip), "--duration", "25"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    try:
        url = None
        seen: list[str] = []
        end = time.monotonic() + 60
        assert proc.stdout is not None
        while url is None and time.monotonic() < end:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if "viewer" in line and "http://" in line:
                url = line[line.index("http://"):].split()[0]
        assert url is not None, "the run printed no viewer URL:\n" + "".join(seen)
        time.sleep(2.0)  # join a stream well past its first key frame

        async def watch() -> list[tuple[dict[str, Any], bytes]]:
            got: list[tuple[dict[str, Any], bytes]] = []
            async with aiohttp.ClientSession() as session, session.ws_connect(url.rstrip("/") + "/ws") as ws:
                await ws.send_str(json.dumps({"type": "hello", "codecs": ["h264"]}))
                meta = None
                while len(got) < 25:
                    msg = await ws.receive(timeout=20)
                    if msg.type == aiohttp.WSMsgType.TEXT and json.loads(msg.data)["type"] == "frame":
                        meta = json.loads(msg.data)
                    elif msg.type == aiohttp.WSMsgType.BINARY and meta is not None:
                        got.append((meta, msg.data))
                        meta = None
            await asyncio.sleep(0.1)  # let the closed transport finish before the loop ends
            return got

        got = asyncio.run(watch())
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert all(m["codec"] == "h264" for m, _ in got) and got[0][0]["key"], [(m["seq"], m["key"]) for m, _ in got[:5]]
    assert got[0][0]["seq"] > 10, "the join should have been mid-stream"
    dec = av.CodecContext.create("h264", "r")
    n = sum(len(dec.decode(p)) for _, data in got for p in dec.parse(data))
    n += sum(len(dec.decode(p)) for p in dec.parse(b"")) + len(dec.decode(None))
    assert n == len(got) and (got[0][0]["width"], got[0][0]["height"]) == (1280, 704)
    with av.open(str(clip)) as container:
        assert sum(1 for _ in container.decode(video=0)) >= 25


def test_codec_record_and_tls_settings_that_cannot_work_together_are_refused() -> None:
    from synesthesia.settings import SettingsError, load_settings

    assert load_settings(environ={}).encode.codec == "h264"
    with pytest.raises(SettingsError, match=r"^record: an \.mp4 recording holds the H\.264 stream"):
        load_settings(environ={}, overrides={"record": "x.mp4", "encode": {"codec": "jpeg"}})
    with pytest.raises(SettingsError, match=r"^record: 'x\.mkv': the suffix must be"):
        load_settings(environ={}, overrides={"record": "x.mkv"})
    with pytest.raises(SettingsError, match=r"^serve\.tls_key: a certificate needs its key"):
        load_settings(environ={}, overrides={"serve": {"tls_cert": "cert.pem"}})
    with pytest.raises(SettingsError, match=r"^serve\.tls_cert: a key without"):
        load_settings(environ={"SYNESTHESIA_SERVE__TLS_KEY": "key.pem"})
    with pytest.raises(SettingsError, match=r"^encode\.codec"):
        load_settings(environ={"SYNESTHESIA_ENCODE__CODEC": "vp9"})
    assert load_settings(environ={}, overrides={"serve": {"tls_cert": "self-signed"}}).serve.tls_cert == "self-signed"
