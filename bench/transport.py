"""Transport benchmark: our shared-memory rings against multiprocessing.Queue, multiprocessing.Pipe,
pyzmq PUSH/PULL over ipc:// (copying and zero-copy) and iceoryx2 (when installed), side by side
in one run, plus the machine's memcpy bandwidth as the floor and a control-message round trip.

    .venv/bin/python bench/transport.py [--quick] [--out bench/results/transport.md]

Every transport gets its own receiver process (spawned, as stages are) for each payload; the
parent sends. Sends are paced at the stream's real rate (frames and JPEG records at 25/s, audio
chunks every 32 ms) because an idle receiver waking up is exactly what a stage pays; batches of
each transport alternate round-robin so machine noise lands on all of them alike. Latency is
one-way, sender clock to receiver clock (both CLOCK_MONOTONIC): from just before the sender
starts handing the payload over to the moment the receiver holds it as a numpy array or bytes
view. For the rings two start points are reported: "copy in" (before the producer copies its
buffer into the slot, comparable to the others) and "in place" (from publish: a producer that
renders straight into the slot has no copy). Throughput: the same transports unpaced.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from synesthesia.bench.provenance import for_script
from synesthesia import bus, shm
from synesthesia.shm import ByteRing, FrameRing, SlotMeta

ctx = mp.get_context("spawn")
FRAME_SHAPE = (704, 1280, 3)
PAYLOADS = {
    # name: (bytes, sends per second)
    "frame 2.7 MB": (int(np.prod(FRAME_SHAPE)), 25.0),
    "jpeg 60 KB": (60 * 1024, 25.0),
    "audio 2 KiB": (512 * 4, 31.25),
}
STOP = -1


def _now() -> int:
    return time.monotonic_ns()


# --- receivers (child processes) ---------------------------------------------------------------


def receiver_main(transport: str, payload: str, address: str, conn: Connection) -> None:
    """Receive until the stop marker; send back (latencies us, in-place latencies us, cpu s,
    wall s, received, missed) for each batch when asked."""
    size = PAYLOADS[payload][0]
    recv = _make_receiver(transport, payload, size, address)
    conn.send("ready")
    while True:
        cmd = conn.recv()
        if cmd == "quit":
            break
        lat: list[float] = []
        inplace: list[float] = []
        missed = 0
        cpu0, wall0 = time.process_time(), time.perf_counter()
        first = last = 0
        got = 0
        while True:
            r = recv()
            if r is None:
                continue
            now, t_sent, t_pub, miss, stop = r
            if stop:
                break
            if not first:
                first = now
            last = now
            got += 1
            missed += miss
            lat.append((now - t_sent) / 1e3)
            if t_pub:
                inplace.append((now - t_pub) / 1e3)
        conn.send((lat, inplace, time.process_time() - cpu0, time.perf_counter() - wall0, got, missed, (last - first) / 1e9))


def _make_receiver(transport: str, payload: str, size: int, address: str) -> Callable[[], tuple[int, int, int, int, bool] | None]:
    if transport.startswith("ring"):
        ring: FrameRing | ByteRing = FrameRing.attach(address) if payload.startswith("frame") else ByteRing.attach(address)
        if transport == "ring (no spin)":
            ring.set_wait_policy(0, 0)

        def ring_recv() -> tuple[int, int, int, int, bool] | None:
            rec = ring.read(timeout=5)
            if rec is None:
                return None
            now = _now()  # read() returned: the receiver holds a numpy view of the slot
            m = rec.meta
            return now, m.t_source_ns, m.t_publish_ns, rec.missed, m.flags == 1

        return ring_recv
    if transport == "mp.Queue":
        q = _queues[address]

        def q_recv() -> tuple[int, int, int, int, bool] | None:
            t, arr = q.get()
            return _now(), t, 0, 0, t == STOP

        return q_recv
    if transport == "mp.Pipe":
        c = _pipes[address]

        def pipe_recv() -> tuple[int, int, int, int, bool] | None:
            t, arr = c.recv()
            return _now(), t, 0, 0, t == STOP

        return pipe_recv
    if transport.startswith("zmq"):
        sock = zmq.Context.instance().socket(zmq.PULL)
        sock.bind(address)
        copy = transport == "zmq ipc copy"

        def zmq_recv() -> tuple[int, int, int, int, bool] | None:
            parts = sock.recv_multipart(copy=copy)
            arr = np.frombuffer(parts[1] if copy else parts[1].buffer, np.uint8)
            now = _now()
            t = int.from_bytes(parts[0] if copy else parts[0].bytes, "little", signed=True)
            del arr
            return now, t, 0, 0, t == STOP

        return zmq_recv
    if transport == "iceoryx2":
        return _iox_receiver(address, size)
    raise ValueError(transport)


# Queues and pipes cannot be named; they are handed to the child at spawn and looked up by key.
_queues: dict[str, Any] = {}
_pipes: dict[str, Any] = {}


def receiver_entry(transport: str, payload: str, address: str, conn: Connection, chan: Any) -> None:
    if transport == "mp.Queue":
        _queues[address] = chan
    elif transport == "mp.Pipe":
        _pipes[address] = chan
    receiver_main(transport, payload, address, conn)


# --- iceoryx2 (optional) ---------------------------------------------------------------------------


def _iox() -> Any:
    import iceoryx2 as iox

    iox.set_log_level_from_env_or(iox.LogLevel.Error)
    return iox


def _iox_receiver(address: str, size: int) -> Callable[[], tuple[int, int, int, int, bool] | None]:
    iox = _iox()
    node = iox.NodeBuilder.new().create(iox.ServiceType.Ipc)
    svc = (
        node.service_builder(iox.ServiceName.new(address))
        .publish_subscribe(iox.Slice[ctypes.c_uint8])
        .open_or_create()
    )
    sub = svc.subscriber_builder().create()
    ev = node.service_builder(iox.ServiceName.new(address + "/ev")).event().open_or_create()
    listener = ev.listener_builder().create()

    def iox_recv() -> tuple[int, int, int, int, bool] | None:
        while True:
            sample = sub.receive()
            if sample is not None:
                break
            listener.timed_wait(iox.Duration.from_secs(5))
        pl = sample.payload()
        view = np.ctypeslib.as_array((ctypes.c_uint8 * pl.number_of_elements).from_address(pl.data_ptr))
        now = _now()
        t = int.from_bytes(view[:8].tobytes(), "little", signed=True)
        del view, pl
        sample.delete()
        return now, t, 0, 0, t == STOP

    iox_recv._keep = (node, svc, sub, ev, listener)  # type: ignore[attr-defined]
    return iox_recv


class _IoxSender:
    def __init__(self, address: str, size: int) -> None:
        iox = _iox()
        self.iox = iox
        self.node = iox.NodeBuilder.new().create(iox.ServiceType.Ipc)
        self.svc = (
            self.node.service_builder(iox.ServiceName.new(address))
            .publish_subscribe(iox.Slice[ctypes.c_uint8])
            .open_or_create()
        )
        self.pub = self.svc.publisher_builder().initial_max_slice_len(size + 8).create()
        self.ev = self.node.service_builder(iox.ServiceName.new(address + "/ev")).event().open_or_create()
        self.notifier = self.ev.notifier_builder().create()

    def send(self, t: int, data: np.ndarray) -> None:
        n = data.nbytes + 8
        sample = self.pub.loan_slice_uninit(n)
        pl = sample.payload()
        dst = np.ctypeslib.as_array((ctypes.c_uint8 * n).from_address(pl.data_ptr))
        dst[:8] = np.frombuffer(int(t).to_bytes(8, "little", signed=True), np.uint8)
        dst[8:] = data.reshape(-1).view(np.uint8)
        del dst, pl
        sample.assume_init().send()
        self.notifier.notify()


# --- senders (parent) --------------------------------------------------------------------------


@dataclass
class Lane:
    """One transport for one payload: the receiver process and the sender's half."""

    transport: str
    payload: str
    proc: Any
    ctl: Connection
    send: Callable[[int, np.ndarray], None]
    stop: Callable[[], None]
    close: Callable[[], None]
    samples: list[float] = field(default_factory=list)
    inplace: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    wall_s: float = 0.0
    got: int = 0
    missed: int = 0
    send_s: float = 0.0


