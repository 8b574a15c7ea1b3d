"""The body of every stage process: the shell a stage module runs inside.

Runs in each stage process (started by the supervisor with the `spawn` method). It makes the
process die with its supervisor, leaves SIGINT to the supervisor (which owns shutdown) and turns
SIGTERM into a stop flag, sends every log line to the bus tagged with the stage, publishes
heartbeats, answers the stage's command socket (`status`, `stop`, plus the stage's own), and
then calls the stage module's `main(ctx)`, which returns when `ctx.stop` is set.
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synesthesia.bus import CommandServer, Endpoints, Handler, Publisher, Subscriber
from synesthesia.errors import StageFatalError
from synesthesia.messages import Heartbeat, LogLine, Message
from synesthesia.ratelimit import RepeatFilter
from synesthesia.settings import Settings

__all__ = ["StageContext", "main", "FATAL_EXIT", "keep_heap"]

_PR_SET_PDEATHSIG = 1
# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: The largest mmap threshold glibc accepts on 64-bit: blocks under it come from the heap.
_MMAP_THRESHOLD_MAX = 32 << 20
#: The exit code of a stage that raised `StageFatalError`: the supervisor does not restart it
#: and ends the run (EX_CONFIG from sysexits.h).
FATAL_EXIT = 78


@dataclass
class StageContext:
    """What a stage gets: its settings, the bus, its rings' segment names and a stop flag."""

    name: str
    settings: Settings
    endpoints: Endpoints
    rings: dict[str, str]
    stop: threading.Event
    log: logging.Logger
    publisher: Publisher
    # The stage keeps this current; it rides on heartbeats and answers `status`.
    status: dict[str, Any] = field(default_factory=dict)
    commands: dict[str, Handler] = field(default_factory=dict)
    # 0 until the stage's loop first turns: a stage counts as running only from then on.
    last_tick: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def tick(self) -> None:
        """Call once per loop iteration: heartbeats only go out while the loop turns, so a
        stage stuck in a call is seen as dead, not kept alive by its heartbeat thread."""
        self.last_tick = time.monotonic()

    def idle(self) -> None:
        """Wait for the stop flag while staying alive (a stage with nothing left to do)."""
        while not self.stop.wait(0.1):
            self.tick()

    def publish(self, msg: Message) -> None:
        # Publisher sockets are not thread-safe; stages publish from a few threads.
        with self._lock:
            self.publisher.publish(msg)

    def subscribe(self, topics: Iterable[str]) -> Subscriber:
        return Subscriber(topics, self.endpoints)


class _BusLogHandler(logging.Handler):
    def __init__(self, ctx_ref: list[StageContext]) -> None:
        super().__init__()
        self._ctx_ref = ctx_ref
        # A line a peer can trigger at will must not flood the bus and the supervisor's terminal.
        self.addFilter(RepeatFilter())

    def emit(self, record: logging.LogRecord) -> None:
        if not self._ctx_ref:
            return
        ctx = self._ctx_ref[0]
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            ctx.publish(LogLine(stage=ctx.name, level=record.levelname.lower(), text=text[:8000],
                                trace_id=int(getattr(record, "trace_id", 0) or 0)))
        except Exception:  # logging must never take the stage down
            pass


def _die_with_parent() -> None:
    """Ask the kernel to SIGTERM this process when the supervisor dies, even by SIGKILL."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def keep_heap() -> bool:
    """Make glibc's allocator keep the heaps this process grew: freed memory is not trimmed back
    to the kernel, and blocks up to 32 MiB come from the heap instead of from mappings of their
    own. Called first thing in every stage process; False where the C library has no
    ``mallopt`` (not glibc).

    By default glibc hands memory back from the top of a heap once enough is free there, and
    moves that threshold as it sees big blocks come and go. The listen stage's RSS then followed
    where its recognizer's last buffers happened to land: it grew and shrank by 2-3 MiB from one
    utterance to the next for minutes, which the soak read as growth (or shrinking). Kept, a
    heap is as big as the most it ever held, reached once the largest decode has run (see
    :func:`synesthesia.stages.listen.warm_up`), and its pages are not faulted in again on every
    decode. A leak still shows: memory in use still grows it. (One arena for all threads,
    ``M_ARENA_MAX=1``, was tried too: the listen stage then grew 0.75 MiB a minute for as long
    as it ran, its recognizer's big buffers and the other threads' small long-lived blocks
    fragmenting one heap.)"""
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    done = [mallopt(param, value) for param, value in (
        (_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX), (_M_TRIM_THRESHOLD, 2**31 - 1))]
    return all(ok == 1 for ok in done)


def main(
    name: str,
    module: str,
    settings: dict[str, Any],
    endpoints: tuple[str, str, str, str],
    rings: dict[str, str],
    log_file: str | None = None,
) -> None:
    keep_heap()
    parent = os.getppid()
    _die_with_parent()
    if os.getppid() != parent:  # the supervisor died before prctl took effect
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if log_file:
        # Anything written straight to stderr (a native crash, a warning) lands in the run's
        # per-stage file instead of scribbling over the supervisor's terminal.
        fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 2)
        os.close(fd)
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    cfg = Settings.from_dict(settings)
    ctx_ref: list[StageContext] = []
    root = logging.getLogger()
    root.handlers[:] = [_BusLogHandler(ctx_ref)]
    root.setLevel(cfg.log_level.upper())
    log = logging.getLogger(f"synesthesia.{name}")
    ep = Endpoints(endpoints[0], endpoints[1], Path(endpoints[2]), endpoints[3])
    publisher = Publisher(name, ep)
    ctx = StageContext(name, cfg, ep, dict(rings), stop, log, publisher)
    ctx_ref.append(ctx)
    # PUB/SUB joins are asynchronous: give the connection a moment so the first lines arrive.
    time.sleep(0.05)

    def status(_: Any) -> dict[str, Any]:
        return {"name": name, "pid": os.getpid(), **ctx.status}

    def stop_cmd(_: Any) -> str:
        stop.set()
        return "stopping"

    server = CommandServer(ep.command(name), {"status": status, "stop": stop_cmd})
    server.handlers.update(ctx.commands)

    def serve() -> None:
        while not stop.is_set():
            server.handlers.update(ctx.commands)
            server.serve_once(0.1)

    def heartbeat() -> None:
        seq = 0
        interval = cfg.supervisor.heartbeat_interval_s
        while not stop.wait(interval):
            if time.monotonic() - ctx.last_tick > cfg.supervisor.heartbeat_timeout_s:
                continue  # the stage's loop is stuck: stay silent and let the supervisor act
            seq += 1
            try:
                ctx.publish(Heartbeat(stage=name, pid=os.getpid(), seq=seq))
            except Exception:
                log.exception("heartbeat failed")

    threads = [threading.Thread(target=serve, name="commands", daemon=True),
               threading.Thread(target=heartbeat, name="heartbeat", daemon=True)]
    for t in threads:
        t.start()
    code = 0
    try:
        importlib.import_module(module).main(ctx)
    except StageFatalError as e:
        log.error("%s", e)
        code = FATAL_EXIT
    except Exception:
        log.exception("stage %s crashed", name)
        code = 1
    finally:
        stop.set()
        for t in threads:
            t.join(1.0)
        server.close()
        time.sleep(0.05)  # let the last log lines leave
        publisher.close()
    if code:
        sys.exit(code)
