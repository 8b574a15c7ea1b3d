"""The viewer server: one HTTP + WebSocket endpoint for any number of browsers (serve process).

Built on aiohttp rather than websockets because one library gives us both halves on one port:
routing, the static viewer files, the WebSocket upgrade with a message-size limit, heartbeats,
and a test client, all on asyncio; websockets would need its own ``process_request`` hook to
serve the page and files.

Wire protocol on ``/ws`` (documented for the viewer and for plain clients):

server -> client
  - a text message ``{"type": "frame", "frame": N, "bytes": B, "width", "height", "mode",
    "quality", "scale", "trace": [...], "t": {hop: monotonic ns}, "codec", "key", "seq",
    "served": ns}`` immediately followed by one binary message holding that picture (B bytes):
    a complete JPEG file when ``codec`` is ``"jpeg"``, one H.264 Annex-B access unit when it is
    ``"h264"`` (``key``: an IDR with SPS/PPS in front, where a decoder can start). Trace ids,
    here and in every event, are decimal strings (64-bit ids do not survive a JavaScript number);
  - text events: ``hello`` (once, with the protocol version), ``transcript``, ``intent``, ``hud`` (once a second), ``error``
    and whatever else is posted with :meth:`StreamServer.post_event`.
client -> server (text JSON, at most 64 KiB)
  - ``{"type": "hello", "codecs": ["h264", "jpeg"]}`` what the page can decode; without it a
    client gets JPEG. A client that can decode H.264 gets it whenever the stream carries it;
  - ``{"type": "resync"}`` the page's decoder lost its place: nothing more until a key frame;
  - ``{"type": "prompt", "text": "..."}`` a typed prompt, handed to the prompt sink;
  - ``{"type": "ack", "frame": N}`` after drawing frame N (display latency is measured from it);
  - ``{"type": "mic", "state": "start", "rate": 16000, "format": "s16le"}`` / ``"stop"``; between
    them binary messages are little-endian int16 mono PCM at 16 kHz, handed to the audio sink.
Anything else is answered with an ``error`` event, counted and logged (repeats rate-limited); the
socket stays open. Decoding limits (depth, number size, valid strings) are in
:mod:`synesthesia.stream.protocol`; connection, idle, write-time and prompt-rate limits and the
Host/Origin check of a loopback bind are in :mod:`synesthesia.stream.limits`.

Each client has one pending-frame slot: a newer frame replaces an unsent one (counted as a drop
for that client), so a stalled client costs one slot and the transport's bounded buffer, and
never slows the others. A delta frame cannot replace another (the decoder needs every one since
the last key frame): H.264 records queue in order, a few at most, and an H.264 client that falls
behind (that queue full, or more than half a second of its stream still in the socket buffers),
and one that joins, gets nothing until the next key frame, which the server asks the encoder for
at once (``control``). Binding beyond loopback requires an access token (``?token=`` on the
page and the socket URL, or ``Authorization: Bearer``).
"""

from __future__ import annotations

import asyncio
import collections
import fcntl
import hmac
import ipaddress
import itertools
import json
import logging
import secrets
import socket
import ssl
import struct
import termios
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web

from synesthesia import tracing
from synesthesia.errors import StreamConfigError
from synesthesia.ratelimit import RepeatFilter, TokenBucket
from synesthesia.stream.limits import Limits, rebinding_refusal
from synesthesia.stream.ports import AudioSink, EncoderControl, Prompt, PromptSink, RecordSource
from synesthesia.stream.protocol import ProtocolError, decode_client_message
from synesthesia.stream.records import JpegRecord

__all__ = ["NsRing", "StreamServer", "is_loopback"]

log = logging.getLogger("synesthesia.stream.server")
log.addFilter(RepeatFilter())  # a peer sending junk must not write a line per message

