"""The listen stage's logic (runs in the listen process; in-process in tests and the bench): VAD
over 512-sample windows, an endpointer that opens and closes utterances, and a streaming
recognizer fed while speech lasts, emitting plain event dataclasses.

Every utterance gets a fresh trace id at speech start. Timestamps are CLOCK_MONOTONIC ns
(`time.monotonic_ns`); ``offset`` fields are positions on the audio clock (samples at 16 kHz
since the stream began), which is what lets the bench measure latency from the audio itself.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from synesthesia.hearing.recognizers import Recognizer
from synesthesia.hearing.sources import AudioChunk
from synesthesia.hearing.vad import WINDOW, Endpointer, EndpointerConfig, SileroVAD

__all__ = ["SpeechStart", "SpeechEnd", "TranscriptPartial", "TranscriptFinal", "Event", "Listener",
           "ListenerConfig"]


@dataclass(frozen=True, slots=True)
class SpeechStart:
    trace_id: str
    offset: int  # first sample judged speech (audio clock)
    t_capture_ns: int  # capture time of the chunk that confirmed it
    t_ns: int  # when the event was made


@dataclass(frozen=True, slots=True)
class SpeechEnd:
    trace_id: str
    offset: int  # end of the window that closed the utterance
    t_capture_ns: int
    t_ns: int


@dataclass(frozen=True, slots=True)
class TranscriptPartial:
    trace_id: str
    text: str
    confidence: float
    offset: int  # audio decoded so far
    t_capture_ns: int
    t_ns: int


@dataclass(frozen=True, slots=True)
class TranscriptFinal:
    trace_id: str
    text: str
    confidence: float
    offset: int
    t_capture_ns: int
    t_ns: int
    t_speech_end_ns: int


Event = SpeechStart | SpeechEnd | TranscriptPartial | TranscriptFinal


@dataclass(frozen=True)
class ListenerConfig:
    """``preroll_ms``: audio kept from before the VAD's start decision and fed to the recognizer
    (the VAD confirms speech after it began). ``partials``: emit partial transcripts at all
    (they make early intents possible). ``partial_every``: windows between partial
    transcripts. ``stable_partials``: a partial transcript carries only the leading words that the
    last that many recognizer hypotheses agree on (a word that flickers in and out of the best
    path would otherwise raise and retract early intents); ``pause_stable_partials`` replaces it
    while the VAD's probability is under the endpointer's ``pause_threshold`` (the utterance may
    be ending and little new audio is left to revise the last word; this is what brings early
    intents for a command's last word forward). ``partials_at_pauses_only``: partial transcripts
    (so early intents) only at such a pause, never mid-word: the words of a partial are the ones
    the final most often revises while speech goes on. ``catch_up``: windows decoded per incoming window while the
    pre-roll backlog lasts.
    ``max_utterance_s``: an utterance is cut there so a never-ending noise cannot
    hold the recognizer open."""

    endpointer: EndpointerConfig = EndpointerConfig()
    preroll_ms: int = 320
    partials: bool = True
    partial_every: int = 1
    stable_partials: int = 2
    pause_stable_partials: int = 1  # stable_partials while the VAD hears a pause
    partials_at_pauses_only: bool = True
    catch_up: int = 3
    max_utterance_s: float = 12.0
    # a window this many dB under the loudest window of the utterance so far is a pause too,
    # whatever the VAD says (0: off): the VAD's probability stays high for a window or two after
    # the voice stops (its state smooths it), the signal's energy falls in the window it stops
    pause_drop_db: float = 0.0
    # ... and so is a window within this many dB of the noise floor heard before the utterance
    # (the quietest pre-roll window; 0: off): in steady noise the energy never falls far under
    # the voice's peak, but it falls back to the noise
    pause_floor_db: float = 0.0


def _power(w: npt.NDArray[np.float32]) -> float:
    """A window's mean power."""
    return float(np.dot(w, w)) / len(w)


class Listener:
    """Feed `process` any size of 16 kHz mono float32 chunk; it returns the events due."""

    def __init__(self, recognizer: Recognizer, vad: SileroVAD | None = None,
                 config: ListenerConfig | None = None,
                 clock: Callable[[], int] = time.monotonic_ns,
                 new_trace_id: Callable[[], str] = lambda: uuid.uuid4().hex) -> None:
        self.recognizer = recognizer
        self.vad = vad or SileroVAD()
        self.config = cfg = config or ListenerConfig()
        self.endpointer = Endpointer(cfg.endpointer)
        self.clock, self.new_trace_id = clock, new_trace_id
        self._preroll: deque[npt.NDArray[np.float32]] = deque(maxlen=max(1, cfg.preroll_ms * 16 // WINDOW))
        self._max_windows = int(cfg.max_utterance_s * 16000 / WINDOW)
        self._pending = np.zeros(0, np.float32)
        self._position = 0  # audio-clock sample index just past the last window processed
        self.trace_id: str | None = None
        self._windows = 0
        self._last_partial = ""
        self._backlog: deque[npt.NDArray[np.float32]] = deque()
        self._recent: deque[tuple[str, ...]] = deque(maxlen=max(1, cfg.stable_partials))
        self._drop = 10 ** (-cfg.pause_drop_db / 10) if cfg.pause_drop_db > 0 else 0.0  # a power ratio
        self._peak = 0.0  # the loudest window's mean power in the open utterance
        self._floor = 0.0  # the quietest pre-roll window's, times 10^(pause_floor_db / 10)
        # Per-window VAD time, for the bench: the newest 1024 windows (33 s of audio), since a
        # listen stage runs for hours.
        self.vad_ns: deque[int] = deque(maxlen=1024)

    def reset(self) -> None:
        """Forget the stream (a new file or device): VAD state, buffers, any open utterance."""
        if self.trace_id is not None:
            self.recognizer.finish()
        self.recognizer.new_stream()
        self.vad.reset()
        self.endpointer.reset()
        self._preroll.clear()
        self._backlog.clear()
        self._pending = np.zeros(0, np.float32)
        self._position = 0
        self.trace_id = None

    def process(self, chunk: AudioChunk) -> list[Event]:
        events: list[Event] = []
        buf = chunk.samples if self._pending.size == 0 else np.concatenate([self._pending, chunk.samples])
        if self._pending.size == 0:
            self._position = chunk.offset
        n = len(buf) // WINDOW * WINDOW
        for start in range(0, n, WINDOW):
            self._window(buf[start : start + WINDOW], chunk.t_capture_ns, events)
        self._pending = buf[n:].copy()
        return events

    def flush(self, t_capture_ns: int | None = None) -> list[Event]:
        """End of stream: closes an open utterance."""
        events: list[Event] = []
        if self.trace_id is not None:
            self._close(t_capture_ns if t_capture_ns is not None else self.clock(), events)
        return events

    def run(self, chunks: Iterable[AudioChunk]) -> Iterator[Event]:
        last = None
        for chunk in chunks:
            last = chunk.t_capture_ns
            yield from self.process(chunk)
        yield from self.flush(last)

    def _window(self, w: npt.NDArray[np.float32], t_cap: int, events: list[Event]) -> None:
        cfg = self.config
        t0 = time.perf_counter_ns()
        p = self.vad(w)
        self.vad_ns.append(time.perf_counter_ns() - t0)
        self._position += WINDOW
        decision = self.endpointer.update(p)
        if self.trace_id is None:
            self._preroll.append(w)
            if decision == "start":
                self.trace_id = self.new_trace_id()
                begin = self._position - len(self._preroll) * WINDOW
                events.append(SpeechStart(self.trace_id, begin, t_cap, self.clock()))
                self.recognizer.start()
                # the pre-roll is decoded a little per window from here on, not all at once,
                # so the chunk that opens an utterance does not take 10 windows' decoding time
                self._backlog.extend(self._preroll)
                self._preroll.clear()
                self._windows = 0
                self._last_partial = ""
                self._recent.clear()
                powers = [_power(x) for x in self._backlog]
                self._peak = max(powers)
                self._floor = min(powers) * 10 ** (cfg.pause_floor_db / 10) if cfg.pause_floor_db > 0 else 0.0
            return
        self._backlog.append(w)
        for _ in range(min(len(self._backlog), self.config.catch_up)):
            self.recognizer.feed(self._backlog.popleft())
        self._windows += 1
        if decision == "end" or self._windows >= self._max_windows:
            if self._windows >= self._max_windows:
                self.endpointer.reset()
            self._close(t_cap, events)
        elif self.config.partials and self._windows % self.config.partial_every == 0:
            pausing = self.endpointer.pausing
            if self._drop or self._floor:
                power = _power(w)
                self._peak = max(self._peak, power)
                pausing = pausing or power < max(self._peak * self._drop, self._floor)
            hyp = self.recognizer.partial(pausing=pausing)
            self._recent.append(tuple(hyp.text.split()) if hyp is not None else ())
            need = min(self.config.pause_stable_partials, self.config.stable_partials) if pausing \
                else self.config.stable_partials
            if len(self._recent) < need or (self.config.partials_at_pauses_only and not pausing):
                return
            stable: list[str] = []
            for words in zip(*list(self._recent)[-need:]):
                if len(set(words)) != 1:
                    break
                stable.append(words[0])
            text = " ".join(stable)
            if text and text != self._last_partial:
                self._last_partial = text
                conf = hyp.confidence if hyp is not None else 0.0
                events.append(TranscriptPartial(self.trace_id, text, conf, self._position, t_cap, self.clock()))

    def _close(self, t_cap: int, events: list[Event]) -> None:
        assert self.trace_id is not None
        while self._backlog:
            self.recognizer.feed(self._backlog.popleft())
        t_end = self.clock()
        events.append(SpeechEnd(self.trace_id, self._position, t_cap, t_end))
        hyp = self.recognizer.finish()
        events.append(TranscriptFinal(self.trace_id, hyp.text, hyp.confidence, self._position,
                                      t_cap, self.clock(), t_end))
        self.trace_id = None
