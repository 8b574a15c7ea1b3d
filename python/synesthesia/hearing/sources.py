"""Audio sources for the capture stage (runs in the capture process; in-process in tests and the
bench): a microphone through sounddevice, an audio file, and generated tone or silence. Every
source yields 16 kHz mono float32 chunks stamped with CLOCK_MONOTONIC capture times, whatever the
native rate, channel count and sample format were.
"""

from __future__ import annotations

import importlib
import math
import queue
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from synesthesia.errors import AudioSourceError

__all__ = [
    "RATE",
    "CHUNK",
    "AudioChunk",
    "AudioSource",
    "FileSource",
    "ToneSource",
    "SilenceSource",
    "MicSource",
    "open_source",
    "to_mono_16k",
    "read_audio",
]

RATE = 16000
CHUNK = 512  # 32 ms: one silero VAD window, so the listener never re-buffers in the common case
OTHER_SOURCES = "use an audio file (file:PATH, WAV or FLAC) or a generated source (tone[:HZ], silence)"

Audio = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """``samples``: 16 kHz mono float32. ``offset``: index of its first sample in the stream (the
    audio clock). ``t_capture_ns``: CLOCK_MONOTONIC when its last sample was captured."""

    samples: Audio
    offset: int
    t_capture_ns: int


class AudioSource:
    """Base of every source: iterate it for chunks, close it to release the device."""

    name = "source"

    def __iter__(self) -> Iterator[AudioChunk]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> AudioSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def to_mono_16k(audio: npt.NDArray[Any], rate: int, what: str = "audio") -> Audio:
    """Mixes channels down and resamples to 16 kHz float32; rejects empty and non-finite input.

    ``audio`` is (frames,) or (frames, channels), float in [-1, 1].
    """
    a = np.asarray(audio, dtype=np.float32)
    if a.ndim == 2:
        a = a.mean(axis=1, dtype=np.float32)
    elif a.ndim != 1:
        raise AudioSourceError(f"{what}: expected (frames,) or (frames, channels), got shape {a.shape}")
    if a.size == 0:
        raise AudioSourceError(f"{what}: no audio samples")
    if not np.isfinite(a).all():
        bad = int(np.count_nonzero(~np.isfinite(a)))
        raise AudioSourceError(f"{what}: {bad} samples are NaN or infinite; refusing corrupt audio")
    if rate != RATE:
        import soxr

        a = soxr.resample(a, rate, RATE, quality="HQ").astype(np.float32, copy=False)
    return np.ascontiguousarray(a)


def _open_soundfile(p: Path) -> Any:
    """Opens ``p`` with libsndfile, with an `AudioSourceError` for every way it can be unusable
    before a sample is read (missing, a directory, not audio, no channels, no frames)."""
    import soundfile as sf

    if not p.exists():
        raise AudioSourceError(f"audio file not found: {p}")
    if not p.is_file():
        raise AudioSourceError(f"not a regular file: {p}")
    try:
        f = sf.SoundFile(str(p))
    except sf.LibsndfileError as e:
        raise AudioSourceError(
            f"cannot read {p} as audio ({e.error_string}); supported: WAV, FLAC (and other "
            "formats libsndfile reads, such as OGG)"
        ) from None
    except (RuntimeError, TypeError, ValueError, OSError) as e:
        raise AudioSourceError(f"cannot read {p} as audio: {e}") from None
    if f.channels < 1 or f.samplerate < 1:
        f.close()
        raise AudioSourceError(f"{p}: {f.channels} channels at {f.samplerate} Hz is not audio")
    if f.frames == 0:
        f.close()
        raise AudioSourceError(f"{p} holds no audio samples")
    return f


def _read_block(f: Any, frames: int, p: Path) -> npt.NDArray[np.float32]:
    import soundfile as sf

    try:
        return np.asarray(f.read(frames, dtype="float32", always_2d=True))
    except (sf.LibsndfileError, RuntimeError, ValueError) as e:
        raise AudioSourceError(f"cannot decode {p}: {e}") from None


def read_audio(path: str | Path) -> Audio:
    """Reads a whole WAV/FLAC file (any libsndfile format, any rate, channels, sample format) as
    16 kHz mono float32, with an `AudioSourceError` for every way it can be unusable. For short
    clips; a source plays long files block by block (:class:`FileSource`)."""
    p = Path(path)
    with _open_soundfile(p) as f:
        data = _read_block(f, -1, p)
        rate = f.samplerate
    if data.shape[0] == 0:
        raise AudioSourceError(f"{p} holds no audio samples")
    return to_mono_16k(data, rate, what=str(p))


class _Pacer:
    """Sleeps so chunk k is released when its last sample would have been captured live."""

    def __init__(self, realtime: bool, clock: Callable[[], int]) -> None:
        self.realtime = realtime
        self.clock = clock
        self.t0 = clock()

    def stamp(self, end_sample: int) -> int:
        if self.realtime:
            wait = self.t0 + end_sample * 1_000_000_000 // RATE - self.clock()
            if wait > 0:
                time.sleep(wait / 1e9)
        return self.clock()


