"""Session logs: what steered a live run, written as it goes, read back to replay it.

Recording runs in the world stage process (:class:`SessionRecorder` wraps the procedural
backend); reading and replay run wherever a session is rendered, snapshot or resumed.

A session is a JSON Lines file. Its first line is the header: the settings that shape the
picture (backend, seed, size, fps, easing, a hash of the world vocabulary) and the format
version. Then, in the order they happened:

- ``segment``: a live run began (the first, or a resumed one); names the run's audio file;
- ``start``/``intent``/``settle``: what steered the scene, each keyed by ``f``, the index of
  the first frame it can show (an intent also notes ``t``, the world time then, and its prompt:
  typed prompts reach the world as intents);
- ``frame``: one poll of the world: ``ns`` the tick it was made for (from the segment's first
  frame) and ``p`` the spectral pulse it was drawn with (null: no audio yet);
- ``check``: the CRC-32 of a frame's rendered pixels, every ``check_every`` frames;
- ``audio``: where the segment's captured audio (beside the log, FLAC) sits on its timeline:
  sample ``n`` of the file (``offset`` in the captured stream) was captured ``ns`` after the
  first frame. One mark where the audio starts, another wherever its stream restarts (a
  looping source); a gap of missed chunks is stored as silence.

The procedural world is a pure function of these, so a replay that feeds the scene the same
intents at the same frames and the same tick times draws the same pixels. Lines are written
by a background thread and flushed twice a second: a crash loses under a second.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import queue
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from synesthesia import __version__, _native
from synesthesia.errors import SessionError
from synesthesia.world.base import Intent, WorldFrame
from synesthesia.world.procedural import ProceduralBackend, SteeredScene

__all__ = [
    "SESSION_VERSION",
    "Header",
    "Op",
    "Session",
    "SessionRecorder",
    "Sample",
    "audio_path",
    "frame_checksum",
    "read_session",
    "samples",
    "vocabulary_hash",
]

log = logging.getLogger(__name__)

SESSION_VERSION = 1
AUDIO_RATE = 16000
#: Default spacing of pixel checksums (frames): one a second at 25 fps.
CHECK_EVERY = 25
_FLUSH_S = 0.5
#: Only the procedural world is a pure function of what the log holds.
DETERMINISTIC = ("procedural",)


def vocabulary_hash() -> str:
    """Hash of the words the world understands, their categories and the state layout: a
    session steered with another vocabulary cannot replay here."""
    text = json.dumps([_native.world_vocabulary(), _native.world_state_names()])
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def frame_checksum(pixels: npt.NDArray[np.uint8]) -> int:
    """CRC-32 of a frame's bytes (C order); zlib releases the GIL while it runs."""
    return zlib.crc32(np.ascontiguousarray(pixels).data)


def audio_path(session: Path, segment: int) -> Path:
    """Where segment ``segment``'s captured audio lives, beside the log."""
    suffix = ".audio.flac" if segment == 0 else f".audio-{segment}.flac"
    return session.with_name(session.stem + suffix)


@dataclass(frozen=True)
class Header:
    backend: str
    seed: int
    width: int
    height: int
    fps: float
    tau: float
    jump: float
    vocabulary: str
    version: int = SESSION_VERSION
    check_every: int = CHECK_EVERY
    synesthesia: str = __version__

    def to_json(self) -> dict[str, Any]:
        return {"type": "session", "version": self.version, "synesthesia": self.synesthesia,
                "backend": self.backend, "seed": self.seed, "width": self.width, "height": self.height,
                "fps": self.fps, "tau": self.tau, "jump": self.jump, "vocabulary": self.vocabulary,
                "check_every": self.check_every}

    @classmethod
    def from_json(cls, rec: dict[str, Any]) -> Header:
        if rec.get("type") != "session":
            raise SessionError("the first line is not a session header", "type")
        if rec.get("version") != SESSION_VERSION:
            raise SessionError(f"session format {rec.get('version')!r}; this build reads {SESSION_VERSION}", "version")
        try:
            return cls(backend=str(rec["backend"]), seed=int(rec["seed"]), width=int(rec["width"]),
                       height=int(rec["height"]), fps=float(rec["fps"]), tau=float(rec["tau"]),
                       jump=float(rec["jump"]), vocabulary=str(rec["vocabulary"]),
                       check_every=int(rec.get("check_every", CHECK_EVERY)),
                       synesthesia=str(rec.get("synesthesia", "?")))
        except KeyError as e:
            raise SessionError("missing from the header", str(e.args[0])) from None
        except (TypeError, ValueError) as e:
            raise SessionError(f"unreadable header value ({e})", "header") from None

    def check_replayable(self) -> None:
        """Refuse, naming the field, a session this build cannot replay exactly."""
        if self.backend not in DETERMINISTIC:
            raise SessionError(f"{self.backend!r} is not deterministic; only {', '.join(DETERMINISTIC)} sessions replay",
                               "backend")
        here = vocabulary_hash()
        if self.vocabulary != here:
            raise SessionError(f"recorded with vocabulary {self.vocabulary}, this build has {here}", "vocabulary")