def make_lane(transport: str, payload: str, tag: str, rundir: Path) -> Lane:
    size = PAYLOADS[payload][0]
    address = f"syn-bench-{os.getpid()}-{tag}"
    chan: Any = None
    closers: list[Callable[[], None]] = []
    if transport.startswith("ring"):
        if payload.startswith("frame"):
            ring: Any = FrameRing.create(address, FRAME_SHAPE, np.uint8, slots=4)
        else:
            ring = ByteRing.create(address, size, slots=64)
        closers += [ring.close, ring.unlink]
    elif transport == "mp.Queue":
        chan = ctx.Queue()
    elif transport == "mp.Pipe":
        chan, child_end = ctx.Pipe()
    elif transport.startswith("zmq"):
        address = f"ipc://{rundir}/{tag}"
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=receiver_entry, args=(transport, payload, address, child, child_end if transport == "mp.Pipe" else chan), daemon=True)
    proc.start()
    assert parent.recv() == "ready"

    if transport.startswith("ring"):
        if payload.startswith("frame"):

            def send(t: int, data: np.ndarray, stop: bool = False) -> None:
                with ring.write() as slot:
                    slot.array[...] = data  # the producer's copy into the slot
                    slot.meta.t_source_ns = t
                    slot.meta.flags = int(stop)

        else:

            def send(t: int, data: np.ndarray, stop: bool = False) -> None:
                ring.put(data, SlotMeta(t_source_ns=t, flags=int(stop)))

        def stop_() -> None:
            send(_now(), np.zeros(FRAME_SHAPE if payload.startswith("frame") else size, np.uint8), True)

    elif transport == "mp.Queue":

        def send(t: int, data: np.ndarray) -> None:
            chan.put((t, data))

        def stop_() -> None:
            chan.put((STOP, None))

    elif transport == "mp.Pipe":

        def send(t: int, data: np.ndarray) -> None:
            chan.send((t, data))

        def stop_() -> None:
            chan.send((STOP, None))

    elif transport.startswith("zmq"):
        sock = zmq.Context.instance().socket(zmq.PUSH)
        sock.connect(address)
        copy = transport == "zmq ipc copy"
        closers.append(lambda: sock.close(0))

        def send(t: int, data: np.ndarray) -> None:
            sock.send_multipart([t.to_bytes(8, "little", signed=True), data], copy=copy)

        def stop_() -> None:
            sock.send_multipart([STOP.to_bytes(8, "little", signed=True), b"\0"])

    elif transport == "iceoryx2":
        sender = _IoxSender(address, size)

        def send(t: int, data: np.ndarray) -> None:
            sender.send(t, data)

        def stop_() -> None:
            sender.send(STOP, np.zeros(1, np.uint8))

    else:
        raise ValueError(transport)

    def close() -> None:
        parent.send("quit")
        proc.join(10)
        for c in closers:
            c()

    return Lane(transport, payload, proc, parent, send, stop_, close)