def _chunks(audio: Audio, chunk: int, realtime: bool, clock: Callable[[], int]) -> Iterator[AudioChunk]:
    pacer = _Pacer(realtime, clock)
    for start in range(0, len(audio), chunk):
        block = audio[start : start + chunk]
        yield AudioChunk(block, start, pacer.stamp(start + len(block)))


#: Native-rate frames decoded at a time by a file source: a second of 48 kHz audio, so an hour
#: long file costs the same memory as a short one.
FILE_BLOCK = 48000


class FileSource(AudioSource):
    """An audio file, streamed block by block (never loaded whole) and played at real-time pace,
    or as fast as possible with ``realtime=False``. Opening it checks the header and decodes the
    first block, so a bad file fails before streaming starts; a block that turns out corrupt later
    (NaN samples, a decoding error) raises `AudioSourceError` from the iteration."""

    name = "file"

    def __init__(self, path: str | Path, *, realtime: bool = True, chunk: int = CHUNK,
                 clock: Callable[[], int] = time.monotonic_ns) -> None:
        self.path = Path(path)
        self.realtime, self.chunk, self.clock = realtime, chunk, clock
        with _open_soundfile(self.path) as f:
            self.native_rate, self.frames = int(f.samplerate), int(f.frames)
            first = _read_block(f, min(FILE_BLOCK, self.frames), self.path)
        if first.shape[0] == 0:
            raise AudioSourceError(f"{self.path} holds no audio samples (truncated?)")
        to_mono_16k(first, self.native_rate, what=str(self.path))  # NaN / empty checks up front

    @property
    def duration_s(self) -> float:
        return self.frames / self.native_rate

    @property
    def audio(self) -> Audio:
        """The whole file at 16 kHz (for short clips: evaluation and tests)."""
        return read_audio(self.path)

    def blocks(self) -> Iterator[Audio]:
        """16 kHz mono float32 blocks of the file, decoded and resampled as they are needed."""
        import soxr

        resampler = None if self.native_rate == RATE else soxr.ResampleStream(self.native_rate, RATE, 1, dtype="float32")
        decoded = 0
        with _open_soundfile(self.path) as f:
            while True:
                data = _read_block(f, FILE_BLOCK, self.path)
                last = data.shape[0] < FILE_BLOCK
                if data.shape[0]:
                    mono = data.mean(axis=1, dtype=np.float32)
                    if not np.isfinite(mono).all():
                        bad = int(np.count_nonzero(~np.isfinite(mono)))
                        raise AudioSourceError(f"{self.path}: {bad} samples after {decoded / self.native_rate:.1f} s "
                                               "are NaN or infinite; refusing corrupt audio")
                    decoded += data.shape[0]
                    yield mono if resampler is None else resampler.resample_chunk(mono, last=last)
                elif resampler is not None:
                    yield resampler.resample_chunk(np.zeros(0, np.float32), last=True)
                if last:
                    return

    def __iter__(self) -> Iterator[AudioChunk]:
        pacer = _Pacer(self.realtime, self.clock)
        pending = np.zeros(0, np.float32)
        offset = 0
        for block in self.blocks():
            pending = np.concatenate([pending, block]) if len(pending) else block
            while len(pending) >= self.chunk:
                out, pending = pending[: self.chunk], pending[self.chunk :]
                offset += len(out)
                yield AudioChunk(np.ascontiguousarray(out), offset - len(out), pacer.stamp(offset))
        if len(pending):
            yield AudioChunk(np.ascontiguousarray(pending), offset, pacer.stamp(offset + len(pending)))


class ToneSource(AudioSource):
    """A sine tone (or silence at amplitude 0) for a fixed duration, or forever with None."""

    name = "tone"

    def __init__(self, frequency_hz: float = 440.0, amplitude: float = 0.1,
                 duration_s: float | None = 1.0, *, realtime: bool = True, chunk: int = CHUNK,
                 clock: Callable[[], int] = time.monotonic_ns) -> None:
        if not 0 <= frequency_hz < RATE / 2:
            raise AudioSourceError(f"tone frequency {frequency_hz} Hz is outside 0..{RATE // 2} Hz")
        if not 0 <= amplitude <= 1:
            raise AudioSourceError(f"tone amplitude {amplitude} is outside 0..1")
        if duration_s is not None and duration_s <= 0:
            raise AudioSourceError(f"tone duration {duration_s} s must be positive")
        self.frequency_hz, self.amplitude, self.duration_s = frequency_hz, amplitude, duration_s
        self.realtime, self.chunk, self.clock = realtime, chunk, clock

    def __iter__(self) -> Iterator[AudioChunk]:
        total = None if self.duration_s is None else int(round(self.duration_s * RATE))
        pacer = _Pacer(self.realtime, self.clock)
        step = 2 * math.pi * self.frequency_hz / RATE
        start = 0
        while total is None or start < total:
            n = self.chunk if total is None else min(self.chunk, total - start)
            t = np.arange(start, start + n, dtype=np.float64)
            block = (self.amplitude * np.sin(step * t)).astype(np.float32)
            yield AudioChunk(block, start, pacer.stamp(start + n))
            start += n


