"""Serve stage: the viewer page and the live stream, fed by the jpeg ring and the bus.

Runs in its own process: a shell over :class:`synesthesia.stream.server.StreamServer`. Encoded
records come from the jpeg ring in order (a video decoder needs every delta frame; the server
skips a lagging viewer to the next key frame), what the viewers need goes back to the encode
stage as ``serve.encode_request`` events, typed prompts go onto the bus for the NLP,
transcripts and intents from the bus go to every viewer, and a browser microphone's PCM goes
into the audio ring when the run's audio source is `browser`.
"""

from __future__ import annotations

import ssl
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from synesthesia import shm
from synesthesia.messages import EncodeRequest, Intent, LogLine, Prompt, TranscriptFinal, TranscriptPartial, WorldApplied
from synesthesia.stages.host import StageContext
from synesthesia.stream import ports
from synesthesia.stream.records import JpegRecord
from synesthesia.stream.recorder import MjpegRecorder, Mp4Recorder, open_recorder
from synesthesia.stream.server import StreamServer
from synesthesia.stream.tls import SELF_SIGNED, self_signed, server_context

CHUNK = 512


class JpegRingSource:
    """`RecordSource` over the jpeg ring, oldest unread record first (records the writer lapped
    are skipped; the server sees the gap in an H.264 stream's numbers). The record is copied
    out of the slot (a few KB) so the socket writes can take their time without the writer
    lapping them. With `--record`, every record served is also appended to the recording."""

    def __init__(self, ring: shm.ByteRing, recorder: MjpegRecorder | Mp4Recorder | None = None) -> None:
        self.ring = ring
        self.torn = 0
        self.recorder = recorder

    def latest(self, timeout: float) -> JpegRecord | None:
        rec = self.ring.read(timeout=timeout)
        if rec is None:
            return None
        data = bytes(rec)
        if not rec.valid():
            self.torn += 1
            return None
        record = JpegRecord.unpack(data)
        if self.recorder is not None:
            self.recorder.put(record)
        return record


class BusEncoderControl:
    """`EncoderControl` over the bus: the encode stage follows ``serve.encode_request``."""

    def __init__(self, ctx: StageContext) -> None:
        self.ctx = ctx

    def demand(self, keyframe: bool = False, jpeg: bool = False, reason: str = "", video: bool | None = None) -> None:
        self.ctx.publish(EncodeRequest(keyframe=keyframe, jpeg=jpeg, video=video is not False, reason=reason[:200]))


def tls_context(ctx: StageContext) -> ssl.SSLContext | None:
    """The server's TLS context from ``serve.tls_cert``/``tls_key``; for ``self-signed``, a
    certificate made now in the run's private directory, its fingerprint logged for people."""
    serve = ctx.settings.serve
    if serve.tls_cert is None:
        return None
    if serve.tls_cert == SELF_SIGNED:
        cert = self_signed(serve.host, directory=ctx.endpoints.directory / "tls")
        ctx.publish(LogLine(stage=ctx.name, level="info",
                            text=f"viewer TLS: self-signed certificate, SHA-256 {cert.fingerprint} "
                                 f"(valid until {cert.not_after:%Y-%m-%d %H:%M} UTC)"))
        return server_context(cert.cert, cert.key)
    assert serve.tls_key is not None  # settings refuse a certificate without its key
    return server_context(serve.tls_cert, serve.tls_key)


class BusPrompts:
    def __init__(self, ctx: StageContext) -> None:
        self.ctx = ctx

    def submit(self, prompt: ports.Prompt) -> None:
        self.ctx.publish(Prompt(trace_id=prompt.trace_id, text=prompt.text, source="typed"))


class RingAudio:
    """`AudioSink` into the audio ring: int16 PCM at 16 kHz regrouped into 512-sample chunks."""

    def __init__(self, ring: shm.FrameRing | None) -> None:
        self.ring = ring
        self.pending = np.zeros(0, np.float32)
        self.lock = threading.Lock()

    def push(self, pcm: npt.NDArray[np.int16], t_ns: int, client: str) -> None:
        if self.ring is None:
            return
        with self.lock:
            self.pending = np.concatenate([self.pending, pcm.astype(np.float32) / 32768.0])
            while len(self.pending) >= CHUNK:
                with self.ring.write() as slot:
                    slot.array[:] = self.pending[:CHUNK]
                    slot.meta.t_source_ns = t_ns
                self.pending = self.pending[CHUNK:]


def _forward_events(ctx: StageContext, server: StreamServer) -> None:
    sub = ctx.subscribe(["listen.transcript", "nlp.intent", "world.applied"])
    try:
        while not ctx.stop.is_set():
            got = sub.recv(timeout=0.2)
            if got is None:
                continue
            _, msg = got
            event: dict[str, Any] | None = None
            if isinstance(msg, (TranscriptPartial, TranscriptFinal)):
                event = {"type": "transcript", "text": msg.text, "final": isinstance(msg, TranscriptFinal),
                         "source": "speech", "trace": str(msg.trace_id)}
            elif isinstance(msg, Intent):
                for word, weight in zip(msg.keywords, msg.weights):
                    server.post_event({"type": "intent", "intent": word, "weight": weight, "prompt": msg.prompt,
                                       "trace": str(msg.trace_id)})
            elif isinstance(msg, WorldApplied):
                event = {"type": "applied", "frame": msg.frame, "trace": str(msg.trace_id)}
            if event is not None:
                server.post_event(event)
    finally:
        sub.close()


def record_path(ctx: StageContext) -> Path:
    """Where this serve process records: ``--record``'s path the first time in a run; after a
    restart, a numbered part beside it (``out.avi`` -> ``out.part2.avi``), so a restart never
    truncates what the run already recorded. The count lives in the run's private directory."""
    assert ctx.settings.record is not None
    marker = ctx.endpoints.directory / "serve-record-parts"
    try:
        part = int(marker.read_text()) + 1
    except (OSError, ValueError):
        part = 1
    marker.write_text(str(part))
    path = Path(ctx.settings.record)
    return path if part == 1 else path.with_name(f"{path.stem}.part{part}{path.suffix}")


def main(ctx: StageContext) -> None:
    cfg = ctx.settings
    jpeg = shm.ByteRing.attach(ctx.rings["jpeg"])
    audio = shm.FrameRing.attach(ctx.rings["audio"]) if cfg.capture.source == "browser" else None
    recorder = open_recorder(record_path(ctx), fps=cfg.world.fps) if cfg.record else None
    if recorder is not None:
        ctx.log.info("recording the stream to %s", recorder.path)
    source = JpegRingSource(jpeg, recorder)
    server = StreamServer(source, BusPrompts(ctx), RingAudio(audio), host=cfg.serve.host, port=cfg.serve.port,
                          token=cfg.serve.token, control=BusEncoderControl(ctx), ssl_context=tls_context(ctx))
    server.start_in_thread()
    # Published past the log level: the supervisor learns the viewer's address from this line.
    ctx.publish(LogLine(stage=ctx.name, level="info", text=f"viewer: {server.url}"))
    ctx.status.update(url=server.url)
    events = threading.Thread(target=_forward_events, args=(ctx, server), name="events", daemon=True)
    events.start()
    try:
        while not ctx.stop.wait(0.25):
            ctx.tick()
            ctx.status.update(clients=len(server.clients), torn=source.torn, malformed=server.malformed)
    finally:
        server.stop_thread()
        events.join(1.0)
        jpeg.close()
        if recorder is not None:
            recorder.close()
        if audio is not None:
            audio.close()
