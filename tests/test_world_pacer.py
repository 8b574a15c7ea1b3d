"""The pacer: hold and repeat behind a slow backend, drop behind a fast one, never queue,
mark the first frame after an intent, keep running through bad intents and backend errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import pytest

from synesthesia.world import Intent, LatestFrame, Pacer, ProceduralBackend, WorldFrame

MS = 1_000_000
PERIOD = 40 * MS


class ListSink:
    def __init__(self) -> None:
        self.frames: list[tuple[npt.NDArray[np.uint8], dict[str, object]]] = []

    def put(self, frame: npt.NDArray[np.uint8], meta: Mapping[str, object]) -> None:
        self.frames.append((frame, dict(meta)))

    @property
    def metas(self) -> list[dict[str, object]]:
        return [m for _, m in self.frames]


class FakeBackend:
    """Makes a new frame every ``every_ns`` and says its own frame rate is ``native_fps``."""

    name = "fake"
    width, height = 8, 8

    def __init__(self, every_ns: int, skip: int = 0, fail_at: int | None = None) -> None:
        self.every_ns, self.skip, self.fail_at = every_ns, skip, fail_at
        self.seq = 0
        self.polls = 0
        self._next = 0
        self._pending: list[str] = []

    def start(self, prompt: str = "") -> None: ...
    def feed_audio(self, samples: npt.NDArray[np.float32]) -> None: ...
    def stop(self) -> None: ...

    def apply(self, intent: Intent) -> None:
        self._pending.append(intent.trace_id)

    def poll(self, now_ns: int) -> WorldFrame | None:
        self.polls += 1
        if self.fail_at is not None and self.polls == self.fail_at:
            raise RuntimeError("model crashed")
        if now_ns < self._next:
            return None
        self._next = now_ns + self.every_ns
        self.seq += 1 + self.skip
        first, self._pending = tuple(self._pending), []
        return WorldFrame(np.full((8, 8, 3), self.seq % 256, np.uint8), self.seq, now_ns, first, first)


def drive(pacer: Pacer, ticks: int, start: int = 0) -> None:
    for k in range(ticks):
        pacer.step(start + k * PERIOD)


def test_slow_backend_is_held_and_repeated() -> None:
    backend = FakeBackend(every_ns=100 * MS)  # 10 fps behind a 25 fps output
    sink = ListSink()
    pacer = Pacer(backend, sink)
    drive(pacer, 50)  # two seconds
    stats = pacer.stats()
    assert stats.frames == 50 and stats.new == 17 and stats.repeats == 33 and stats.dropped == 0
    # Repeats show exactly the last new frame and are flagged.
    for (frame, meta), (prev, _) in zip(sink.frames[1:], sink.frames):
        if meta["repeated"]:
            assert frame is prev
    assert [m["seq"] for m in sink.metas] == list(range(1, 51))


def test_fast_backend_is_dropped_not_queued() -> None:
    backend = FakeBackend(every_ns=0, skip=3)  # as if it made 100 fps: 3 unseen frames per tick
    sink = ListSink()
    pacer = Pacer(backend, sink)
    drive(pacer, 25)
    stats = pacer.stats()
    assert stats.frames == 25 and stats.repeats == 0 and stats.dropped == 24 * 3
    assert [m["backend_seq"] for m in sink.metas] == [4 * (k + 1) for k in range(25)]


def test_streaming_backend_keeps_only_the_newest_frame_and_its_marks() -> None:
    slot = LatestFrame()
    for seq in range(1, 6):
        slot.put(WorldFrame(np.zeros((2, 2, 3), np.uint8), seq, seq, ("t1",) if seq == 2 else ()))
    frame = slot.take()
    assert frame is not None and frame.seq == 5 and frame.first_for == ("t1",)
    assert slot.take() is None and slot.overwritten == 4


def test_first_frame_after_an_intent_is_marked_within_one_period() -> None:
    sink = ListSink()
    pacer = Pacer(ProceduralBackend(160, 96), sink)
    pacer.step(0)
    pacer.step(PERIOD)
    sent = PERIOD + 13 * MS
    assert pacer.submit(Intent({"storm": 1.0}, trace_id="tr-1", t_ns=sent)) is None
    pacer.step(2 * PERIOD)
    pacer.step(3 * PERIOD)
    marked = [m for m in sink.metas if m["first_for"]]
    assert len(marked) == 1 and marked[0]["first_for"] == ["tr-1"]
    assert 0 < int(marked[0]["t_ns"]) - sent <= PERIOD  # type: ignore[call-overload]
    assert sink.metas[-1]["reflects"] == ["tr-1"] and sink.metas[-1]["first_for"] == []
    # The marked frame already differs from the one before it.
    before, after = sink.frames[1][0], sink.frames[2][0]
    assert np.mean(np.abs(before.astype(np.int16) - after.astype(np.int16))) > 1.0


def test_bad_intents_and_backend_errors_do_not_stop_the_stage() -> None:
    backend = FakeBackend(every_ns=0, fail_at=3)
    sink = ListSink()
    pacer = Pacer(ProceduralBackend(64, 64), sink)
    assert pacer.submit(Intent({"lava": 1.0}, trace_id="x")) == "unknown word 'lava'"
    assert "must be in (0, 1]" in str(pacer.submit(Intent({"rain": float("nan")})))
    assert pacer.submit(Intent({}, prompt="p" * 10_000)) is not None
    assert pacer.submit(Intent({"rain": 1.0}, trace_id="ok")) is None
    drive(pacer, 3)
    assert pacer.stats().rejected == 3 and pacer.stats().frames == 3
    failing = Pacer(backend, sink)
    drive(failing, 5)
    s = failing.stats()
    assert s.backend_errors == 1 and s.frames == 5 and s.repeats == 1


def test_real_time_cadence_skips_missed_ticks_instead_of_bursting() -> None:
    class Sluggish(FakeBackend):
        def poll(self, now_ns: int) -> WorldFrame | None:
            time.sleep(0.06)  # slower than the 40 ms period
            return super().poll(now_ns)

    sink = ListSink()
    pacer = Pacer(Sluggish(every_ns=0), sink)
    stats = pacer.run(duration_s=0.5)
    times = [int(m["t_ns"]) for m in sink.metas]  # type: ignore[call-overload]
    assert stats.late_ticks > 0
    # Never two frames back to back to catch up.
    assert min(np.diff(times)) > 0.75 * PERIOD


def test_threaded_run_and_stop() -> None:
    sink = ListSink()
    pacer = Pacer(ProceduralBackend(96, 64), sink, fps=50)
    pacer.start()
    try:
        time.sleep(0.3)
        pacer.submit(Intent({"night": 1.0}, trace_id="n", t_ns=time.monotonic_ns()))
        time.sleep(0.2)
    finally:
        pacer.stop()
    assert not any(t.name == "world-pacer" for t in threading.enumerate())
    assert any(m["first_for"] == ["n"] for m in sink.metas)
    assert pacer.stats().frames >= 5


def test_fps_is_checked() -> None:
    with pytest.raises(ValueError, match="fps"):
        Pacer(FakeBackend(0), ListSink(), fps=0)


class VirtualTime:
    """A clock and a wait that run the pacer's real loop in virtual time: waiting moves the clock
    on, and each scheduled call (an intent arriving) runs when the clock reaches its moment and
    ends the wait early, as an intent waking the loop does. Every clock read takes 1 us, so
    the loop's final spin ends."""

    def __init__(self) -> None:
        self.t = 0
        self.scheduled: list[tuple[int, object]] = []

    def clock(self) -> int:
        self.t += 1_000
        return self.t

    def at(self, t_ns: int, call: object) -> None:
        self.scheduled.append((t_ns, call))
        self.scheduled.sort(key=lambda e: e[0])

    def wait(self, seconds: float) -> None:
        until = self.t + int(seconds * 1e9)
        if self.scheduled and self.scheduled[0][0] <= until:
            when, call = self.scheduled.pop(0)
            self.t = max(self.t, when)
            call()  # type: ignore[operator]
        else:
            self.t = until