@dataclass(frozen=True)
class Op:
    """Something that steered the scene before frame ``frame``."""

    kind: str  # "start", "intent" or "settle"
    frame: int
    keywords: dict[str, float] = field(default_factory=dict)
    prompt: str = ""


@dataclass
class Segment:
    index: int
    first_frame: int
    audio: Path
    #: (ns from the segment's first frame, sample index in its audio file) where audio resumes
    audio_marks: list[tuple[int, int]] = field(default_factory=list)

    @property
    def audio_start_ns(self) -> int | None:
        return self.audio_marks[0][0] if self.audio_marks else None


@dataclass
class Session:
    """A parsed session log. ``stopped`` says where and why reading stopped early (truncated or
    corrupt), None when every line was good."""

    path: Path
    header: Header
    segments: list[Segment] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)
    #: frame index -> (segment, tick ns from the segment's first frame, pulse or None)
    frames: list[tuple[int, int, list[float] | None]] = field(default_factory=list)
    checks: dict[int, int] = field(default_factory=dict)
    stopped: str | None = None
    #: bytes of the file up to the end of the last good record
    good_bytes: int = 0
    #: the only damage is a last line cut short (a crash mid-write): safe to cut off and go on
    cut_short: bool = False

    @property
    def period_ns(self) -> int:
        return int(round(1e9 / self.header.fps))

    def ticks(self) -> list[int]:
        """Each frame's output slot at the session's fps: ticks the live run skipped (late
        frames) are gaps, and a resumed segment follows its predecessor's last frame."""
        out: list[int] = []
        base = 0
        seg = -1
        for s, ns, _ in self.frames:
            if s != seg:
                base = out[-1] + 1 if out else 0
                seg = s
            out.append(base + int(round(ns / self.period_ns)))
        return out

    def duration_s(self) -> float:
        ticks = self.ticks()
        return 0.0 if not ticks else (ticks[-1] + 1) / self.header.fps


def _record(line: str) -> dict[str, Any]:
    rec = json.loads(line)
    if not isinstance(rec, dict) or not isinstance(rec.get("type"), str):
        raise ValueError("not a record object")
    return rec


def read_session(path: str | Path) -> Session:
    """Parse a session log up to its last good record.

    A header that is missing, of another version or unreadable raises :class:`SessionError`;
    a bad line later (a crash mid-write, corruption) ends the session there and says so in
    :attr:`Session.stopped`."""
    path = Path(path)
    try:
        f = path.open("r", encoding="utf-8", errors="strict")
    except FileNotFoundError:
        raise SessionError(f"no such file: {path}", "session") from None
    with f:
        try:
            first = f.readline()
        except UnicodeDecodeError:
            raise SessionError(f"{path} is not a session log (not text)", "session") from None
        try:
            header = Header.from_json(_record(first))
        except ValueError as e:
            if isinstance(e, SessionError):
                raise
            raise SessionError(f"{path} does not start with a session header", "session") from None
        session = Session(path, header, good_bytes=len(first.encode()))
        seg: Segment | None = None
        lineno = 1
        while True:
            lineno += 1
            try:
                line = f.readline()
            except UnicodeDecodeError:
                session.stopped = f"line {lineno}: not text"
                break
            if not line:
                break
            if not line.endswith("\n"):
                session.stopped = f"line {lineno}: cut short (no end of line)"
                session.cut_short = True
                break
            try:
                rec = _record(line)
                seg = _take(session, rec, seg, path)
            except (ValueError, KeyError, TypeError) as e:
                session.stopped = f"line {lineno}: {e.__class__.__name__}: {e}"
                break
            session.good_bytes += len(line.encode())
    return session


