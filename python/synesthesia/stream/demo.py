"""A self-contained pipeline for ``synesthesia serve --demo``, tests and benchmarks (one process).

Stands in for the stages this branch does not own: a panning synthetic scene instead of the world
stage, a tiny keyword table instead of the NLP, and an audio sink that reports the level and pitch
of what a browser microphone sends instead of the capture stage. The encode and serve logic it
drives is the real one; only the ports are in-process (:class:`~synesthesia.stream.ports.LatestSlot`).
"""

from __future__ import annotations

import ssl
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from synesthesia.frames import synthetic_frame
from synesthesia.stream.encoder import ControllerConfig, EncodeLoop
from synesthesia.stream.ports import LatestSlot, Prompt
from synesthesia.errors import StreamConfigError
from synesthesia.stream.h264 import H264Codec, H264Config
from synesthesia.stream.recorder import open_recorder
from synesthesia.stream.records import FrameMeta, JpegRecord
from synesthesia.stream.server import StreamServer

__all__ = ["DemoWorld", "DemoBrain", "DemoAudio", "DemoPipeline", "LOOKS"]

Frame = npt.NDArray[np.uint8]


def _lut(r: float, g: float, b: float, gamma: float = 1.0) -> npt.NDArray[np.uint8]:
    x = np.arange(256, dtype=np.float64) / 255.0
    return np.stack([np.clip(255 * (x**gamma) * k, 0, 255) for k in (r, g, b)]).astype(np.uint8)


#: keyword -> per-channel lookup table, the demo's whole "world model".
LOOKS = {
    "night": _lut(0.35, 0.4, 0.7, 1.4),
    "storm": _lut(0.6, 0.6, 0.65, 1.2),
    "sunset": _lut(1.3, 0.75, 0.5),
    "fire": _lut(1.6, 0.6, 0.3),
    "forest": _lut(0.6, 1.2, 0.6),
    "ocean": _lut(0.5, 0.8, 1.4),
    "snow": _lut(1.0, 1.0, 1.0, 0.5),
}


class DemoWorld:
    """Writes a panning scene to a frame slot at ``fps``; :meth:`apply` changes its look.

    Panning a view over a doubled-width image costs nothing per frame (the kernels read strided
    views), so the demo runs at full rate on a busy machine; a look is applied once per change.
    """

    def __init__(self, slot: LatestSlot[tuple[Frame, FrameMeta]], width: int = 1280, height: int = 704, fps: float = 25.0) -> None:
        self.slot = slot
        self.width, self.height, self.fps = width, height, fps
        base = synthetic_frame(0.0, width, height)
        self._plain = np.concatenate([base, base], axis=1)
        self._wide = self._plain
        self._lock = threading.Lock()
        self._trace: tuple[tuple[int, ...], dict[str, int]] = ((), {})
        self.frame = 0
        self.look = "plain"

    def apply(self, look: str, trace_id: int, t: dict[str, int]) -> None:
        lut = LOOKS.get(look)
        wide = self._plain if lut is None else np.stack([lut[c][self._plain[..., c]] for c in range(3)], axis=-1)
        with self._lock:
            self._wide = wide
            self.look = look
            self._trace = ((trace_id,), dict(t, applied=time.monotonic_ns()))

    def tick(self) -> None:
        # Every frame carries the trace its look answers to, until the next prompt: any single
        # frame may be skipped downstream, and the first one a viewer sees is the one that counts.
        with self._lock:
            wide, (trace, t) = self._wide, self._trace
        off = (self.frame * 4) % self.width
        view = wide[:, off : off + self.width]
        t = dict(t, rendered=time.monotonic_ns())
        self.slot.put((view, FrameMeta(self.frame, trace, t)))
        self.frame += 1

    def run(self, stop: threading.Event) -> None:
        period = 1.0 / self.fps
        nxt = time.monotonic()
        while not stop.is_set():
            self.tick()
            nxt += period
            delay = nxt - time.monotonic()
            if delay < -period:  # fell behind (a loaded machine): skip, never burst
                nxt = time.monotonic()
            elif delay > 0:
                stop.wait(delay)


class DemoBrain:
    """Prompt sink: a transcript event, an intent event and a look change per prompt."""

    def __init__(self, world: DemoWorld, server: StreamServer | None = None) -> None:
        self.world = world
        self.server = server
        self.prompts: deque[Prompt] = deque(maxlen=100)

    def submit(self, prompt: Prompt) -> None:
        self.prompts.append(prompt)
        words = prompt.text.lower().split()
        look = next((w.strip(".,!?") for w in words if w.strip(".,!?") in LOOKS), "plain")
        now = time.monotonic_ns()
        self.world.apply(look, prompt.trace_id, {"transcript": prompt.t_ns, "intent": now})
        if self.server is not None:
            self.server.post_event({"type": "transcript", "text": prompt.text, "final": True, "source": "typed", "trace": str(prompt.trace_id)})
            self.server.post_event({"type": "intent", "intent": look, "weight": 1.0 if look != "plain" else 0.2, "prompt": prompt.text, "trace": str(prompt.trace_id)})