def run_batch(lane: Lane, data: np.ndarray, n: int, rate: float | None) -> None:
    lane.ctl.send("go")
    time.sleep(0.05)
    period = None if rate is None else 1.0 / rate
    t_next = t_start = time.perf_counter()
    for _ in range(n):
        if period is not None:
            t_next += period
            # Sleep most of the gap, never spin: the sender must not keep a core busy and
            # skew the receiver's wake-up.
            delay = t_next - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        lane.send(_now(), data)
    lane.send_s = time.perf_counter() - t_start
    if period is not None:
        time.sleep(period)
    lane.stop()
    lat, inplace, cpu, wall, got, missed, span = lane.ctl.recv()
    lane.samples += lat
    lane.inplace += inplace
    lane.cpu_s += cpu
    lane.wall_s += wall
    lane.got += got
    lane.missed += missed
    if rate is None:
        lane.wall_s = span  # throughput runs: receive span only


# --- report --------------------------------------------------------------------------------------


@dataclass
class Row:
    payload: str
    transport: str
    mode: str
    n: int
    p50_us: float
    p99_us: float
    max_us: float
    extra: str = ""


def stats(x: list[float]) -> tuple[float, float, float]:
    if not x:
        return float("nan"), float("nan"), float("nan")
    a = np.asarray(x)
    return float(np.median(a)), float(np.percentile(a, 99)), float(a.max())


def memcpy_row(rounds: int) -> tuple[float, float]:
    src = np.random.default_rng(0).integers(0, 256, FRAME_SHAPE, dtype=np.uint8)
    dst = np.empty_like(src)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        np.copyto(dst, src)
        times.append((time.perf_counter_ns() - t0) / 1e3)
    med = float(np.median(times))
    return med, src.nbytes / med / 1e3  # us, GB/s