class SilenceSource(ToneSource):
    name = "silence"

    def __init__(self, duration_s: float | None = 1.0, **kw: Any) -> None:
        super().__init__(0.0, 0.0, duration_s, **kw)


class MicSource(AudioSource):
    """A microphone through sounddevice (PortAudio): device by index or by (part of) its name,
    opened at its native rate and channel count, mixed and resampled to 16 kHz mono per chunk.

    ``sd`` replaces the sounddevice module (tests pass an object with the same ``query_devices``
    / ``InputStream`` interface)."""

    name = "mic"

    def __init__(self, device: int | str | None = None, *, chunk: int = CHUNK, sd: Any = None,
                 clock: Callable[[], int] = time.monotonic_ns) -> None:
        if sd is None:
            try:
                sd = importlib.import_module("sounddevice")
            except (OSError, ImportError) as e:  # no PortAudio library on the machine
                raise AudioSourceError(f"no microphone support here ({e}); {OTHER_SOURCES}") from None
        self.sd, self.chunk, self.clock = sd, chunk, clock
        self.device_index, self.device_name, self.native_rate, self.channels = self._resolve(device)
        self._stream: Any = None

    def _resolve(self, device: int | str | None) -> tuple[int, str, int, int]:
        try:
            devices = list(self.sd.query_devices())
        except Exception as e:  # PortAudioError when the host has no audio system at all
            raise AudioSourceError(f"cannot list audio devices ({e}); {OTHER_SOURCES}") from None
        inputs = [(i, d) for i, d in enumerate(devices) if int(d.get("max_input_channels", 0)) > 0]
        if not inputs:
            raise AudioSourceError(f"no microphone found (no audio input device); {OTHER_SOURCES}")
        names = ", ".join(f"{i}: {d['name']}" for i, d in inputs)
        if device is None:
            try:
                d = self.sd.query_devices(kind="input")
                idx = next(i for i, dd in inputs if dd["name"] == d["name"])
            except Exception:
                idx, d = inputs[0]
        elif isinstance(device, int) or (isinstance(device, str) and device.isdigit()):
            idx = int(device)
            match = [dd for i, dd in inputs if i == idx]
            if not match:
                raise AudioSourceError(f"audio device {idx} is not an input; inputs are {names}")
            d = match[0]
        else:
            match = [(i, dd) for i, dd in inputs if device.lower() in str(dd["name"]).lower()]
            if len(match) != 1:
                how = "no input device" if not match else f"{len(match)} input devices"
                raise AudioSourceError(f"{how} named like {device!r}; inputs are {names}")
            idx, d = match[0]
        return idx, str(d["name"]), int(round(float(d["default_samplerate"]))), min(2, int(d["max_input_channels"]))

    def __iter__(self) -> Iterator[AudioChunk]:
        import soxr

        blocks: queue.Queue[tuple[npt.NDArray[np.float32], int]] = queue.Queue(maxsize=64)

        def callback(indata: Any, frames: int, time_info: Any, status: Any) -> None:
            # PortAudio's thread: copy out and return; a full queue drops the oldest audio.
            try:
                blocks.put_nowait((indata.mean(axis=1, dtype=np.float32), self.clock()))
            except queue.Full:
                pass

        block = max(1, round(self.chunk * self.native_rate / RATE))
        resampler = soxr.ResampleStream(self.native_rate, RATE, 1, dtype="float32")
        self._stream = self.sd.InputStream(device=self.device_index, channels=self.channels,
                                           samplerate=self.native_rate, blocksize=block,
                                           dtype="float32", callback=callback)
        self._stream.start()
        pending = np.zeros(0, np.float32)
        offset = 0
        try:
            while True:
                data, t = blocks.get()
                if not np.isfinite(data).all():
                    continue  # a driver glitch: skip the block rather than poison the VAD state
                pending = np.concatenate([pending, resampler.resample_chunk(data)])
                while len(pending) >= self.chunk:
                    out, pending = pending[: self.chunk], pending[self.chunk :]
                    yield AudioChunk(out, offset, t)
                    offset += len(out)
        finally:
            self.close()

    def close(self) -> None:
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None


def open_source(spec: str, *, realtime: bool = True) -> AudioSource:
    """``mic``, ``mic:NAME`` or ``mic:INDEX``, ``file:PATH`` (or a bare path), ``tone``,
    ``tone:HZ``, ``silence``, ``silence:SECONDS``."""
    kind, _, arg = spec.partition(":")
    if kind == "mic":
        return MicSource(arg or None)
    if kind == "tone":
        return ToneSource(_number(spec, arg, 440.0), duration_s=None, realtime=realtime)
    if kind == "silence":
        return SilenceSource(_number(spec, arg, None), realtime=realtime)
    if kind == "file":
        return FileSource(arg, realtime=realtime)
    return FileSource(spec, realtime=realtime)


def _number(spec: str, arg: str, default: float | None) -> Any:
    if not arg:
        return default
    try:
        value = float(arg)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise AudioSourceError(f"audio source {spec!r}: {arg!r} is not a number; {OTHER_SOURCES}")
    return value