def _take(s: Session, rec: dict[str, Any], seg: Segment | None, path: Path) -> Segment | None:
    kind = rec["type"]
    if kind == "segment":
        index = int(rec["index"])
        if index != len(s.segments):
            raise ValueError(f"segment {index} out of order")
        seg = Segment(index, len(s.frames), audio_path(path, index))
        s.segments.append(seg)
        return seg
    if seg is None:
        raise ValueError(f"a {kind!r} record before any segment")
    if kind == "frame":
        f, ns, pulse = int(rec["f"]), int(rec["ns"]), rec["p"]
        if f != len(s.frames):
            raise ValueError(f"frame {f} where {len(s.frames)} was due")
        if pulse is not None:
            pulse = [float(x) for x in pulse]
            if len(pulse) != 5 or not all(math.isfinite(x) for x in pulse):
                raise ValueError("a pulse is five finite numbers")
        s.frames.append((seg.index, ns, pulse))
    elif kind in ("start", "intent", "settle"):
        f = int(rec["f"])
        if f != len(s.frames):
            raise ValueError(f"{kind} for frame {f} where {len(s.frames)} was due")
        words = {str(w): float(x) for w, x in dict(rec.get("keywords", {})).items()}
        s.ops.append(Op(kind, f, words, str(rec.get("prompt", ""))))
    elif kind == "check":
        s.checks[int(rec["f"])] = int(rec["crc32"])
    elif kind == "audio":
        seg.audio_marks.append((int(rec["ns"]), int(rec.get("n", 0))))
    else:
        raise ValueError(f"unknown record type {kind!r}")
    return seg


# --- replay -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    """What one output frame is drawn from."""

    index: int  # output frame number
    state: list[float]
    t: float  # world time
    pulse: list[float] | None
    source: int  # the session frame it shows (native timing) or the last one before it


def _apply(scene: SteeredScene, op: Op) -> None:
    if op.kind == "start":
        # the words the start prompt gave when recorded (the NLP dictionary may differ here)
        if op.keywords:
            scene.apply(Intent(keywords=op.keywords, prompt=op.prompt))
        scene.settle()
    elif op.kind == "intent":
        scene.apply(Intent(keywords=op.keywords, prompt=op.prompt))
    else:
        scene.settle()


class _Walk:
    """Feeds a scene the session's ops and frame ticks in their live order."""

    def __init__(self, session: Session, scene: SteeredScene) -> None:
        self.session, self.scene = session, scene
        self.op = 0  # next op to apply
        self.seg = -1
        self.next = 0  # next session frame
        self.current: tuple[list[float], float] = ([], 0.0)

    def apply_ops(self, upto: int) -> None:
        ops = self.session.ops
        while self.op < len(ops) and ops[self.op].frame <= upto:
            _apply(self.scene, ops[self.op])
            self.op += 1

    def frame(self, f: int, at_ns: int | None = None) -> tuple[list[float], float]:
        """Frame ``f`` as live (or eased on to ``at_ns``, at or after its tick)."""
        self.apply_ops(f)
        s, ns, _ = self.session.frames[f]
        if s != self.seg:  # a resumed run: its clock starts afresh
            self.scene.rebase()
            self.seg = s
        state, t, _, _ = self.scene.advance(ns if at_ns is None else at_ns)
        self.current = (state, t)
        self.next = f + 1
        return self.current

    def through(self, f: int) -> None:
        while self.next <= f:
            self.frame(self.next)


def replay_scene(session: Session, scene: SteeredScene) -> None:
    """Drive ``scene`` through the whole session (no rendering): a resumed run starts here."""
    walk = _Walk(session, scene)
    walk.through(len(session.frames) - 1)
    walk.apply_ops(len(session.frames))
    scene.rebase()


