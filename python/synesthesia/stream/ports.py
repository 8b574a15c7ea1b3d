"""The seams between the encode/serve logic and the rest of the engine (encode and serve processes).

The stages only need four things from the outside world, each a small protocol here:

- :class:`FrameSource` -- the newest rendered frame (the frame ring's ``read_latest``).
- :class:`RecordSink` / :class:`RecordSource` -- JPEG records out of encode, into serve (the jpeg
  ring's write and ``read_latest``).
- :class:`PromptSink` -- typed prompts from a browser, towards the NLP (a bus publish).
- :class:`AudioSink` -- 16 kHz PCM from a browser microphone, towards capture (the audio ring).

Events coming *back* (transcripts, intents, encoder stats) are pushed into the server with
``StreamServer.post_event``, which is thread-safe, so a bus subscriber thread can call it.

:class:`LatestSlot` is the in-process stand-in for a ring: one writer, any number of readers, each
reader always gets the newest value and counts how many it skipped. It never queues, except that
a slot made with ``depth > 1`` keeps that many recent values for readers made with
``in_order=True`` (the way the serve stage reads video records, which must not skip one).
"""

from __future__ import annotations

import collections
import os
import threading
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from synesthesia.stream.records import FrameMeta, JpegRecord

__all__ = [
    "FrameSource",
    "RecordSink",
    "RecordSource",
    "Prompt",
    "PromptSink",
    "AudioSink",
    "EncoderControl",
    "LatestSlot",
    "SlotReader",
]

Frame = npt.NDArray[np.uint8]
T = TypeVar("T")


class FrameSource(Protocol):
    def latest(self, timeout: float) -> tuple[Frame, FrameMeta] | None:
        """The newest frame not yet returned to this reader, waiting up to ``timeout`` s."""


class RecordSink(Protocol):
    def put(self, record: JpegRecord) -> None:
        """Publish a record; must never block on a slow consumer."""


class RecordSource(Protocol):
    def latest(self, timeout: float) -> JpegRecord | None:
        """The newest record not yet returned to this reader, waiting up to ``timeout`` s.

        A source may also offer ``fileno() -> int``: a descriptor that turns readable when a
        record is ready and is reset by ``latest``. The server then waits on it inside its event
        loop; without it, a thread blocks in ``latest`` and hops each record onto the loop, which
        costs a second thread wake-up per frame.
        """


@dataclass(frozen=True, slots=True)
class Prompt:
    """A prompt typed in a viewer. ``t_ns`` is ``time.monotonic_ns()`` when it arrived."""

    text: str
    client: str
    t_ns: int
    trace_id: int


class PromptSink(Protocol):
    def submit(self, prompt: Prompt) -> None:
        """Hand the prompt on; called on the server's event loop, so it must not block."""


class AudioSink(Protocol):
    def push(self, pcm: npt.NDArray[np.int16], t_ns: int, client: str) -> None:
        """16 kHz mono signed 16-bit samples; called on the server's event loop, must not block."""


class EncoderControl(Protocol):
    def demand(self, keyframe: bool = False, jpeg: bool = False, reason: str = "", video: bool | None = None) -> None:
        """Serve -> encode: a key frame next, JPEG wanted beside the video, whether any viewer
        decodes the video. Called on the server's event loop, so it must not block (a bus
        publish, or a flag in-process)."""


class LatestSlot(Generic[T]):
    """One value at a time, overwritten by each ``put``; readers wake on every new value."""

    def __init__(self, depth: int = 1) -> None:
        self._cond = threading.Condition()
        self._value: T | None = None
        self._history: collections.deque[tuple[int, T]] = collections.deque(maxlen=max(1, depth))
        self._seq = 0
        self._closed = False
        self._fds: list[int] = []

    def put(self, value: T) -> None:
        with self._cond:
            self._value = value
            self._seq += 1
            self._history.append((self._seq, value))
            self._cond.notify_all()
            self._signal()

    def close(self) -> None:
        """Wake every waiting reader; later reads return None at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            self._signal()

    def _signal(self) -> None:
        for fd in self._fds:
            try:
                os.eventfd_write(fd, 1)
            except BlockingIOError:  # counter full: the reader is already due to wake
                pass

    @property
    def seq(self) -> int:
        return self._seq

    def reader(self, in_order: bool = False) -> SlotReader[T]:
        return SlotReader(self, in_order)


class SlotReader(Generic[T]):
    """A cursor into a :class:`LatestSlot`; ``skipped`` counts values it never saw."""

    def __init__(self, slot: LatestSlot[T], in_order: bool = False) -> None:
        self._slot = slot
        self._in_order = in_order
        self._seen = slot.seq
        self.skipped = 0
        self._fd: int | None = None

    def fileno(self) -> int:
        """An eventfd that is readable while a newer value waits (Linux); ``latest`` resets it."""
        if self._fd is None:
            with self._slot._cond:
                self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
                self._slot._fds.append(self._fd)
                if self._slot._seq != self._seen:
                    os.eventfd_write(self._fd, 1)
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            with self._slot._cond:
                self._slot._fds.remove(self._fd)
            os.close(self._fd)
            self._fd = None

    def latest(self, timeout: float) -> T | None:
        slot = self._slot
        if self._fd is not None:
            try:
                os.eventfd_read(self._fd)
            except BlockingIOError:
                pass
        with slot._cond:
            if not slot._cond.wait_for(lambda: slot._seq != self._seen or slot._closed, timeout):
                return None
            if slot._seq == self._seen:
                return None
            if self._in_order:
                for seq, value in slot._history:
                    if seq > self._seen:
                        self.skipped += seq - self._seen - 1
                        self._seen = seq
                        return value
            self.skipped += slot._seq - self._seen - 1
            self._seen = slot._seq
            return slot._value
