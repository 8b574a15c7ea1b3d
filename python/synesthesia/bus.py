"""The control plane over ZeroMQ: the event bus and request/reply commands (every process).

* :class:`EventProxy` is the bus: an XSUB/XPUB forwarder the supervisor hosts (in a thread with
  :meth:`EventProxy.start`, or as a whole process with :func:`run_proxy`). Publishers connect
  to its ``frontend``, subscribers to its ``backend``, so stages only know two addresses.
* :class:`Publisher` / :class:`Subscriber` send and receive typed messages on topics
  ``<stage>.<event>`` (subscriptions are ZeroMQ prefix matches: ``"nlp."``, ``"listen.transcript"``).
* :class:`CommandServer` / :class:`CommandClient` carry ``{"command", "args", "id"}`` requests
  and ``{"ok", "result", "error", "errno"}`` replies (ROUTER/DEALER, so a timed-out call never
  wedges the client the way a REQ socket would).

Receivers never die of a bad message: it is dropped, logged with its reason and counted in
``dropped`` (a :class:`collections.Counter` keyed by :attr:`MessageError.reason`).
Default endpoints are ``ipc://`` sockets in a private 0700 runtime directory.
"""

from __future__ import annotations

import errno as errno_codes
import itertools
import logging
import os
import stat
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import zmq

from synesthesia.errors import MessageError, SynesthesiaError
from synesthesia.messages import (
    MAX_MESSAGE_BYTES,
    CommandReply,
    CommandRequest,
    Message,
    decode,
    encode,
)
from synesthesia.priority import lower_niceness

__all__ = [
    "runtime_dir",
    "default_runtime_path",
    "Endpoints",
    "EventProxy",
    "run_proxy",
    "Publisher",
    "Subscriber",
    "CommandServer",
    "CommandClient",
    "Handler",
    "topic",
]

log = logging.getLogger("synesthesia.bus")

Handler = Callable[[Mapping[str, Any]], Any]

_GUARD_FACTOR = 16


def default_runtime_path() -> Path:
    """Where runs keep their private directories (not created here): ``$SYNESTHESIA_RUNTIME_DIR``,
    else ``$XDG_RUNTIME_DIR/synesthesia``, else ``<tmp>/synesthesia-<uid>``."""
    env = os.environ.get("SYNESTHESIA_RUNTIME_DIR")
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if env:
        return Path(env)
    if xdg and os.path.isdir(xdg):
        return Path(xdg) / "synesthesia"
    return Path(tempfile.gettempdir()) / f"synesthesia-{os.getuid()}"


def runtime_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The private directory for ipc sockets: ``path``, else ``$SYNESTHESIA_RUNTIME_DIR``, else
    ``$XDG_RUNTIME_DIR/synesthesia``, else ``<tmp>/synesthesia-<uid>``. Created 0700; an existing
    one must be ours and not group- or world-accessible (a socket there is a way into the run)."""
    p = Path(path) if path is not None else default_runtime_path()
    p.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = p.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise SynesthesiaError(f"runtime dir {p} is not a directory owned by uid {os.getuid()}")
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise SynesthesiaError(f"runtime dir {p} is accessible to other users (mode {stat.S_IMODE(st.st_mode):o}); use a private one")
    return p


@dataclass(frozen=True)
class Endpoints:
    """The addresses of one run's control plane."""

    events_in: str  # publishers connect here (the proxy's XSUB)
    events_out: str  # subscribers connect here (the proxy's XPUB)
    directory: Path
    run: str

    @classmethod
    def for_run(cls, run: str = "default", directory: str | os.PathLike[str] | None = None) -> Endpoints:
        d = runtime_dir(directory)
        if not run or "/" in run:
            raise ValueError(f"run: expected a non-empty name without '/', got {run!r}")
        return cls(f"ipc://{d}/{run}-events-in", f"ipc://{d}/{run}-events-out", d, run)

    def command(self, stage: str) -> str:
        """Where ``stage``'s command server listens."""
        return f"ipc://{self.directory}/{self.run}-{stage}-cmd"


def topic(stage: str, msg: Message | type[Message]) -> str:
    return f"{stage}.{msg.EVENT}"


def _context() -> zmq.Context[zmq.Socket[bytes]]:
    return zmq.Context.instance()