def samples(session: Session, fps: float | None = None, start_s: float = 0.0,
            end_s: float | None = None) -> Iterator[Sample]:
    """The output frames of ``session`` between ``start_s`` and ``end_s`` (seconds of output).

    At the session's own fps each output frame is the live frame for that tick (a tick the
    live run skipped repeats the frame before it), drawn from exactly the state the live run
    had. At another fps the scene is eased to each output time instead: world time is
    interpolated, not frames; the pulse is the live one of the last frame at or before it."""
    h = session.header
    walk = _Walk(session, SteeredScene(h.tau, h.jump))
    native = fps is None or abs(fps - h.fps) < 1e-9
    out_fps = h.fps if fps is None else fps
    ticks = session.ticks()
    if not ticks:
        return
    total = (ticks[-1] + 1) / h.fps
    end = total if end_s is None else min(end_s, total)
    first = int(math.ceil(start_s * out_fps - 1e-9))
    last = int(math.ceil(end * out_fps - 1e-9))  # exclusive
    f = -1
    for i in range(first, last):
        # where output frame i falls on the session's tick timeline (segments follow each other)
        tick_pos = i * h.fps / out_fps
        while f + 1 < len(ticks) and ticks[f + 1] <= tick_pos + 1e-9:
            f += 1
        if f < 0:
            continue
        if native:
            walk.through(f)
            state, t = walk.current
        else:  # the live frames up to f, then ease on to the exact moment
            walk.through(f - 1)
            state, t = walk.frame(f, session.frames[f][1] + int(round((tick_pos - ticks[f]) * session.period_ns)))
        yield Sample(i, state, t, session.frames[f][2], f)


# --- recording ----------------------------------------------------------------------------------
class _Writer:
    """Appends lines (and audio) from a background thread, flushed every _FLUSH_S."""

    def __init__(self, path: Path, audio: Path) -> None:
        import soundfile  # type: ignore[import-untyped]  # here, not in the writer's first batch

        self._soundfile = soundfile
        self._f = path.open("a", encoding="utf-8")
        self._audio_path = audio
        self._audio: Any = None
        self._q: queue.SimpleQueue[str | npt.NDArray[np.float32] | tuple[int, npt.NDArray[np.uint8]] | None] = \
            queue.SimpleQueue()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="session-writer", daemon=True)
        self._thread.start()

    def line(self, rec: dict[str, Any]) -> None:
        self._q.put(json.dumps(rec, separators=(",", ":")) + "\n")

    def audio(self, samples: npt.NDArray[np.float32]) -> None:
        self._q.put(samples)

    def check(self, frame: int, pixels: npt.NDArray[np.uint8]) -> None:
        """A pixel checksum line for ``frame``, summed on the writer thread, in queue order."""
        self._q.put((frame, pixels))

    def _run(self) -> None:
        # Wake twice a second and write what came as one batch: a wake-up per record would cost
        # more than the records.
        done = False
        while not done:
            done = self._closing.wait(_FLUSH_S)
            lines: list[str] = []
            audio: list[npt.NDArray[np.float32]] = []
            while True:
                try:
                    item = self._q.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, str):
                    lines.append(item)
                elif isinstance(item, tuple):
                    f, pixels = item
                    lines.append(json.dumps({"type": "check", "f": f, "crc32": frame_checksum(pixels)},
                                            separators=(",", ":")) + "\n")
                elif item is not None:
                    audio.append(item)
            if lines:
                self._f.write("".join(lines))
                self._f.flush()
            if audio:
                self._write_audio(np.concatenate(audio))
                self._audio.flush()
        self._f.close()
        if self._audio is not None:
            self._audio.close()

    def _write_audio(self, x: npt.NDArray[np.float32]) -> None:
        if self._audio is None:
            self._audio = self._soundfile.SoundFile(str(self._audio_path), "w", samplerate=AUDIO_RATE, channels=1,
                                              format="FLAC", subtype="PCM_16")
        self._audio.write(np.clip(x, -1.0, 1.0))

    def close(self) -> None:
        self._closing.set()
        self._thread.join(5.0)