class DemoAudio:
    """Audio sink: keeps the last seconds of browser PCM and reports level and dominant pitch."""

    def __init__(self, server: StreamServer | None = None, keep_s: float = 10.0) -> None:
        self.server = server
        self.samples = 0
        self.chunks = 0
        self._buf: deque[npt.NDArray[np.int16]] = deque()
        self._keep = int(keep_s * 16000)
        self._held = 0
        self._since_report = 0

    def push(self, pcm: npt.NDArray[np.int16], t_ns: int, client: str) -> None:
        self._buf.append(pcm.copy())
        self._held += len(pcm)
        while self._held - len(self._buf[0]) >= self._keep:
            self._held -= len(self._buf.popleft())
        self.samples += len(pcm)
        self.chunks += 1
        self._since_report += len(pcm)
        if self._since_report >= 8000 and self.server is not None:
            self._since_report = 0
            self.server.post_event(self.report())

    def pcm(self) -> npt.NDArray[np.int16]:
        return np.concatenate(list(self._buf)) if self._buf else np.zeros(0, np.int16)

    def report(self) -> dict[str, Any]:
        tail = self.pcm()[-8000:].astype(np.float64)
        rms = float(np.sqrt(np.mean(tail**2))) / 32768 if tail.size else 0.0
        pitch = 0.0
        if tail.size >= 1024:
            spectrum = np.abs(np.fft.rfft(tail * np.hanning(tail.size)))
            pitch = float(np.argmax(spectrum[1:]) + 1) * 16000 / tail.size
        return {"type": "audio", "samples": self.samples, "seconds": round(self.samples / 16000, 2), "rms": round(rms, 4), "pitch_hz": round(pitch, 1)}


class _Tee:
    def __init__(self, *sinks: Any) -> None:
        self.sinks = sinks

    def put(self, record: JpegRecord) -> None:
        for sink in self.sinks:
            sink.put(record)


class DemoPipeline:
    """world -> encode -> serve in threads of this process, wired through latest-value slots."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        width: int = 1280,
        height: int = 704,
        fps: float = 25.0,
        mode: str = "nano",
        target_bps: float = 2_000_000.0,
        record: str | Path | None = None,
        codec: str = "h264",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if codec not in ("h264", "jpeg"):
            raise StreamConfigError(f"codec: expected 'h264' or 'jpeg', got {codec!r}")
        self.frames: LatestSlot[tuple[Frame, FrameMeta]] = LatestSlot()
        # Video records must reach the server in order: it reads the last few, oldest first.
        self.jpegs: LatestSlot[JpegRecord] = LatestSlot(depth=8)
        self.world = DemoWorld(self.frames, width, height, fps)
        self.recorder = open_recorder(record, fps) if record else None
        sink = _Tee(self.jpegs, self.recorder) if self.recorder else self.jpegs
        self._readers = (self.frames.reader(), self.jpegs.reader(in_order=True))
        video = H264Codec(width, height, H264Config(target_bps=target_bps, fps=fps)) if codec == "h264" else None
        self.encoder = EncodeLoop(self._readers[0], sink, mode, ControllerConfig(target_bps=target_bps, fps=fps), video=video,
                                  video_always=str(record or "").lower().endswith(".mp4"))
        self.server = StreamServer(self._readers[1], host=host, port=port, token=token, control=self.encoder,
                                   ssl_context=ssl_context)
        self.brain = DemoBrain(self.world, self.server)
        self.audio = DemoAudio(self.server)
        self.server.prompts = self.brain
        self.server.audio = self.audio
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> DemoPipeline:
        self.server.start_in_thread()
        for name, target in (("demo-world", self.world.run), ("demo-encode", self.encoder.run), ("demo-stats", self._stats)):
            t = threading.Thread(target=target, args=(self._stop,), name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _stats(self, stop: threading.Event) -> None:
        while not stop.wait(1.0):
            self.server.post_event(self.encoder.report())

    def stop(self) -> None:
        self._stop.set()
        self.frames.close()
        self.jpegs.close()
        for t in self._threads:
            t.join(5.0)
        self.server.stop_thread()
        for reader in self._readers:
            reader.close()
        if self.recorder:
            self.recorder.close()

    def __enter__(self) -> DemoPipeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