def control_round_trip(rundir: Path, n: int) -> tuple[float, float, float]:
    ep = bus.Endpoints.for_run("bench", rundir).command("echo")
    ready, stop = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_echo_server, args=(ep, ready, stop), daemon=True)
    p.start()
    ready.wait(30)
    client = bus.CommandClient(ep)
    lat = []
    for i in range(n + 20):
        time.sleep(0.002)  # an idle server, as a stage between commands
        t0 = time.perf_counter_ns()
        r = client.call("status", {"i": i}, timeout=5)
        dt_us = (time.perf_counter_ns() - t0) / 1e3
        assert r is not None and r.ok
        if i >= 20:
            lat.append(dt_us)
    client.close()
    stop.set()
    p.join(10)
    return stats(lat)


def _echo_server(ep: str, ready: Any, stop: Any) -> None:
    server = bus.CommandServer(ep, {"status": lambda a: {"ok": True, **a}})
    ready.set()
    server.serve(stop)
    server.close()


def idle_reader_cpu(seconds: float) -> float:
    """CPU seconds a ring reader burns while blocked on a silent ring for ``seconds``."""
    name = f"syn-bench-{os.getpid()}-idle"
    with FrameRing.create(name, (4,), np.uint8, 2) as ring:
        for _ in range(3):  # give it a steady rate first, so anticipation is armed
            with ring.write() as slot:
                slot.array[:] = 0
            time.sleep(0.04)
        del slot
        r, w = ctx.Pipe()
        p = ctx.Process(target=_idle_reader, args=(name, seconds, w), daemon=True)
        p.start()
        cpu = float(r.recv())
        p.join(10)
    return cpu


def _idle_reader(name: str, seconds: float, conn: Connection) -> None:
    ring = FrameRing.attach(name)
    # A fresh process's first wait can be charged a one-off (page faults, a preempted start);
    # that is not idling, so wait once first, then report the median of five idle periods.
    assert ring.read(timeout=0.05) is None
    per_second = []
    for _ in range(5):
        t0 = time.process_time()
        assert ring.read(timeout=seconds) is None
        per_second.append((time.process_time() - t0) / seconds)
    conn.send(sorted(per_second)[2] * seconds)
    ring.close()


