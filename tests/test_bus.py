"""The control plane with real processes: the proxy forwards events between processes, bad
messages are dropped and counted while good ones keep flowing, commands get typed replies."""

from __future__ import annotations

import errno
import logging
import multiprocessing as mp
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest

from synesthesia import bus
from synesthesia import messages as m
from synesthesia.errors import SynesthesiaError

ctx = mp.get_context("spawn")


def publisher_main(endpoints: bus.Endpoints, go: threading.Event, n: int) -> None:
    """Interleave good events with every kind of bad one."""
    pub = bus.Publisher("listen", endpoints)
    # PUB drops what it sends before the subscriptions reach it: say hello until heard.
    deadline = time.monotonic() + 20
    while not go.wait(0.02) and time.monotonic() < deadline:
        pub.publish(m.LogLine(stage="listen", level="info", text="hello"))
    good = m.encode(m.Heartbeat(stage="listen", pid=os.getpid(), seq=0))
    bad = [
        b"\xc1not msgpack",
        msgpack.packb({**msgpack.unpackb(good), "_v": m.SCHEMA_VERSION + 1}),
        msgpack.packb({**msgpack.unpackb(good), "pid": "x"}),
        b"\x00" * (m.MAX_MESSAGE_BYTES + 100),
    ]
    for i in range(n):
        pub.send_raw("listen.heartbeat", bad[i % len(bad)])
        pub.publish(m.TranscriptFinal(trace_id=i + 1, text=f"word {i}", confidence=0.5))
    pub.publish(m.LogLine(stage="listen", level="info", text="done"))
    time.sleep(0.5)  # let the proxy drain before the socket goes
    pub.close()


def command_server_main(endpoint: str, ready: threading.Event, stop: threading.Event) -> None:
    state = {"gain": 1.0}

    def set_(args: object) -> object:
        assert isinstance(args, dict)
        state["gain"] = float(args["gain"])
        return state

    server = bus.CommandServer(endpoint, {"status": lambda a: {"pid": os.getpid(), **state}, "set": set_, "boom": lambda a: 1 / 0})
    ready.set()
    server.serve(stop)
    server.close()


@pytest.fixture
def endpoints(tmp_path: Path) -> Iterator[bus.Endpoints]:
    d = tmp_path / "run"
    yield bus.Endpoints.for_run("t", d)
    assert not [p for p in d.iterdir() if p.is_socket()], "ipc sockets left behind"


def test_runtime_dir_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = bus.runtime_dir(tmp_path / "rt")
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    monkeypatch.setenv("SYNESTHESIA_RUNTIME_DIR", str(tmp_path / "env"))
    assert bus.runtime_dir() == tmp_path / "env"
    (tmp_path / "open").mkdir(mode=0o755)
    os.chmod(tmp_path / "open", 0o755)
    with pytest.raises(SynesthesiaError, match="accessible to other users"):
        bus.runtime_dir(tmp_path / "open")
    assert bus.Endpoints.for_run("r", d).events_in == f"ipc://{d}/r-events-in"


def test_events_cross_processes_and_bad_ones_are_dropped_and_counted(
    endpoints: bus.Endpoints, caplog: pytest.LogCaptureFixture
) -> None:
    n = 40
    with bus.EventProxy(endpoints), bus.Subscriber(["listen."], endpoints) as sub:
        go = ctx.Event()
        p = ctx.Process(target=publisher_main, args=(endpoints, go, n))
        p.start()
        texts = []
        hellos = 0
        with caplog.at_level(logging.WARNING, logger="synesthesia.bus"):
            while True:
                got = sub.recv(timeout=20)
                assert got is not None, "events stopped flowing"
                topic, msg = got
                if isinstance(msg, m.LogLine) and msg.text == "hello":
                    hellos += 1
                    go.set()
                    continue
                if isinstance(msg, m.LogLine):
                    break
                assert topic == "listen.transcript_final" and isinstance(msg, m.TranscriptFinal)
                texts.append(msg.text)
        p.join(20)
        assert p.exitcode == 0
    assert texts == [f"word {i}" for i in range(n)]
    assert sub.dropped == {"undecodable": 10, "version": 10, "invalid": 10, "oversized": 10}
    assert sub.received == n + 1 + hellos
    assert any("dropped a message on listen.heartbeat: version" in r.getMessage() for r in caplog.records)


def test_commands_get_typed_replies_from_another_process(endpoints: bus.Endpoints) -> None:
    ep = endpoints.command("world")
    ready, stop = ctx.Event(), ctx.Event()
    p = ctx.Process(target=command_server_main, args=(ep, ready, stop))
    p.start()
    try:
        assert ready.wait(20)
        with bus.CommandClient(ep) as client:
            r = client.call("status", timeout=10)
            assert r is not None and r.ok and r.result == {"pid": p.pid, "gain": 1.0} and r.errno == 0
            r = client.call("set", {"gain": 2}, timeout=10)
            assert r is not None and r.ok and r.result == {"gain": 2.0}
            r = client.call("set", {}, timeout=10)
            assert r is not None and not r.ok and r.errno == errno.EINVAL and "gain" in r.error
            r = client.call("boom", timeout=10)
            assert r is not None and not r.ok and r.errno == errno.EIO and "ZeroDivisionError" in r.error
            r = client.call("nope", timeout=10)
            assert r is not None and not r.ok and r.errno == errno.ENOSYS
            # A malformed request gets an error reply; the server carries on.
            client.send_raw(b"\xc1junk")
            r = client.call("status", timeout=10)
            assert r is not None and not r.ok and r.errno == errno.EBADMSG
            r = client.call("status", timeout=10)
            assert r is not None and r.ok
    finally:
        stop.set()
        p.join(20)
    assert p.exitcode == 0


def test_a_call_without_a_server_times_out_and_the_client_recovers(endpoints: bus.Endpoints) -> None:
    ep = endpoints.command("late")
    with bus.CommandClient(ep) as client:
        assert client.call("status", timeout=0.05) is None
        with bus.CommandServer(ep, {"status": lambda a: "up"}) as server:
            stop = threading.Event()
            t = threading.Thread(target=server.serve, args=(stop,))
            t.start()
            try:
                # The stale request from the timed-out call is answered too; its reply is skipped.
                r = client.call("status", timeout=10)
                assert r is not None and r.ok and r.result == "up"
            finally:
                stop.set()
                t.join()