class SessionRecorder:
    """A procedural backend that logs what steers it to a session file as the run goes.

    Used by the world stage in place of the backend it wraps. Opening a session that already
    has records resumes it: the scene is replayed to its last state and a new segment appended.
    """

    def __init__(self, backend: ProceduralBackend, path: str | Path, fps: float,
                 check_every: int = CHECK_EVERY) -> None:
        if not isinstance(backend, ProceduralBackend):
            raise SessionError(f"{backend.name!r} is not deterministic; sessions record the procedural world",
                               "world.backend")
        self.inner = backend
        self.name, self.width, self.height = backend.name, backend.width, backend.height
        self.path = Path(path)
        header = Header(backend.name, backend.seed, backend.width, backend.height, float(fps), float(backend.tau),
                        float(backend.jump), vocabulary_hash(), check_every=check_every)
        self.header = header
        self.resumed = self.path.exists() and self.path.stat().st_size > 0
        if self.resumed:
            old = read_session(self.path)
            old.header.check_replayable()
            for name in ("seed", "width", "height", "fps", "tau", "jump"):
                if getattr(old.header, name) != getattr(header, name):
                    raise SessionError(f"the session has {getattr(old.header, name)}, this run "
                                       f"{getattr(header, name)}", name)
            if old.stopped and not old.cut_short:
                raise SessionError(f"{self.path} is damaged ({old.stopped}); render it, or start a new session",
                                   "session")
            if old.cut_short:  # a crash mid-line: the partial record goes, everything before stays
                log.warning("session %s: dropping the partial record at %s", self.path, old.stopped)
                with self.path.open("r+b") as f:
                    f.truncate(old.good_bytes)
            replay_scene(old, backend.scene)
            self._frame = len(old.frames)
            segment = len(old.segments)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._frame = 0
            segment = 0
        self.segment = segment
        self._writer = _Writer(self.path, audio_path(self.path, segment))
        if not self.resumed:
            self._writer.line(header.to_json())
        self._writer.line({"type": "segment", "index": segment, "audio": audio_path(self.path, segment).name,
                           "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        self._lock = threading.Lock()  # keeps each op's frame number true against the poller
        self._t0: int | None = None
        self._written = 0  # audio samples in this segment's file
        self._next_offset: int | None = None  # the audio stream offset that would continue it
        self._ring_reader: threading.Thread | None = None
        self._stopping = threading.Event()

    # --- the backend interface ---------------------------------------------------------------
    def start(self, prompt: str = "") -> None:
        if self.resumed:
            return  # the replayed state is where the run left off
        from synesthesia.world.words import keywords_from_text

        with self._lock:
            self.inner.start(prompt)
            self._writer.line({"type": "start", "f": self._frame, "keywords": keywords_from_text(prompt),
                               "prompt": prompt})

    def apply(self, intent: Intent) -> None:
        with self._lock:
            self.inner.apply(intent)  # a rejected intent raises and is not logged
            self._writer.line({"type": "intent", "f": self._frame, "t": self.inner.scene.now()[1],
                               "keywords": dict(intent.keywords), "prompt": intent.prompt, "trace": intent.trace_id})

    def settle(self) -> None:
        with self._lock:
            self.inner.settle()
            self._writer.line({"type": "settle", "f": self._frame})

    def feed_audio(self, samples: npt.NDArray[np.float32]) -> None:
        self.inner.feed_audio(samples)
        if self._ring_reader is None:  # no ring of its own to read: keep what drives the pulse
            x = np.asarray(samples, dtype=np.float32).reshape(-1).copy()
            offset = self._next_offset or 0
            self._audio(x, offset, time.monotonic_ns())

    def record_audio_ring(self, name: str) -> None:
        """Keep every chunk of the audio ring ``name`` (oldest first, placed by its stream offset)
        as the soundtrack: the world's own audio feed skips to the newest chunk, so it cannot."""
        self._ring_reader = threading.Thread(target=self._read_ring, args=(name,), name="session-audio", daemon=True)
        self._ring_reader.start()

    def _read_ring(self, name: str) -> None:
        try:
            self._read_ring_chunks(name)
        except Exception:  # the soundtrack is lost from here on; the picture and its log go on
            log.exception("session %s: reading the audio ring failed", self.path)

    def _read_ring_chunks(self, name: str) -> None:
        from synesthesia import shm

        ring = shm.FrameRing.attach(name)
        held: tuple[int, int, npt.NDArray[np.float32]] | None = None
        try:
            # Collect what came four times a second without waiting on the ring: a blocking read
            # spins before it sleeps (~0.3 ms of CPU a chunk), and the ring holds seconds of audio.
            while True:
                rec = ring.read(timeout=0)
                if rec is None:
                    if self._stopping.is_set():
                        break  # drained after the stop
                    self._stopping.wait(0.25)
                    continue
                x = np.array(rec.array, dtype=np.float32).reshape(-1)
                meta = rec.meta
                offset, t_ns = int(meta.frame), int(meta.t_source_ns)
                valid = rec.valid()
                del rec  # the ring closes only when no record of it is held
                if not valid:
                    continue  # overwritten while copied: as if missed
                if held is not None:
                    # a chunk's length is where the next begins (a short last chunk is zero-padded)
                    step = offset - held[0]
                    self._audio(held[2][: step if 0 < step < len(held[2]) else len(held[2])], held[0], held[1])
                held = (offset, t_ns, x)
            if held is not None:
                self._audio(held[2], held[0], held[1])
        finally:
            ring.close()

    def _audio(self, x: npt.NDArray[np.float32], offset: int, t_end_ns: int) -> None:
        """Append one chunk (its first sample at stream ``offset``, its last captured at
        ``t_end_ns``) to the soundtrack; from one thread only."""
        t0 = self._t0
        if t0 is None or t_end_ns < t0 or not len(x):
            return  # audio before the first frame has no place on the timeline
        gap = None if self._next_offset is None else offset - self._next_offset
        if gap is not None and 0 < gap <= 5 * AUDIO_RATE:
            self._writer.audio(np.zeros(gap, dtype=np.float32))  # chunks missed: silence keeps the timing
            self._written += gap
        elif gap != 0:  # the first chunk, or the stream restarted: mark where this sample sits
            start_ns = t_end_ns - t0 - int(len(x) * 1e9 / AUDIO_RATE)
            self._writer.line({"type": "audio", "ns": start_ns, "n": self._written, "offset": offset})
        self._writer.audio(x)
        self._written += len(x)
        self._next_offset = offset + len(x)

    def poll(self, now_ns: int) -> WorldFrame:
        with self._lock:  # the frame's line goes before any op that a later frame shows first
            if self._t0 is None:
                self._t0 = now_ns
            frame = self.inner.poll(now_ns)
            f = self._frame
            self._frame += 1
            self._writer.line({"type": "frame", "f": f, "ns": now_ns - self._t0, "p": frame.extra.get("pulse")})
        if f % self.header.check_every == 0:
            # A copy costs a third of the checksum: the writer thread sums it, off the pacer's tick.
            self._writer.check(f, frame.pixels.copy())
        return frame

    def stop(self) -> None:
        self._stopping.set()
        if self._ring_reader is not None:
            self._ring_reader.join(2.0)
        self.inner.stop()
        self._writer.close()

    @property
    def frames(self) -> int:
        return self._frame


def check_frames(session: Session, rendered: Sequence[tuple[int, npt.NDArray[np.uint8]]]) -> list[int]:
    """Session frames among ``rendered`` (frame index, pixels) whose checksum differs."""
    return [f for f, px in rendered if f in session.checks and frame_checksum(px) != session.checks[f]]


def open_recorder(backend: Any, settings: Any, audio_ring: str | None = None) -> SessionRecorder:
    """The world stage's session hook: wrap ``backend`` per ``settings.session`` (a path) and
    keep the audio ring's chunks as the soundtrack."""
    w = settings.world
    rec = SessionRecorder(backend, settings.session, fps=w.fps)
    if audio_ring:
        rec.record_audio_ring(audio_ring)
    log.info("session %s: %s at frame %d", rec.path, "resumed" if rec.resumed else "recording", rec.frames)
    return rec