def run_virtual(respond: str, intent_at: int, frames: int = 6) -> list[dict[str, object]]:
    vt = VirtualTime()
    sink = ListSink()
    pacer = Pacer(ProceduralBackend(96, 64), sink, clock=vt.clock, wait=vt.wait, respond=respond)
    vt.at(intent_at, lambda: pacer.submit(Intent({"storm": 1.0}, trace_id="s", t_ns=intent_at)))
    pacer.run(max_frames=frames)
    return sink.metas


def test_immediate_response_publishes_before_the_next_tick_then_rephases() -> None:
    sent = 53 * MS  # ticks at 40 and 80 ms (the loop starts at 1 us)
    metas = run_virtual("immediate", sent)
    times = [int(m["t_ns"]) for m in metas]  # type: ignore[call-overload]
    marked = [i for i, m in enumerate(metas) if m["first_for"] == ["s"]]
    assert len(marked) == 1
    k = marked[0]
    assert abs(times[0] - PERIOD) < 0.1 * MS and abs(times[1] - 2 * PERIOD) > 10 * MS
    # Shown at once, long before the 80 ms tick would have come ...
    assert sent <= times[k] < sent + 1 * MS < 2 * PERIOD
    # ... and the cadence carries on 40 ms after it, not on the old phase.
    after = np.diff(times[k:])
    assert len(after) >= 3 and np.all(np.abs(after - PERIOD) < 0.1 * MS), after
    assert not any(m["repeated"] for m in metas[k:])


