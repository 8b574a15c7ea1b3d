"""The pacer: turns any world backend's native rate into a steady output cadence. Runs in the
world stage process, on its own thread.

Each tick polls the backend once, just early enough for the frame to be ready on the tick
(the lead adapts to how long recent polls took), and publishes it on the tick. A new frame is published; no new frame means the latest one
is published again (hold/repeat); frames the backend made between ticks are never seen (drop,
counted from gaps in its sequence numbers). Nothing is ever queued: a tick that overruns its
period skips the ticks it missed instead of bursting to catch up. Every published frame is
timestamped and carries the trace ids it is the first to show.

An intent need not wait for the next tick (``respond="immediate"``, the default): it wakes the
loop, which polls at once and, when the backend has a new frame (the procedural one renders it
there and then), publishes it right away and continues the cadence one period after it
(re-phased). That holds too for an intent that arrives after a tick's early poll and before
the tick: the polled frame no longer shows the newest state, so it is dropped (its intents pass
to the frame that replaces it) and the answer goes out at once. With ``respond="tick"`` the
intent shows on the next regular tick.

Python threads hand the GIL over every 5 ms by default, so a pacer thread waking for its tick
can wait that long behind another thread; the world stage should lower it
(``sys.setswitchinterval(0.0005)``, as bench/world.py does) to keep jitter under 2 ms.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

from synesthesia.errors import IntentRejected
from synesthesia.priority import lower_niceness
from synesthesia.world.base import FrameSink, Intent, WorldBackend, WorldFrame

__all__ = ["RESPONSES", "Pacer", "PacerStats"]

#: How an intent is answered: at once (re-phasing the cadence) or on the next tick.
RESPONSES = ("immediate", "tick")

log = logging.getLogger(__name__)

# Sleep until this close to a deadline, then spin: OS sleeps overshoot by 50 us to a few ms.
_SPIN_NS = 1_000_000
_LEAD_MARGIN_NS = 1_500_000


#: Real-time priority (SCHED_FIFO, 1..99) of a realtime pacer's thread. On a busy machine a
#: normal thread's wake-up for its tick waits for a core behind every other runnable process
#: (hearing's decoder, the encoder, other programs): measured on a shared 2-core machine, jitter
#: p99 went from 25-100 ms to 0.03 ms. A low value: it outranks ordinary processes only.
PACER_RT_PRIORITY = 10
#: Fallback niceness when real-time scheduling is not allowed (helps less: CFS still time-slices).
PACER_NICE = -10
#: A realtime pacer whose polls take more than half a period this many ticks running (a heavy
#: model backend) gives its priority back, so it cannot starve the rest of the machine.
_RT_HEAVY_TICKS = 25


def raise_thread_priority() -> str:
    """Give the calling thread real-time priority (SCHED_FIFO) when allowed, else a lower
    niceness, else leave it; says what it got. Needs CAP_SYS_NICE (or an RLIMIT_RTPRIO) on Linux;
    without it the thread runs as before."""
    import os

    try:
        # 0: this thread. RESET_ON_FORK: threads and processes it starts later run at normal priority.
        policy = os.SCHED_FIFO | getattr(os, "SCHED_RESET_ON_FORK", 0)
        os.sched_setscheduler(0, policy, os.sched_param(PACER_RT_PRIORITY))
        return f"SCHED_FIFO {PACER_RT_PRIORITY}"
    except (AttributeError, OSError):
        pass
    return lower_niceness(PACER_NICE)


def reset_thread_priority() -> None:
    import os

    try:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except (AttributeError, OSError):
        pass


@dataclass(frozen=True)
class PacerStats:
    frames: int
    new: int
    repeats: int
    dropped: int
    late_ticks: int
    rejected: int
    backend_errors: int
    interval_ms_p50: float
    jitter_ms_p50: float
    jitter_ms_p99: float
    jitter_ms_max: float
    #: Frames published at once for an intent, between ticks (respond="immediate").
    responses: int = 0
    #: Jitter p99 over the regular ticks only: intervals that end at a response frame are left out
    #: (they are short by design); the interval after one is a full period again.
    cadence_jitter_ms_p99: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


class Pacer:
    def __init__(
        self,
        backend: WorldBackend,
        sink: FrameSink,
        fps: float = 25.0,
        clock: Callable[[], int] = time.monotonic_ns,
        window: int = 1500,
        respond: str = "immediate",
        wait: Callable[[float], object] | None = None,
        realtime: bool = False,
    ) -> None:
        """``clock`` (ns) and ``wait`` (block up to that many seconds or until woken) are the
        real ones by default; tests pass a fake pair to run the loop in virtual time.
        ``realtime``: the thread :meth:`start` runs asks for real-time priority (the world stage
        does; see :func:`raise_thread_priority`)."""
        if not 1.0 <= fps <= 240.0:
            raise ValueError(f"fps: must be 1..240, got {fps}")
        if respond not in RESPONSES:
            raise ValueError(f"respond: must be one of {', '.join(RESPONSES)}, got {respond!r}")
        self.respond = respond
        self.backend, self.sink, self.fps = backend, sink, fps
        self.period_ns = int(round(1e9 / fps))
        self._clock = clock
        self._last: WorldFrame | None = None
        self._last_backend_seq: int | None = None
        self._out_seq = 0
        self._put_times: deque[int] = deque(maxlen=window + 1)
        self._put_response: deque[bool] = deque(maxlen=window + 1)
        self._poll_ns: deque[int] = deque(maxlen=50)
        self._counts = {
            "new": 0, "repeats": 0, "dropped": 0, "late_ticks": 0, "rejected": 0, "backend_errors": 0, "responses": 0,
        }
        self._stop = threading.Event()
        # Set by stop() and, when responding immediately, by an accepted intent.
        self._wake = threading.Event()
        self._wait = wait
        self._thread: threading.Thread | None = None
        self.last_rejection: str | None = None
        self.realtime = realtime
        self.priority: str = "unchanged"
        self._heavy = 0
        self._last_out = False  # whether the newest polled frame has been published

    # --- inputs (any thread) ---------------------------------------------------------------
    def submit(self, intent: Intent) -> str | None:
        """Apply an intent now. Returns None when accepted, else the reason it was rejected;
        a rejected intent is logged and counted and changes nothing."""
        try:
            self.backend.apply(intent)
        except IntentRejected as e:
            self._counts["rejected"] += 1
            self.last_rejection = e.reason
            log.warning("%s", e)
            return e.reason
        if self.respond == "immediate":
            self._wake.set()
        return None

    def feed_audio(self, samples: npt.NDArray[np.float32]) -> None:
        self.backend.feed_audio(samples)

    # --- one tick ----------------------------------------------------------------------------
    def step(self, now_ns: int | None = None) -> dict[str, object] | None:
        """Poll once and publish one frame. Returns its metadata (None before the first frame)."""
        now = self._clock() if now_ns is None else now_ns
        repeated = self._poll(now)
        return self._publish(repeated, now if now_ns is not None else None)

    def _poll(self, now: int) -> bool | None:
        """Ask the backend for its newest frame. True: nothing new (repeat); None: nothing yet."""
        t0 = self._clock()
        try:
            frame = self.backend.poll(now)
        except Exception:  # a failing backend must not stop the cadence: hold the last frame
            self._counts["backend_errors"] += 1
            log.exception("backend %s failed to produce a frame", self.backend.name)
            frame = None
        took = self._clock() - t0
        self._poll_ns.append(took)
        if self.priority.startswith("SCHED_FIFO"):
            self._heavy = self._heavy + 1 if took > self.period_ns // 2 else 0
            if self._heavy >= _RT_HEAVY_TICKS:
                reset_thread_priority()
                self.priority = "normal (polls too heavy for real-time priority)"
                log.warning("world pacer: %s polls take over half a period; giving back real-time priority",
                            self.backend.name)
        if frame is not None:
            if self._last is not None and not self._last_out and self._last.first_for:
                # the frame it replaces was never published: its intents are first shown by this one
                frame.first_for = self._last.first_for + tuple(t for t in frame.first_for
                                                               if t not in self._last.first_for)
            self._last_out = False
            if self._last_backend_seq is not None:
                self._counts["dropped"] += max(0, frame.seq - self._last_backend_seq - 1)
            self._last_backend_seq = frame.seq
            self._last = frame
            self._counts["new"] += 1
            return False
        if self._last is None:
            return None
        self._counts["repeats"] += 1
        return True

    def _publish(self, repeated: bool | None, at_ns: int | None, response: bool = False) -> dict[str, object] | None:
        if repeated is None or self._last is None:
            return None
        shown = self._last
        self._last_out = True
        put_ns = self._clock() if at_ns is None else at_ns
        self._out_seq += 1
        meta: dict[str, object] = {
            "seq": self._out_seq,
            "t_ns": put_ns,
            "backend": self.backend.name,
            "backend_seq": shown.seq,
            "produced_ns": shown.t_ns,
            "repeated": repeated,
            "first_for": [] if repeated else list(shown.first_for),
            "reflects": list(shown.reflects),
        }
        self.sink.put(shown.pixels, meta)
        self._put_times.append(put_ns)
        self._put_response.append(response)
        return meta

    def lead_ns(self) -> int:
        """How long before each tick to poll: a little more than recent polls took, so the frame
        is ready at the tick and publication time does not wobble with render time."""
        if len(self._poll_ns) < 5:
            return self.period_ns // 3
        recent = np.fromiter(self._poll_ns, dtype=np.int64)
        lead = int(np.percentile(recent, 90)) + _LEAD_MARGIN_NS
        return max(_LEAD_MARGIN_NS, min(lead, int(self.period_ns * 0.8)))

    # --- the loop ----------------------------------------------------------------------------
    def run(self, duration_s: float | None = None, max_frames: int | None = None) -> PacerStats:
        """Publish at the output rate until stopped, for ``duration_s`` or ``max_frames``.

        Each tick polls the backend ``lead_ns()`` early, then publishes on the tick itself. An
        intent that wakes the loop (respond="immediate") is answered at once: poll, publish a new
        frame if there is one, and count the next period from it.
        """
        clock = self._clock
        start = clock()
        end = None if duration_s is None else start + int(duration_s * 1e9)
        deadline = start + self.period_ns
        published = 0
        while not self._stop.is_set():
            woken = self._sleep_until(deadline - self.lead_ns(), wakeable=True)
            now = clock()
            if end is not None and now >= end:
                break
            if woken:
                if self._stop.is_set():
                    break
                if not self._respond(now):
                    continue  # nothing new to show yet (a slow backend): keep the cadence
                deadline = self._put_times[-1]
            else:
                repeated = self._poll(deadline)
                # An intent arriving between this poll and its tick (or during the poll) makes the
                # polled frame stale: answer it at once, as between ticks, instead of publishing
                # the stale frame on the tick and the answer a render later.
                if self._sleep_until(deadline, wakeable=self.respond == "immediate"):
                    if self._stop.is_set():
                        break
                    if self._respond(self._clock()):
                        deadline = self._put_times[-1]
                    else:  # nothing new to show yet: the polled frame goes out on its tick
                        self._sleep_until(deadline, wakeable=False)
                        self._publish(repeated, None)
                else:
                    self._publish(repeated, None)
            published += 1
            if max_frames is not None and published >= max_frames:
                break
            deadline += self.period_ns
            after = clock()
            if after > deadline - self.lead_ns():
                # Overran: skip the ticks already missed instead of bursting to catch up.
                missed = (after - deadline + self.lead_ns()) // self.period_ns + 1
                self._counts["late_ticks"] += int(missed)
                deadline += missed * self.period_ns
        return self.stats()

    def _respond(self, now: int) -> bool:
        """Answer an intent between ticks: poll now and publish a new frame at once."""
        repeated = self._poll(now)
        if repeated is not False:
            return False
        self._counts["responses"] += 1
        self._publish(repeated, None, response=True)
        return True

    def _sleep_until(self, deadline: int, wakeable: bool) -> bool:
        """Sleep, then spin, until ``deadline``. True when an intent (or stop) woke the loop
        first; only a ``wakeable`` sleep consumes the wake."""
        while True:
            if self._stop.is_set():
                return True
            if wakeable and self._wake.is_set():
                self._wake.clear()
                return True
            remaining = deadline - self._clock()
            if remaining <= _SPIN_NS:
                break
            seconds = (remaining - _SPIN_NS) / 1e9
            if self._wait is not None:
                self._wait(seconds)
            elif wakeable:
                self._wake.wait(seconds)
            else:
                self._stop.wait(seconds)
        while self._clock() < deadline:
            if self._stop.is_set() or (wakeable and self._wake.is_set()):
                return self._sleep_until(deadline, wakeable)
        return False

    def _run_thread(self) -> None:
        if self.realtime:
            self.priority = raise_thread_priority()
            log.info("world pacer thread priority: %s", self.priority)
        self.run()

    def start(self) -> None:
        """Run the loop on a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            raise RuntimeError("pacer already started")
        self._stop.clear()
        self._wake.clear()
        self._thread = threading.Thread(target=self._run_thread, name="world-pacer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    # --- measurements ----------------------------------------------------------------------
    def stats(self) -> PacerStats:
        times = np.array(self._put_times, dtype=np.int64)
        response = np.array(self._put_response, dtype=bool)
        if len(times) >= 2:
            intervals = np.diff(times) / 1e6
            jitter = np.abs(intervals - self.period_ns / 1e6)
            p50i = float(np.median(intervals))
            j50, j99, jmax = (float(np.percentile(jitter, q)) for q in (50, 99, 100))
            cadence = jitter[~response[1:]]
            c99 = float(np.percentile(cadence, 99)) if len(cadence) else 0.0
        else:
            p50i = j50 = j99 = jmax = c99 = 0.0
        c = self._counts
        return PacerStats(
            frames=self._out_seq,
            new=c["new"],
            repeats=c["repeats"],
            dropped=c["dropped"],
            late_ticks=c["late_ticks"],
            rejected=c["rejected"],
            backend_errors=c["backend_errors"],
            interval_ms_p50=p50i,
            jitter_ms_p50=j50,
            jitter_ms_p99=j99,
            jitter_ms_max=jmax,
            responses=c["responses"],
            cadence_jitter_ms_p99=c99,
        )