MAX_MESSAGE = 1 << 16
MAX_PROMPT = 500
PCM_RATE = 16000
#: Bumped when a message changes shape; sent in the "hello" event.
PROTOCOL = 3  # 2: trace ids travel as decimal strings; 3: codec negotiation, H.264 frames
#: Codecs a page may name in its hello.
CLIENT_CODECS = ("h264", "jpeg")
#: How long the stream counts as carrying video after its last H.264 record.
VIDEO_LIVE_S = 1.0
#: A video client with more than this much of the stream still queued towards it (in the
#: server's buffer and the kernel's, sent or not yet acknowledged) is behind: it skips to the
#: next key frame instead of watching the past.
BEHIND_S = 0.5
BEHIND_MIN_BYTES = 32 * 1024
#: Most H.264 records waiting for one client's socket before it counts as behind.
VIDEO_QUEUE = 8
_EVENT_BACKLOG = 64
_trace_ids = itertools.count(1 << 32)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class NsRing:
    """The newest ``capacity`` durations (int ns), oldest first, in one buffer allocated up front.

    A deque of Python ints grows an object per entry until it is full: a viewer's 1024 display
    times took its first one to two minutes (one per acknowledged frame), so a fresh serve
    process kept growing well past its start. This costs its whole size at once and never more.
    Reads as an array (``np.asarray``), has a length, is false while empty."""

    __slots__ = ("_buf", "_n", "_next")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity: must be at least 1, got {capacity}")
        self._buf = np.zeros(capacity, np.int64)
        self._n = self._next = 0

    def append(self, value: int) -> None:
        self._buf[self._next] = value
        self._next = (self._next + 1) % len(self._buf)
        self._n = min(self._n + 1, len(self._buf))

    def clear(self) -> None:
        self._n = self._next = 0

    def __len__(self) -> int:
        return self._n

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray[Any, Any]:
        cap = len(self._buf)
        out = self._buf[:self._n].copy() if self._n < cap else np.roll(self._buf, -self._next)
        return out if dtype is None else out.astype(dtype, copy=False)


@dataclass(eq=False)
class _Client:
    id: str
    ws: web.WebSocketResponse
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    transport: asyncio.Transport | None = None
    pending: tuple[JpegRecord, str, bytes] | None = None
    #: H.264 records not yet sent, oldest first.
    video: list[tuple[JpegRecord, str, bytes]] = field(default_factory=list)
    events: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=_EVENT_BACKLOG))
    sent_at: collections.OrderedDict[int, int] = field(default_factory=collections.OrderedDict)
    mic: bool = False
    codecs: frozenset[str] = frozenset({"jpeg"})
    #: An H.264 client waits for a key frame (just joined, fell behind, or its decoder failed).
    need_key: bool = True
    frames: int = 0
    bytes: int = 0
    dropped: int = 0
    malformed: int = 0
    window: collections.deque[tuple[int, int]] = field(default_factory=lambda: collections.deque(maxlen=256))
    display_ns: NsRing = field(default_factory=lambda: NsRing(64))
    #: encoded -> the page's ack of that frame (drawn), per frame: the codec comparison's figure.
    encoded_at: collections.OrderedDict[int, int] = field(default_factory=collections.OrderedDict)
    shown_ns: NsRing = field(default_factory=lambda: NsRing(1024))
    prompt_bucket: TokenBucket | None = None
    #: monotonic time since which its socket has had bytes it did not read (0: none queued)
    stalled_since: float = 0.0


