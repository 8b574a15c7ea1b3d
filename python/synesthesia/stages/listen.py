"""Listen stage: audio ring -> VAD + streaming recognizer -> speech and transcript events.

Runs in its own process: a shell over :class:`synesthesia.hearing.listener.Listener` (silero VAD
through onnxruntime, then the recognizer `listen.recognizer` names: Whisper tiny.en by default,
pocketsphinx, or Vosk over `listen.vosk_model`). It reads
every chunk in order (audio is not skippable like frames) and reports any it lost.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from synesthesia import shm
from synesthesia.priority import lower_niceness
from synesthesia.hearing import build_recognizer, listener_defaults
from synesthesia.hearing.base import Recognizer
from synesthesia.hearing import listener as hl
from synesthesia.hearing.sources import AudioChunk
from synesthesia.intent import load_vocabulary
from synesthesia.messages import FrameStats, SpeechEnd, SpeechStart, TranscriptFinal, TranscriptPartial, new_trace_id
from synesthesia.settings import Settings
from synesthesia.stages.host import StageContext


def to_message(event: hl.Event) -> SpeechStart | SpeechEnd | TranscriptPartial | TranscriptFinal:
    tid = int(event.trace_id)
    if isinstance(event, hl.SpeechStart):
        return SpeechStart(trace_id=tid, t_audio_ns=event.t_capture_ns)
    if isinstance(event, hl.SpeechEnd):
        return SpeechEnd(trace_id=tid, t_audio_ns=event.t_capture_ns)
    if isinstance(event, hl.TranscriptPartial):
        return TranscriptPartial(trace_id=tid, text=event.text, confidence=event.confidence)
    return TranscriptFinal(trace_id=tid, text=event.text, confidence=event.confidence,
                           t_speech_end_ns=event.t_speech_end_ns)


#: The warm-up utterances' length: the most audio one Whisper decode sees (``window_s``).
WARM_UP_S = 4.0


def warm_up(recognizer: Recognizer, seconds: float = WARM_UP_S) -> None:
    """Decode eight utterances of the bundled spoken demo, two of each length from the most
    audio any one decode sees down to 1 s, before the first real utterance, then forget them.
    A decode's buffers grow with its audio and the heap is kept
    (:func:`synesthesia.stages.host.keep_heap`): without this, a stage grew by ~9 MiB in steps
    after its first decode as utterances longer than any before came in (in the soak, a
    restarted stage minutes into its life), and the first of them paid for the page faults in
    its latency; after it, by 2-4 MiB. Costs ~0.5 s at start."""
    from importlib import resources

    from synesthesia.hearing.sources import read_audio

    demo = read_audio(resources.files("synesthesia.data").joinpath("demo.flac"))
    n = int(seconds * 16000)
    # every length from a second up to the longest, twice, longest first: Whisper's buffers
    # come in one shape per second of audio
    lengths = [n - k * 16000 for k in range(int(seconds)) for _ in range(2)]
    for j, length in enumerate(lengths):
        start = j * (len(demo) - n) // len(lengths)
        recognizer.start()
        for i in range(start, start + length, 512):
            recognizer.feed(demo[i:i + 512])
        recognizer.partial()  # the whole utterance in one decode
        recognizer.finish()
    recognizer.new_stream()


def listener_config(settings: Settings) -> hl.ListenerConfig:
    """The listener's tuned defaults for the recognizer with the run's settings applied
    (`listen.vad_threshold`)."""
    base = listener_defaults(settings.listen.recognizer)
    return replace(base, endpointer=replace(base.endpointer, threshold=settings.listen.vad_threshold))


def main(ctx: StageContext) -> None:
    # before the recognizer starts its threads: they inherit it
    ctx.status.update(priority=lower_niceness())
    cfg = ctx.settings
    vocab = load_vocabulary(cfg.nlp.vocabulary)
    recognizer = build_recognizer(vocab, recognizer=cfg.listen.recognizer, vosk_model=cfg.listen.vosk_model)
    t0 = time.perf_counter()
    warm_up(recognizer)
    ctx.status.update(warm_up_ms=round((time.perf_counter() - t0) * 1e3))
    listener = hl.Listener(recognizer, config=listener_config(cfg), new_trace_id=lambda: str(new_trace_id()))
    # A new handle reads from the present on: audio captured before this process existed is stale.
    ring = shm.FrameRing.attach(ctx.rings["audio"])
    lost = processed = 0
    times: list[float] = []
    last = time.monotonic()
    try:
        while not ctx.stop.is_set():
            ctx.tick()
            rec = ring.read(timeout=0.1)
            if rec is None:
                continue
            samples = rec.array.copy()
            if not rec.valid():
                lost += 1
                continue
            if rec.missed:
                lost += rec.missed
                ctx.log.warning("lost %d audio chunks (%.0f ms): this stage fell behind", rec.missed, rec.missed * 32)
            t0 = time.perf_counter()
            events = listener.process(AudioChunk(samples, int(rec.meta.frame), rec.meta.t_source_ns))
            times.append((time.perf_counter() - t0) * 1e6)
            processed += 1
            for event in events:
                ctx.publish(to_message(event))
            now = time.monotonic()
            if now - last >= 1.0 and times:
                a = np.asarray(times)
                ctx.publish(FrameStats(stage=ctx.name, stream="audio", frames=processed, dropped=lost,
                                       fps=len(a) / (now - last), latency_p50_us=float(np.median(a)),
                                       latency_p99_us=float(np.percentile(a, 99))))
                times.clear()
                last = now
    finally:
        ring.close()
