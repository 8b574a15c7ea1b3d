"""The viewer server: one HTTP + WebSocket endpoint for any number of browsers (serve process).

Built on aiohttp rather than websockets because one library gives us both halves on one port:
routing, the static viewer files, the WebSocket upgrade with a message-size limit, heartbeats,
and a test client, all on asyncio; websockets would need its own ``process_request`` hook to
serve the page and files.

Wire protocol on ``/ws`` (documented for the viewer and for plain clients):

server -> client
  - a text message ``{"type": "frame", "frame": N, "bytes": B, "width", "height", "mode",
    "quality", "scale", "trace": [...], "t": {hop: monotonic ns}, "served": ns}`` immediately
    followed by one binary message holding that complete JPEG file (B bytes); trace ids, here
    and in every event, are decimal strings (64-bit ids do not survive a JavaScript number);
  - text events: ``hello`` (once, with the protocol version), ``transcript``, ``intent``, ``hud`` (once a second), ``error``
    and whatever else is posted with :meth:`StreamServer.post_event`.
client -> server (text JSON, at most 64 KiB)
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
never slows the others. Binding beyond loopback requires an access token (``?token=`` on the
page and the socket URL, or ``Authorization: Bearer``).
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import ipaddress
import itertools
import json
import logging
import secrets
import socket
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
from synesthesia.stream.ports import AudioSink, Prompt, PromptSink, RecordSource
from synesthesia.stream.protocol import ProtocolError, decode_client_message
from synesthesia.stream.records import JpegRecord

__all__ = ["StreamServer", "is_loopback"]

log = logging.getLogger("synesthesia.stream.server")
log.addFilter(RepeatFilter())  # a peer sending junk must not write a line per message

MAX_MESSAGE = 1 << 16
MAX_PROMPT = 500
PCM_RATE = 16000
#: Bumped when a message changes shape; sent in the "hello" event.
PROTOCOL = 2  # 2: trace ids travel as decimal strings
_EVENT_BACKLOG = 64
_trace_ids = itertools.count(1 << 32)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(eq=False)
class _Client:
    id: str
    ws: web.WebSocketResponse
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    transport: asyncio.Transport | None = None
    pending: tuple[JpegRecord, str, bytes] | None = None
    events: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=_EVENT_BACKLOG))
    sent_at: collections.OrderedDict[int, int] = field(default_factory=collections.OrderedDict)
    mic: bool = False
    frames: int = 0
    bytes: int = 0
    dropped: int = 0
    malformed: int = 0
    window: collections.deque[tuple[int, int]] = field(default_factory=lambda: collections.deque(maxlen=256))
    display_ns: collections.deque[int] = field(default_factory=lambda: collections.deque(maxlen=64))
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
        self.host = host
        self.port = port
        # Loopback needs no token unless one was asked for; anything else always has one.
        self.token = token if token is not None or is_loopback(host) else secrets.token_urlsafe(18)
        self.clients: set[_Client] = set()
        self.malformed = 0
        self.refused = 0
        self.published = 0
        #: frame put on the wire: ``sent - encoded`` in ns, for the benchmark and the HUD.
        self.wire_ns: collections.deque[int] = collections.deque(maxlen=4096)
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
        return f"http://{host}:{self.port}{query}"

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False,
                                     keepalive_timeout=self.limits.idle_timeout_s)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
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
        record = self.records.latest(0.0)
        if record is not None:
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
        if not self.clients:
            return
        # Serialised once for every client; "served" is when the serve stage got the record.
        meta = json.dumps(record.wire_meta(served=time.monotonic_ns()), separators=(",", ":"))
        item = (record, meta, bytes(record.jpeg))
        for client in self.clients:
            if client.pending is not None:
                client.dropped += 1
            client.pending = item
            client.wake.set()

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
            item, client.pending = client.pending, None
            if item is None or ws.closed:
                continue
            if client.transport is not None and client.transport.get_write_buffer_size() > 0:
                # The peer has not taken the last frame yet: skip this one rather than queue
                # it, so a viewer that does not read costs at most one frame of memory.
                client.dropped += 1
                continue
            record, meta, jpeg = item
            await asyncio.wait_for(ws.send_str(meta), self.limits.write_timeout_s)
            await asyncio.wait_for(ws.send_bytes(jpeg), self.limits.write_timeout_s)
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
            now = time.monotonic_ns()
            wire = np.asarray(self.wire_ns or [0], dtype=np.float64)[-256:] / 1e6
            for client in self.clients:
                recent = [(t, n) for t, n in client.window if now - t < 2_000_000_000]
                span = (now - recent[0][0]) / 1e9 if len(recent) > 1 else 0.0
                disp = np.asarray(client.display_ns or [0], dtype=np.float64) / 1e6
                hud = {
                    "type": "hud",
                    "client": client.id,
                    "clients": len(self.clients),
                    "fps": round((len(recent) - 1) / span, 1) if span > 0 else 0.0,
                    "kbps": round(sum(n for _, n in recent[1:]) * 8 / span / 1e3, 1) if span > 0 else 0.0,
                    "dropped": client.dropped,
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
        if kind == "prompt":
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