def test_an_intent_after_the_ticks_poll_is_answered_at_once_not_after_the_stale_frame() -> None:
    # The 80 ms tick polls about 13 ms early (the lead while few polls are timed); an intent in
    # between makes that polled frame stale. It is answered at once, the stale frame is never
    # published, and the cadence re-phases from the answer.
    sent = 75 * MS
    metas = run_virtual("immediate", sent)
    times = [int(m["t_ns"]) for m in metas]  # type: ignore[call-overload]
    marked = [i for i, m in enumerate(metas) if m["first_for"] == ["s"]]
    assert len(marked) == 1
    k = marked[0]
    assert sent <= times[k] < sent + 1 * MS < 2 * PERIOD
    assert not any(abs(t - 2 * PERIOD) < 1 * MS for t in times), "the stale 80 ms frame went out"
    after = np.diff(times[k:])
    assert len(after) >= 3 and np.all(np.abs(after - PERIOD) < 0.1 * MS), after


def test_intents_of_a_frame_never_published_are_first_shown_by_the_one_that_replaces_it() -> None:
    sink = ListSink()
    pacer = Pacer(ProceduralBackend(96, 64), sink)
    pacer.step(now_ns=40 * MS)
    pacer.submit(Intent({"storm": 1.0}, trace_id="a", t_ns=41 * MS))
    assert pacer._poll(42 * MS) is False  # polled, not published (as when the tick's frame goes stale)
    pacer.submit(Intent({"snow": 1.0}, trace_id="b", t_ns=43 * MS))
    pacer.step(now_ns=44 * MS)
    assert sink.metas[-1]["first_for"] == ["a", "b"]


def test_tick_response_waits_for_the_next_tick() -> None:
    sent = 53 * MS
    metas = run_virtual("tick", sent)
    times = [int(m["t_ns"]) for m in metas]  # type: ignore[call-overload]
    marked = [int(m["t_ns"]) for m in metas if m["first_for"] == ["s"]]  # type: ignore[call-overload]
    assert len(marked) == 1 and abs(marked[0] - 2 * PERIOD) < 0.1 * MS
    assert np.all(np.abs(np.diff(times) - PERIOD) < 0.1 * MS)