class StreamServer:
    """Serves the viewer and streams the newest JPEG records to every connected browser."""

    def __init__(
        self,
        records: RecordSource | None,
        prompts: PromptSink | None = None,
        audio: AudioSink | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 8765,
        token: str | None = None,
        control: EncoderControl | None = None,
        ssl_context: ssl.SSLContext | None = None,
        limits: Limits | None = None,
    ) -> None:
        if not 0 <= port <= 65535:
            raise StreamConfigError(f"port: must be 0..65535, got {port}")
        if token is not None and len(token) < 16:
            raise StreamConfigError("token: must be at least 16 characters")
        self.limits = limits or Limits()
        self.records = records
        self.prompts = prompts
        self.audio = audio
        self.control = control
        self.ssl_context = ssl_context
        self.host = host
        self.port = port
        # Loopback needs no token unless one was asked for; anything else always has one.
        self.token = token if token is not None or is_loopback(host) else secrets.token_urlsafe(18)
        self.clients: set[_Client] = set()
        self.malformed = 0
        self.refused = 0
        self.published = 0
        #: frame put on the wire: ``sent - encoded`` in ns, for the benchmark and the HUD.
        self.wire_ns = NsRing(4096)
        self._encode_stats: dict[str, Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._stop = threading.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._pump: threading.Thread | None = None
        self._ready_fd: int | None = None
        self._ids = itertools.count(1)
        # trace bookkeeping: hop -> trace ids already stamped; frame -> its trace ids (for acks)
        self._traced: dict[str, collections.OrderedDict[int, None]] = {}
        self._frame_traces: collections.OrderedDict[int, tuple[int, ...]] = collections.OrderedDict()
        self._video_seq: int | None = None
        self._video_at = 0.0
        self.keyframe_requests = 0

    # ----------------------------------------------------------------- lifecycle

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/ws", self._socket)
        app.router.add_get("/viewer/{name}", self._asset)
        return app

    @property
    def url(self) -> str:
        # A wildcard bind is reached by this machine's name, not by the wildcard address.
        host = socket.gethostname() if self.host in ("0.0.0.0", "::", "") else self.host
        host = f"[{host}]" if ":" in host else host
        query = f"/?token={self.token}" if self.token else "/"
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{host}:{self.port}{query}"

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False,
                                     keepalive_timeout=self.limits.idle_timeout_s)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context)
        await site.start()
        if self.port == 0 and self._runner.addresses:
            self.port = int(self._runner.addresses[0][1])
        self._tasks.append(asyncio.create_task(self._hud_ticker()))
        self._tasks.append(asyncio.create_task(self._watchdog()))
        fileno = getattr(self.records, "fileno", None)
        if self.records is not None and callable(fileno):
            self._ready_fd = fileno()
            self._loop.add_reader(self._ready_fd, self._on_ready)
        elif self.records is not None:
            # A source without a descriptor blocks; one thread waits on it and hops each record
            # onto the loop.
            self._pump = threading.Thread(target=self._pump_records, name="serve-pump", daemon=True)
            self._pump.start()

    def _on_ready(self) -> None:
        assert self.records is not None
        # Drain: an in-order source (video) may hold several records per wake-up.
        while (record := self.records.latest(0.0)) is not None:
            self.publish(record)

    async def stop(self) -> None:
        self._stop.set()
        if self._ready_fd is not None and self._loop is not None:
            self._loop.remove_reader(self._ready_fd)
            self._ready_fd = None
        for task in self._tasks:
            task.cancel()
        for client in list(self.clients):
            # A stalled peer never answers the closing handshake; do not let it hold shutdown.
            try:
                await asyncio.wait_for(client.ws.close(), 1.0)
            except (asyncio.TimeoutError, ConnectionError):
                pass
        if self._runner is not None:
            await self._runner.cleanup()
        if self._pump is not None:
            await asyncio.to_thread(self._pump.join, 2.0)

    def _pump_records(self) -> None:
        assert self.records is not None and self._loop is not None
        while not self._stop.is_set():
            record = self.records.latest(0.2)
            if record is not None and not self._stop.is_set():
                try:
                    self._loop.call_soon_threadsafe(self.publish, record)
                except RuntimeError:  # the loop closed under us: shutting down
                    return

    # ----------------------------------------------------------------- fan-out

    def _trace_hop(self, hop: str, trace_ids: tuple[int, ...], t_ns: int) -> None:
        """Stamp the first time any client passes `hop` for each trace (a no-op unless the
        run's trace log is on): `sent` when a frame's last byte left, `displayed` on its ack."""
        if not trace_ids or not tracing.enabled():
            return
        seen = self._traced.setdefault(hop, collections.OrderedDict())
        for tid in trace_ids:
            if tid and tid not in seen:
                seen[tid] = None
                if len(seen) > 1024:
                    seen.popitem(last=False)
                tracing.stamp(hop, tid, t_ns, stage="serve")

    def publish(self, record: JpegRecord) -> None:
        """Offer a record to every client (call on the loop). Never waits for any of them."""
        self.published += 1
        if record.trace_ids:
            self._frame_traces[record.frame] = tuple(record.trace_ids)
            if len(self._frame_traces) > 256:
                self._frame_traces.popitem(last=False)
        video = record.codec == "h264"
        if video:
            gap = self._video_seq is not None and record.seq != (self._video_seq + 1) & 0xFFFFFFFF
            self._video_seq = record.seq
            self._video_at = time.monotonic()
            if gap:
                # A record never reached us (the ring lapped this reader): every decoder is lost.
                for client in self.clients:
                    client.need_key = True
        if not self.clients:
            return
        # Serialised once for every client; "served" is when the serve stage got the record.
        meta = json.dumps(record.wire_meta(served=time.monotonic_ns()), separators=(",", ":"))
        item = (record, meta, bytes(record.jpeg))
        want_key = ""
        for client in self.clients:
            if (self._codec_for(client) == "h264") != video:
                continue
            if video:
                behind = self._behind(client) or len(client.video) >= VIDEO_QUEUE
                if behind or record.key:
                    # A client behind should not watch the past, and a key frame makes what is
                    # queued before it worthless: skip to the key frame.
                    client.dropped += len(client.video)
                    client.video.clear()
                    client.need_key = client.need_key or behind
                if client.need_key and (behind or not record.key):
                    client.dropped += 1
                    if not behind:  # asked for once it has caught up, so that it can use it
                        want_key = want_key or f"client {client.id} waits for a key frame"
                    continue
                client.need_key = False
                # Deltas queue (in order, a few at most): each one is needed to decode the next.
                client.video.append(item)
                client.wake.set()
                continue
            if client.pending is not None:
                client.dropped += 1
            client.pending = item
            client.wake.set()
        if want_key:
            self._request(keyframe=True, reason=want_key)

    @staticmethod
    def _behind(client: _Client) -> bool:
        """Whether more than :data:`BEHIND_S` of this client's stream is still queued."""
        transport = client.transport
        if transport is None:
            return False
        queued = transport.get_write_buffer_size()
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                queued += struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
            except OSError:
                pass  # not a TCP socket on Linux: the server's own buffer is what we know
        now = time.monotonic_ns()
        rate = sum(n for t, n in client.window if now - t < 2_000_000_000) / 2.0
        return queued > max(BEHIND_MIN_BYTES, BEHIND_S * rate)

    def _video_live(self) -> bool:
        return self._video_seq is not None and time.monotonic() - self._video_at < VIDEO_LIVE_S

    def _codec_for(self, client: _Client) -> str:
        return "h264" if "h264" in client.codecs and self._video_live() else "jpeg"

    def _jpeg_needed(self) -> bool:
        return any("h264" not in c.codecs for c in self.clients)

    def _video_needed(self) -> bool:
        return any("h264" in c.codecs for c in self.clients)

    def _request(self, keyframe: bool = False, reason: str = "") -> None:
        """Tell the encoder what the viewers need now (no-op without a control port)."""
        if self.control is None:
            return
        self.keyframe_requests += keyframe
        try:
            self.control.demand(keyframe=keyframe, jpeg=self._jpeg_needed(), video=self._video_needed(), reason=reason)
        except Exception:  # the control path is advisory: a failure must not cost a frame
            log.warning("encoder request failed", exc_info=True)

    def post_event(self, event: dict[str, Any]) -> None:
        """Send an event to every viewer. Thread-safe: bus subscribers call it from their thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._broadcast(event)
        else:
            loop.call_soon_threadsafe(self._broadcast, event)

    def _broadcast(self, event: dict[str, Any]) -> None:
        if event.get("type") == "encode.stats":
            self._encode_stats = event
        text = json.dumps(event, separators=(",", ":"))
        for client in self.clients:
            self._queue(client, text)

    @staticmethod
    def _queue(client: _Client, text: str) -> None:
        client.events.append(text)
        client.wake.set()

    async def _sender(self, client: _Client) -> None:
        ws = client.ws
        while not ws.closed:
            await client.wake.wait()
            client.wake.clear()
            while client.events and not ws.closed:
                await ws.send_str(client.events.popleft())
            while client.video and not ws.closed:
                await self._send_frame(client, client.video.pop(0))
            item, client.pending = client.pending, None
            if item is None or ws.closed:
                continue
            if client.transport is not None and client.transport.get_write_buffer_size() > 0:
                # The peer has not taken the last JPEG yet: skip this one rather than queue it,
                # so a viewer that does not read costs at most one frame of memory.
                client.dropped += 1
                continue
            await self._send_frame(client, item)

    async def _send_frame(self, client: _Client, item: tuple[JpegRecord, str, bytes]) -> None:
        record, meta, data = item
        await asyncio.wait_for(client.ws.send_str(meta), self.limits.write_timeout_s)
        await asyncio.wait_for(client.ws.send_bytes(data), self.limits.write_timeout_s)
        done = time.monotonic_ns()
        encoded = record.t.get("encoded")
        if encoded is not None:
            self.wire_ns.append(done - encoded)
        self._trace_hop("sent", record.trace_ids, done)
        client.frames += 1
        client.bytes += len(record.jpeg)
        client.window.append((done, len(record.jpeg)))
        client.sent_at[record.frame] = done
        if len(client.sent_at) > 128:
            client.sent_at.popitem(last=False)
        if encoded is not None:
            client.encoded_at[record.frame] = encoded
            if len(client.encoded_at) > 128:
                client.encoded_at.popitem(last=False)

    async def _watchdog(self) -> None:
        """Drop viewers that leave their socket unread for ``write_timeout_s``: aborted, since a
        polite close would wait for the very bytes they do not read."""
        while True:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            for client in list(self.clients):
                transport = client.transport
                if transport is None or transport.get_write_buffer_size() == 0:
                    client.stalled_since = 0.0
                elif not client.stalled_since:
                    client.stalled_since = now
                elif now - client.stalled_since > self.limits.write_timeout_s:
                    log.warning("client %s: dropped, its socket was not read for %.0f s", client.id, now - client.stalled_since)
                    transport.abort()

    async def _hud_ticker(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            # Repeated every second: an encoder that restarted learns what the viewers need.
            self._request(keyframe=False, reason="periodic")
            now = time.monotonic_ns()
            wire = (np.asarray(self.wire_ns, dtype=np.float64)[-256:] if self.wire_ns else np.zeros(1)) / 1e6
            for client in self.clients:
                recent = [(t, n) for t, n in client.window if now - t < 2_000_000_000]
                span = (now - recent[0][0]) / 1e9 if len(recent) > 1 else 0.0
                disp = (np.asarray(client.display_ns, dtype=np.float64) if client.display_ns else np.zeros(1)) / 1e6
                hud = {
                    "type": "hud",
                    "client": client.id,
                    "clients": len(self.clients),
                    "fps": round((len(recent) - 1) / span, 1) if span > 0 else 0.0,
                    "kbps": round(sum(n for _, n in recent[1:]) * 8 / span / 1e3, 1) if span > 0 else 0.0,
                    "dropped": client.dropped,
                    "codec": self._codec_for(client),
                    "encoder": self._encode_stats,
                    "latency_ms": {
                        "encoded_to_wire_p99": round(float(np.percentile(wire, 99)), 3),
                        "wire_to_displayed_p50": round(float(np.median(disp)), 2),
                    },
                }
                self._queue(client, json.dumps(hud, separators=(",", ":")))

    # ----------------------------------------------------------------- HTTP

    def _authorized(self, request: web.Request) -> bool:
        if self.token is None:
            return True
        given = request.query.get("token", "")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            given = auth[7:]
        try:
            # Header bytes that are not UTF-8 arrive as surrogate escapes, which cannot encode.
            given_bytes = given.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return hmac.compare_digest(given_bytes, self.token.encode())

    def _gate(self, request: web.Request) -> web.Response | None:
        """A refusal for a request this server must not answer (token, DNS rebinding), or None."""
        if not self._authorized(request):
            return self._refuse(request)
        if self.token is None:
            why = rebinding_refusal(request.headers.get("Host"), request.headers.get("Origin"), self.host, self.port)
            if why is not None:
                self.refused += 1
                log.warning("refused %s %s: %s (a loopback viewer answers only its own address)", request.method,
                            request.path, why)
                return web.Response(status=403, text=f"403: {why}; open the viewer at {self.url}\n")
        return None

    def _refuse(self, request: web.Request) -> web.Response:
        self.refused += 1
        log.warning("refused %s %s from %s: missing or wrong token", request.method, request.path, request.remote)
        return web.Response(status=401, text="401: this viewer needs its access token (?token=...)\n")

    async def _page(self, request: web.Request) -> web.StreamResponse:
        refusal = self._gate(request)
        if refusal is not None:
            return refusal
        body = resources.files("synesthesia.viewer").joinpath("index.html").read_bytes()
        return web.Response(body=body, content_type="text/html", headers={"Cache-Control": "no-store"})

    async def _asset(self, request: web.Request) -> web.StreamResponse:
        # The scripts hold no secrets; only the page and the socket are gated by the token.
        if self.token is None and (refusal := self._gate(request)) is not None:
            return refusal
        name = request.match_info["name"]
        types = {".js": "text/javascript", ".css": "text/css"}
        suffix = name[name.rfind(".") :] if "." in name else ""
        if "/" in name or name.startswith(".") or suffix not in types:
            raise web.HTTPNotFound()
        path = resources.files("synesthesia.viewer").joinpath(name)
        if not path.is_file():
            raise web.HTTPNotFound()
        return web.Response(body=path.read_bytes(), content_type=types[suffix], headers={"Cache-Control": "no-store"})

    # ----------------------------------------------------------------- WebSocket

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        refusal = self._gate(request)
        if refusal is not None:
            return refusal
        origin = request.headers.get("Origin")
        if origin is not None and origin.split("://", 1)[-1] != request.host:
            # Another site's page must not drive a viewer it was not served from.
            self.refused += 1
            log.warning("refused WebSocket from origin %s (host %s)", origin, request.host)
            return web.Response(status=403, text="403: cross-origin WebSocket\n")
        # JPEG does not deflate; compression would only cost CPU per client.
        if len(self.clients) >= self.limits.max_clients:
            self.refused += 1
            log.warning("refused a viewer: %d connected, the limit", len(self.clients))
            return web.Response(status=503, text=f"503: {len(self.clients)} viewers connected, the limit\n")
        ws = web.WebSocketResponse(compress=False, max_msg_size=MAX_MESSAGE, heartbeat=15.0)
        await ws.prepare(request)
        client = _Client(id=f"c{next(self._ids)}", ws=ws, transport=request.transport,
                         prompt_bucket=TokenBucket(self.limits.prompt_rate, self.limits.prompt_burst))
        self._queue(client, json.dumps({"type": "hello", "protocol": PROTOCOL, "client": client.id, "pcm_rate": PCM_RATE}))
        self.clients.add(client)
        self._request(reason=f"client {client.id} connected")  # JPEG until its hello says more
        sender = asyncio.create_task(self._sender(client))
        log.info("client %s connected from %s (%d connected)", client.id, request.remote, len(self.clients))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_text(client, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self._on_binary(client, msg.data)
                elif msg.type == WSMsgType.ERROR:
                    self._malformed(client, f"protocol error: {ws.exception()}")
        finally:
            self.clients.discard(client)
            if request.transport is not None and request.transport.get_write_buffer_size() > 0:
                request.transport.abort()  # a close would wait for a peer that does not read
            sender.cancel()
            try:
                await sender
            except (asyncio.CancelledError, ConnectionError, asyncio.TimeoutError):
                pass
            except Exception:  # a send that failed as the peer vanished; nobody else is affected
                log.debug("client %s sender ended with an error", client.id, exc_info=True)
            log.info("client %s gone (%d frames, %d dropped)", client.id, client.frames, client.dropped)
        return ws

    def _malformed(self, client: _Client, reason: str) -> None:
        self.malformed += 1
        client.malformed += 1
        log.warning("client %s: rejected message: %s", client.id, reason)
        self._queue(client, json.dumps({"type": "error", "error": reason}))

    def _on_text(self, client: _Client, data: str) -> None:
        try:
            msg = decode_client_message(data)
        except ProtocolError as exc:
            return self._malformed(client, str(exc))
        kind = msg["type"]
        if kind == "hello":
            codecs = msg.get("codecs")
            if not isinstance(codecs, list) or not all(isinstance(c, str) for c in codecs):
                return self._malformed(client, "hello: 'codecs' must be a list of strings")
            client.codecs = frozenset(c for c in codecs if c in CLIENT_CODECS) or frozenset({"jpeg"})
            client.need_key = True
            log.info("client %s decodes %s", client.id, ", ".join(sorted(client.codecs)))
            self._request(keyframe="h264" in client.codecs, reason=f"client {client.id} joined")
        elif kind == "resync":
            client.need_key = True
            self._request(keyframe=True, reason=f"client {client.id} resynchronises")
        elif kind == "prompt":
            text = msg.get("text")
            if not isinstance(text, str) or not text.strip():
                return self._malformed(client, "prompt: 'text' must be a non-empty string")
            if len(text) > MAX_PROMPT:
                return self._malformed(client, f"prompt: 'text' longer than {MAX_PROMPT} characters")
            if client.prompt_bucket is not None and not client.prompt_bucket.take():
                return self._malformed(client, f"prompt: more than {self.limits.prompt_rate:g} per second; slow down")
            prompt = Prompt(text.strip(), client.id, time.monotonic_ns(), next(_trace_ids))
            if self.prompts is not None:
                self.prompts.submit(prompt)
            self._queue(client, json.dumps({"type": "prompt.accepted", "text": prompt.text, "trace": str(prompt.trace_id)}))
        elif kind == "ack":
            frame = msg.get("frame")
            if isinstance(frame, bool) or not isinstance(frame, int):
                return self._malformed(client, "ack: 'frame' must be an integer")
            sent = client.sent_at.get(frame)
            self._trace_hop("displayed", self._frame_traces.get(frame, ()), time.monotonic_ns())
            if sent is not None:
                # Includes the ack's trip back: an upper bound, measured rather than guessed.
                client.display_ns.append(time.monotonic_ns() - sent)
            encoded = client.encoded_at.get(frame)
            if encoded is not None:
                client.shown_ns.append(time.monotonic_ns() - encoded)
        elif kind == "mic":
            state = msg.get("state")
            if state == "start":
                if msg.get("rate") != PCM_RATE or msg.get("format") != "s16le":
                    return self._malformed(client, f"mic: only rate {PCM_RATE} and format 's16le' are accepted")
                client.mic = True
                log.info("client %s: microphone on", client.id)
            elif state == "stop":
                client.mic = False
                log.info("client %s: microphone off", client.id)
            else:
                return self._malformed(client, "mic: 'state' must be 'start' or 'stop'")
        else:
            return self._malformed(client, f"unknown message type {kind[:40]!r}")

    def _on_binary(self, client: _Client, data: bytes) -> None:
        if not client.mic:
            return self._malformed(client, "binary message without a mic 'start' (only PCM goes client -> server)")
        if len(data) % 2:
            return self._malformed(client, f"PCM: odd byte count {len(data)} for 16-bit samples")
        if self.audio is not None and data:
            self.audio.push(np.frombuffer(data, dtype="<i2"), time.monotonic_ns(), client.id)

    # ----------------------------------------------------------------- running in a thread

    def start_in_thread(self, timeout: float = 10.0) -> threading.Thread:
        """Run the server on its own event loop in a daemon thread (tests, benchmarks, the demo)."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # reported to the caller below
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.stop())
                loop.close()

        thread = threading.Thread(target=main, name="serve-loop", daemon=True)
        thread.start()
        if not ready.wait(timeout):
            raise StreamConfigError("server: did not start in time")
        if failure:
            raise failure[0]
        self._thread = thread
        return thread

    def stop_thread(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, getattr(self, "_thread", None)
        if loop is None or thread is None:
            return
        self._stop.set()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