class EventProxy:
    """The event bus: forwards every publication from ``frontend`` (XSUB) to ``backend`` (XPUB)
    and subscriptions the other way. Run it in a thread (:meth:`start` / :meth:`stop`) or make
    it the body of a process (:func:`run_proxy`)."""

    def __init__(self, endpoints: Endpoints | None = None) -> None:
        self.endpoints = endpoints or Endpoints.for_run()
        # Its own context: terminating it is how another thread stops the blocking proxy call.
        self._ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def run(self) -> None:
        """Forward until :meth:`stop` (from another thread) or the process ends."""
        # before the first socket: the context's I/O thread starts then and inherits it
        lower_niceness()
        xsub = self._ctx.socket(zmq.XSUB)
        xpub = self._ctx.socket(zmq.XPUB)
        try:
            for s in (xsub, xpub):
                s.setsockopt(zmq.LINGER, 0)
            # A publisher sending frames far beyond the message limit is cut off at the proxy
            # (only its own connection drops); merely oversized ones reach receivers, which
            # count them.
            xsub.setsockopt(zmq.MAXMSGSIZE, _GUARD_FACTOR * MAX_MESSAGE_BYTES)
            xsub.bind(self.endpoints.events_in)
            xpub.bind(self.endpoints.events_out)
            self._ready.set()
            zmq.proxy(xsub, xpub)
        except zmq.ContextTerminated:
            pass
        except BaseException as e:
            self._error = e
            self._ready.set()
            raise
        finally:
            xsub.close(0)
            xpub.close(0)
            for ep in (self.endpoints.events_in, self.endpoints.events_out):
                _remove_ipc(ep)

    def start(self) -> EventProxy:
        """Run the proxy in a daemon thread; returns once it is bound."""
        self._thread = threading.Thread(target=self.run, name="synesthesia-event-proxy", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise SynesthesiaError(f"event proxy failed to start: {self._error}") from self._error
        return self

    def stop(self) -> None:
        """Stop a proxy started with :meth:`start` and remove its socket files."""
        if self._thread is None:
            return
        self._ctx.term()
        self._thread.join(10)
        self._thread = None

    def __enter__(self) -> EventProxy:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def run_proxy(endpoints: Endpoints) -> None:
    """Process entry point: run an :class:`EventProxy` until the process is terminated."""
    EventProxy(endpoints).run()


def _remove_ipc(endpoint: str) -> None:
    if endpoint.startswith("ipc://"):
        try:
            os.unlink(endpoint[len("ipc://") :])
        except OSError:
            pass


class Publisher:
    """Publishes typed messages on ``<stage>.<event>`` topics through the proxy."""

    def __init__(self, stage: str, endpoints: Endpoints | None = None, *, hwm: int = 1000) -> None:
        if not stage or "." in stage:
            raise ValueError(f"stage: expected a non-empty name without '.', got {stage!r}")
        self.stage = stage
        self._sock = _context().socket(zmq.PUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        # A slow bus drops events rather than blocking the stage (the render loop is sacred).
        self._sock.setsockopt(zmq.SNDHWM, hwm)
        self._sock.connect((endpoints or Endpoints.for_run()).events_in)

    def publish(self, msg: Message) -> None:
        """Send ``msg`` on topic ``<stage>.<msg.EVENT>``. Never blocks; :class:`MessageError`
        if it does not validate or exceeds the size limit."""
        self._sock.send_multipart([topic(self.stage, msg).encode(), encode(msg)], copy=False)

    def send_raw(self, topic_: str, payload: bytes) -> None:
        """Send bytes as-is (tests use it to inject malformed messages)."""
        self._sock.send_multipart([topic_.encode(), payload])

    def close(self) -> None:
        self._sock.close(0)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class _Receiver:
    def __init__(self) -> None:
        self.dropped: Counter[str] = Counter()
        self.received = 0

    def _drop(self, where: str, reason: str, detail: str) -> None:
        self.dropped[reason] += 1
        log.warning("dropped a message on %s: %s (%s)", where, reason, detail)


class Subscriber(_Receiver):
    """Receives typed messages for topic prefixes; bad ones are dropped and counted."""

    def __init__(self, topics: Iterable[str] = ("",), endpoints: Endpoints | None = None, *, limit: int = MAX_MESSAGE_BYTES) -> None:
        super().__init__()
        self.limit = limit
        self._sock = _context().socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        for t in topics:
            self._sock.setsockopt(zmq.SUBSCRIBE, t.encode())
        self._sock.connect((endpoints or Endpoints.for_run()).events_out)

    def recv(self, timeout: float | None = None) -> tuple[str, Message] | None:
        """The next good message as ``(topic, message)``, waiting up to ``timeout`` seconds
        (None: forever); ``None`` on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._sock.poll(None if left is None else int(left * 1000)):
                return None
            parts = self._sock.recv_multipart()
            if len(parts) != 2:
                self._drop("bus", "framing", f"{len(parts)} frames, expected topic and body")
                continue
            name = parts[0].decode("utf-8", "replace")
            try:
                msg = decode(parts[1], limit=self.limit)
            except MessageError as e:
                self._drop(name, e.reason, str(e))
                continue
            self.received += 1
            return name, msg

    def close(self) -> None:
        self._sock.close(0)

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class CommandServer(_Receiver):
    """Answers commands with registered handlers. A handler gets the request's ``args`` and
    returns the result (msgpack-encodable); ``ValueError``/``TypeError``/``KeyError`` become
    ``EINVAL`` replies, any other exception ``EIO``. Unknown commands get ``ENOSYS``, malformed
    requests ``EBADMSG`` (or ``EMSGSIZE``) and are counted in ``dropped``."""

    def __init__(self, endpoint: str, handlers: Mapping[str, Handler] | None = None, *, limit: int = MAX_MESSAGE_BYTES) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.limit = limit
        self.handlers: dict[str, Handler] = dict(handlers or {})
        self._sock = _context().socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        # Frames far beyond the limit are refused inside libzmq (it drops that peer's
        # connection) so Python never allocates them; between the two they are counted.
        self._sock.setsockopt(zmq.MAXMSGSIZE, _GUARD_FACTOR * limit)
        self._sock.bind(endpoint)

    def serve_once(self, timeout: float | None = None) -> bool:
        """Answer at most one request, waiting up to ``timeout`` seconds; True if one came."""
        if not self._sock.poll(None if timeout is None else int(timeout * 1000)):
            return False
        parts = self._sock.recv_multipart()
        if len(parts) < 2:
            self._drop(self.endpoint, "framing", f"{len(parts)} frames")
            return True
        route, body = parts[:-1], parts[-1]
        self._sock.send_multipart([*route, encode(self._answer(body))])
        return True

    def serve(self, stop: threading.Event) -> None:
        """Answer requests until ``stop`` is set (checked every 100 ms)."""
        while not stop.is_set():
            self.serve_once(0.1)

    def _answer(self, body: bytes) -> CommandReply:
        try:
            req = decode(body, limit=self.limit, expect=CommandRequest)
        except MessageError as e:
            self._drop(self.endpoint, e.reason, str(e))
            code = errno_codes.EMSGSIZE if e.reason == "oversized" else errno_codes.EBADMSG
            return CommandReply(id="", ok=False, error=f"{e.reason}: {e}", errno=code)
        assert isinstance(req, CommandRequest)
        self.received += 1
        handler = self.handlers.get(req.command)
        if handler is None:
            return CommandReply(id=req.id, ok=False, error=f"unknown command {req.command!r}", errno=errno_codes.ENOSYS)
        try:
            result = handler(req.args)
        except (ValueError, TypeError, KeyError) as e:
            return CommandReply(id=req.id, ok=False, error=f"{type(e).__name__}: {e}", errno=errno_codes.EINVAL)
        except Exception as e:
            log.exception("command %r failed", req.command)
            return CommandReply(id=req.id, ok=False, error=f"{type(e).__name__}: {e}", errno=errno_codes.EIO)
        reply = CommandReply(id=req.id, ok=True, result=result)
        try:
            encode(reply, limit=self.limit)
        except MessageError as e:
            return CommandReply(id=req.id, ok=False, error=f"result not sendable: {e}", errno=errno_codes.EMSGSIZE)
        return reply

    def close(self) -> None:
        self._sock.close(0)
        _remove_ipc(self.endpoint)

    def __enter__(self) -> CommandServer:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class CommandClient(_Receiver):
    """Sends commands to one :class:`CommandServer` and waits for the matching reply."""

    _ids = itertools.count(1)

    def __init__(self, endpoint: str, *, limit: int = MAX_MESSAGE_BYTES) -> None:
        super().__init__()
        self.limit = limit
        self._prefix = f"{os.getpid()}-{uuid.uuid4().hex[:8]}-"
        self._sock = _context().socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.connect(endpoint)
        self.endpoint = endpoint

    def call(self, command: str, args: Mapping[str, Any] | None = None, timeout: float | None = 5.0) -> CommandReply | None:
        """Send a command and return its reply, or ``None`` if none came within ``timeout``."""
        rid = f"{self._prefix}{next(self._ids)}"
        self.send_raw(encode(CommandRequest(command=command, args=dict(args or {}), id=rid), limit=self.limit))
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._sock.poll(None if left is None else int(left * 1000)):
                return None
            parts = self._sock.recv_multipart()
            try:
                reply = decode(parts[-1], limit=self.limit, expect=CommandReply)
            except MessageError as e:
                self._drop(self.endpoint, e.reason, str(e))
                continue
            assert isinstance(reply, CommandReply)
            # Replies to earlier calls that timed out arrive late; skip them.
            if reply.id == rid or (reply.id == "" and not reply.ok):
                self.received += 1
                return reply

    def send_raw(self, payload: bytes) -> None:
        """Send bytes as a request body as-is (tests use it to inject malformed requests)."""
        self._sock.send_multipart([b"", payload])

    def close(self) -> None:
        self._sock.close(0)

    def __enter__(self) -> CommandClient:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
