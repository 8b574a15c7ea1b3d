"""Capture stage: an audio source -> 16 kHz mono float32 chunks on the audio ring.

Runs in its own process: a shell over :mod:`synesthesia.hearing.sources`. Sources: `demo` (the
bundled spoken demo, looped), `mic` (sounddevice; `capture.device` picks one), a WAV/FLAC path,
`tone[:HZ]` or `silence`. Each 512-sample chunk carries its capture time.

A file (the demo included) is recorded speech that would otherwise start playing while the
stages that hear it are still loading their models; since a new ring reader starts at the
present, the first words would be lost. So a file waits until the stages downstream of it
(:data:`LISTENERS`) heartbeat, at most ``capture.wait_s`` seconds. Live sources start at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from synesthesia import shm
from synesthesia.errors import AudioSourceError, StageFatalError
from synesthesia.hearing.sources import AudioChunk, AudioSource, FileSource, MicSource, open_source
from synesthesia.settings import CaptureSettings
from synesthesia.stages.host import StageContext


#: The stages a spoken command passes before it changes the picture.
LISTENERS = ("listen", "nlp", "world")


def demo_path() -> Path:
    return Path(str(resources.files("synesthesia") / "data" / "demo.flac"))


def open_configured(cfg: CaptureSettings) -> AudioSource:
    if cfg.source == "demo":
        return FileSource(demo_path(), realtime=True)
    if cfg.source == "mic":
        device: int | str | None = cfg.device
        if isinstance(device, str) and device.isdigit():
            device = int(device)
        return MicSource(device)
    return open_source(cfg.source, realtime=cfg.realtime)


def wait_for_listeners(ctx: StageContext, timeout_s: float) -> list[str]:
    """Block until every stage in :data:`LISTENERS` has heartbeat, ``timeout_s`` passed or the
    stage is stopped; return the stages not heard from."""
    waiting = set(LISTENERS)
    deadline = time.monotonic() + timeout_s
    with ctx.subscribe([f"{s}.heartbeat" for s in LISTENERS]) as sub:
        while waiting and not ctx.stop.is_set() and time.monotonic() < deadline:
            ctx.tick()
            got = sub.recv(timeout=0.1)
            if got is not None:
                waiting.discard(got[0].split(".", 1)[0])
    return sorted(waiting)


def _fatal_on_error(source: AudioSource) -> Iterator[AudioChunk]:
    """The source's chunks; a file found corrupt part-way ends the run (restarting would replay
    it up to the same place)."""
    try:
        yield from source
    except AudioSourceError as e:
        if isinstance(source, MicSource):
            raise
        raise StageFatalError(str(e)) from None


def main(ctx: StageContext) -> None:
    cfg = ctx.settings.capture
    ring = shm.FrameRing.attach(ctx.rings["audio"])
    chunks = 0
    waited = False
    try:
        while not ctx.stop.is_set():
            try:
                source = open_configured(cfg)
            except AudioSourceError as e:
                if cfg.source == "mic":
                    # No microphone: say so once and idle; typed prompts still drive the picture.
                    ctx.log.error("%s", e)
                    ctx.idle()
                    return
                # A bad file or spec: restarting cannot fix it, so the run ends with this line.
                raise StageFatalError(str(e)) from None
            with source:
                if isinstance(source, FileSource) and not waited and cfg.wait_s > 0:
                    waited = True
                    missing = wait_for_listeners(ctx, cfg.wait_s)
                    if missing and not ctx.stop.is_set():
                        ctx.log.warning("playing %s although %s did not start within %g s: its first words may be "
                                        "lost", cfg.source, ", ".join(missing), cfg.wait_s)
                for chunk in _fatal_on_error(source):
                    ctx.tick()
                    if ctx.stop.is_set():
                        break
                    with ring.write() as slot:
                        n = min(len(chunk.samples), slot.array.shape[0])
                        slot.array[:n] = chunk.samples[:n]
                        slot.array[n:] = 0.0
                        slot.meta.t_source_ns = chunk.t_capture_ns
                        slot.meta.frame = chunk.offset
                    chunks += 1
                    if chunks % 32 == 0:
                        ctx.status.update(chunks=chunks)
            looping = cfg.loop and cfg.source not in ("mic",)
            if not looping:
                ctx.log.info("audio source %s ended after %d chunks", cfg.source, chunks)
                ctx.idle()
                return
    finally:
        ring.close()