def provenance(args: argparse.Namespace, transports: list[str]) -> dict[str, object]:
    try:
        import iceoryx2  # noqa: F401
        from importlib.metadata import version

        iox = version("iceoryx2")
    except ImportError:
        iox = "not installed"
    return for_script("bench/transport.py", vars(args), {
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "pyzmq / libzmq": f"{zmq.__version__} / {zmq.zmq_version()}", "iceoryx2": iox,
        "rounds x batch": f"{args.rounds} x {args.batch}", "transports": ", ".join(transports)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4, help="round-robin rounds per payload")
    parser.add_argument("--batch", type=int, default=40, help="paced sends per transport per round")
    parser.add_argument("--burst", type=int, default=200, help="unpaced sends per transport for throughput")
    parser.add_argument("--json", type=Path, help="also write the rows and provenance as JSON here")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 10: a smoke run, not a measurement")
    parser.add_argument("--only", action="append", choices=list(PAYLOADS), help="payloads to run")
    parser.add_argument("--transports", help="comma-separated subset of the transports to run")
    parser.add_argument("--out", type=Path, help="write the Markdown report here as well as to stdout")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.batch, args.burst = 2, 10, 40
    transports = ["ring", "ring (no spin)", "mp.Queue", "mp.Pipe", "zmq ipc copy", "zmq ipc zero-copy"]
    notes: list[str] = []
    try:
        import iceoryx2  # noqa: F401

        transports.append("iceoryx2")
    except ImportError:
        notes.append("iceoryx2 is not installed (`pip install iceoryx2`), so it is not in this run.")
    if args.transports:
        transports = [t for t in transports if t in args.transports.split(",")]
    prov = provenance(args, transports)
    rundir = bus.runtime_dir(Path(os.environ.get("TMPDIR", "/tmp")) / f"syn-bench-{os.getpid()}")
    rows: list[Row] = []
    thr: list[tuple[str, str, float, float, float, int, int]] = []
    for payload in args.only or list(PAYLOADS):
        size, rate = PAYLOADS[payload]
        print(f"bench: {payload} ...", file=sys.stderr, flush=True)
        data = np.random.default_rng(1).integers(0, 256, FRAME_SHAPE if payload.startswith("frame") else size, dtype=np.uint8)
        lanes = []
        for i, tr in enumerate(transports):
            try:
                lanes.append(make_lane(tr, payload, f"{payload.split()[0]}-{i}", rundir))
            except Exception as e:  # an optional transport failing must not sink the run
                notes.append(f"{tr} / {payload}: could not start ({type(e).__name__}: {e}).")
        for _ in range(args.rounds):
            for lane in lanes:
                run_batch(lane, data, args.batch, rate)
        for lane in lanes:
            p50, p99, mx = stats(lane.samples)
            cpu = 100 * lane.cpu_s / lane.wall_s if lane.wall_s else float("nan")
            mode = "from send" if lane.transport.startswith("ring") else ""
            rows.append(Row(payload, lane.transport, mode, len(lane.samples), p50, p99, mx, f"{cpu:.1f}%"))
            if lane.inplace:
                p50, p99, mx = stats(lane.inplace)
                rows.append(Row(payload, lane.transport, "from publish", len(lane.inplace), p50, p99, mx, f"{cpu:.1f}%"))
            lane.samples, lane.inplace, lane.got, lane.missed, lane.cpu_s, lane.wall_s = [], [], 0, 0, 0.0, 0.0
        print(f"bench: {payload} throughput ...", file=sys.stderr, flush=True)
        for lane in lanes:
            burst = args.burst if payload.startswith("frame") else args.burst * 10
            run_batch(lane, data, burst, None)
            per_s = lane.got / lane.wall_s if lane.wall_s else float("nan")
            thr.append((payload, lane.transport, burst / lane.send_s, per_s, per_s * size / 1e6, lane.got, lane.missed))
        for lane in lanes:
            lane.close()
    print("bench: memcpy, control round trip, idle CPU ...", file=sys.stderr, flush=True)
    copy_us, copy_gbs = memcpy_row(200)
    ctl = control_round_trip(rundir, 200 if args.quick else 1000)
    idle = idle_reader_cpu(1.0)
    # The receivers bound the zmq ipc sockets; the files outlive them.
    for f in rundir.iterdir():
        if f.is_socket():
            f.unlink()
    try:
        rundir.rmdir()
    except OSError:
        pass
    prov["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    busiest = max(float(x) for x in str(prov["load average at start"]).split() + str(prov["load average at end"]).split())
    if busiest > (os.cpu_count() or 1) * 0.75:
        notes.append(
            f"The machine was busy (1-minute load up to {busiest:.1f} on {os.cpu_count()} cores, from other work): "
            "receivers and senders wait for a CPU, caches are cold after every sleep, and a spinning reader is "
            "preempted. Treat these figures as upper bounds for the quiet machine the targets assume."
        )
    text = markdown(prov, rows, thr, copy_us, copy_gbs, ctl, idle, notes)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    if args.json:
        out = [{"group": f"one-way latency, {r.payload}", **asdict(r)} for r in rows]
        out += [{"group": "throughput", "payload": t[0], "transport": t[1], "sends_per_s": t[2], "received_per_s": t[3],
                 "mb_per_s": t[4], "received": t[5], "missed": t[6]} for t in thr]
        out.append({"group": "limits", "memcpy_frame_us": copy_us, "memcpy_gb_per_s": copy_gbs, "control_rtt_p50_us": ctl[0],
                    "control_rtt_p99_us": ctl[1], "control_rtt_max_us": ctl[2], "idle_reader_cpu_ms_per_s": idle * 1e3})
        args.json.write_text(json.dumps({"provenance": prov, "rows": out, "notes": notes}, indent=1, default=str))
    return 0


def _get(rows: list[Row], payload: str, transport: str, mode: str = "") -> Row | None:
    return next((r for r in rows if r.payload == payload and r.transport == transport and (not mode or r.mode == mode)), None)


def markdown(
    prov: dict[str, object],
    rows: list[Row],
    thr: list[tuple[str, str, float, float, float, int, int]],
    copy_us: float,
    copy_gbs: float,
    ctl: tuple[float, float, float],
    idle_cpu: float,
    notes: list[str],
) -> str:
    lines = [
        "# Transport benchmark",
        "",
        f"Command: `{prov['command']}`",
        "",
        "| provenance | |",
        "| --- | --- |",
        *(f"| {k} | {v} |" for k, v in prov.items() if k != "command"),
        "",
        "One-way latency in microseconds, sender to a receiver in another (spawned) process holding the payload as",
        "a numpy array or bytes view; sends paced at the stream's rate (25/s for frames and JPEG records, every",
        "32 ms for audio). Ring rows: `from send` starts before the producer copies its buffer into the slot (like",
        "every other row: it includes the copy and the sender's Python); `from publish` starts when the record is",
        "published, i.e. what a producer that renders or encodes straight into the slot sees (the frame target).",
        "`ring` is the default wait policy (20 us spin, 300 us anticipation around the writer's steady rate);",
        "`ring (no spin)` sleeps in the futex until woken. Receiver CPU is its CPU time over the paced run.",
        "",
        "## Latency",
        "",
        "| payload | transport | mode | n | p50 us | p99 us | max us | receiver CPU |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(f"| {r.payload} | {r.transport} | {r.mode} | {r.n} | {r.p50_us:.1f} | {r.p99_us:.1f} | {r.max_us:.1f} | {r.extra} |")
    lines += [
        "",
        "## Throughput (unpaced)",
        "",
        "The sender pushes as fast as it can; `sent/s` is its rate, `delivered/s` the receiver's over the span",
        "from its first to its last record. Rings never block the writer: an overrun reader skips records and",
        "counts them (`missed`). The others block the sender (Queue, Pipe, zmq at its high-water mark) or, for",
        "iceoryx2 with its default subscriber buffer, drop samples without telling the receiver (`delivered`",
        "below the burst size with nothing counted).",
        "",
        "| payload | transport | sent/s | delivered/s | MB/s delivered | delivered | missed |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for payload, tr, sent_s, per_s, mbs, got, missed in thr:
        lines.append(f"| {payload} | {tr} | {sent_s:,.0f} | {per_s:,.0f} | {mbs:,.0f} | {got} | {missed} |")
    lines += [
        "",
        "## Limits and control plane",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| memcpy of one 2.7 MB frame (numpy copyto, this process) | {copy_us:.0f} us ({copy_gbs:.1f} GB/s) |",
        f"| control message round trip (CommandClient -> CommandServer in another process, idle 2 ms between) p50 / p99 / max | {ctl[0]:.0f} / {ctl[1]:.0f} / {ctl[2]:.0f} us |",
        f"| CPU used by a ring reader blocked 1 s on a silent ring | {idle_cpu * 1e3:.2f} ms |",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "| --- | --- | --- |",
    ]

    def yes(ok: bool) -> str:
        return "yes" if ok else "**no**"

    fr = _get(rows, "frame 2.7 MB", "ring", "from publish")
    frs = _get(rows, "frame 2.7 MB", "ring", "from send")
    q = _get(rows, "frame 2.7 MB", "mp.Queue")
    au = _get(rows, "audio 2 KiB", "ring", "from publish")
    aus = _get(rows, "audio 2 KiB", "ring", "from send")
    if fr:
        lines.append(f"| frame, written in place -> reader holds view: p50 <= 30 us | {fr.p50_us:.1f} us | {yes(fr.p50_us <= 30)} |")
        lines.append(f"| same, p99 <= 150 us | {fr.p99_us:.1f} us | {yes(fr.p99_us <= 150)} |")
        lines.append(f"| without burning a core while idle | {idle_cpu * 1e3:.2f} ms CPU per idle second; {fr.extra} CPU at 25 fps | {yes(idle_cpu < 0.01)} |")
    if fr and q and frs:
        ratio = q.p50_us / fr.p50_us
        lines.append(f"| >= 100x lower p50 than multiprocessing.Queue for frames | {ratio:.0f}x in place ({q.p50_us:.0f} / {fr.p50_us:.1f} us); {q.p50_us / frs.p50_us:.0f}x with the copy in | {yes(ratio >= 100)} |")
    if au and aus:
        lines.append(f"| 2 KiB audio chunk p50 <= 20 us | {au.p50_us:.1f} us from publish ({aus.p50_us:.1f} us from the send call) | {yes(au.p50_us <= 20)} |")
    lines.append(f"| control message round trip p99 <= 300 us | {ctl[1]:.0f} us | {yes(ctl[1] <= 300)} |")
    notes = notes + [
        "Core-level probe without Python (a forked writer and a reader on a shared mapping, default wait "
        "policy, publish -> reader sees the record): `DIAG_CAP=2048 cargo test -p synesthesia-core --release "
        "diag_latency_across -- --ignored --nocapture` (2 KiB) or without `DIAG_CAP` (2.7 MB frames). The "
        "difference to the `from publish` rows is the Python side of a read (returning through PyO3 and building "
        "the record), which on a busy machine runs on cold caches.",
    ]
    lines += ["", "## Notes", "", *(f"- {n}" for n in notes)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