def test_an_intent_a_slow_backend_cannot_show_yet_keeps_the_cadence() -> None:
    vt = VirtualTime()
    sink = ListSink()
    pacer = Pacer(FakeBackend(every_ns=100 * MS), sink, clock=vt.clock, wait=vt.wait)
    vt.at(53 * MS, lambda: pacer.submit(Intent({"rain": 1.0}, trace_id="r")))
    stats = pacer.run(max_frames=5)
    times = [int(m["t_ns"]) for m in sink.metas]  # type: ignore[call-overload]
    assert stats.responses == 0
    assert np.all(np.abs(np.diff(times) - PERIOD) < 0.1 * MS)


def test_respond_is_checked() -> None:
    with pytest.raises(ValueError, match="respond"):
        Pacer(FakeBackend(0), ListSink(), respond="later")


def test_respond_setting() -> None:
    from synesthesia.settings import SettingsError, load_settings

    assert load_settings(environ={}).world.respond == "immediate"
    assert load_settings(environ={"SYNESTHESIA_WORLD__RESPOND": "tick"}).world.respond == "tick"
    with pytest.raises(SettingsError, match=r"^world\.respond: .*'later'"):
        load_settings(environ={"SYNESTHESIA_WORLD__RESPOND": "later"})


def test_real_time_priority_is_asked_for_not_inherited_and_given_back_by_heavy_polls() -> None:
    import os

    from synesthesia.world.pacer import raise_thread_priority

    seen: dict[str, object] = {}

    def body() -> None:  # in a thread of its own: the test runner's threads keep their priority
        seen["got"] = raise_thread_priority()
        seen["self"] = os.sched_getscheduler(0)
        child: list[int] = []
        t = threading.Thread(target=lambda: child.append(os.sched_getscheduler(0)))
        t.start()
        t.join()
        seen["child"] = child[0]

    t = threading.Thread(target=body)
    t.start()
    t.join()
    got = str(seen["got"])
    assert got.startswith(("SCHED_FIFO", "nice", "unchanged")), got
    if not got.startswith("SCHED_FIFO"):
        pytest.skip(f"real-time priority not allowed here ({got})")
    assert int(seen["self"]) & ~getattr(os, "SCHED_RESET_ON_FORK", 0) == os.SCHED_FIFO  # type: ignore[call-overload]
    assert seen["child"] == os.SCHED_OTHER

    class Heavy(FakeBackend):
        def poll(self, now_ns: int) -> WorldFrame | None:
            time.sleep(0.007)  # 7 ms of a 10 ms period, every tick
            return super().poll(now_ns)

    pacer = Pacer(Heavy(every_ns=0), ListSink(), fps=100, realtime=True)
    pacer.start()
    try:
        deadline = time.monotonic() + 5
        while not pacer.priority.startswith("normal") and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        pacer.stop()
    assert pacer.priority.startswith("normal"), pacer.priority


def test_voice_path_niceness_is_per_thread_and_inherited_by_threads_started_after() -> None:
    import os

    from synesthesia.priority import VOICE_NICE, lower_niceness

    seen: dict[str, object] = {}

    def body() -> None:  # in a thread of its own: the test runner's threads keep their niceness
        seen["got"] = lower_niceness()
        seen["self"] = os.getpriority(os.PRIO_PROCESS, 0)
        child: list[int] = []
        t = threading.Thread(target=lambda: child.append(os.getpriority(os.PRIO_PROCESS, 0)))
        t.start()
        t.join()
        seen["child"] = child[0]

    before = os.getpriority(os.PRIO_PROCESS, 0)
    t = threading.Thread(target=body)
    t.start()
    t.join()
    got = str(seen["got"])
    assert got.startswith(("nice", "unchanged")), got
    assert os.getpriority(os.PRIO_PROCESS, 0) == before  # this thread is untouched
    if got.startswith("unchanged"):
        pytest.skip(f"a lower niceness is not allowed here ({got})")
    assert seen["self"] == seen["child"] == VOICE_NICE
