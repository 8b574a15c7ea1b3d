"""World stage: intents in, frames out at a steady cadence, into the frame ring.

Runs in its own process: a shell over a :mod:`synesthesia.world` backend driven by a
:class:`~synesthesia.world.Pacer`. Intents arrive on the bus (`nlp.intent`); the first frame
that shows one is announced as `world.applied` (provisional intents from partial transcripts
are shown in the viewer but not rendered) and every frame carries the trace ids of the
intents it reflects. Audio chunks from the audio ring feed the spectral pulse (the fast path
that moves the picture before recognition finishes).
"""

from __future__ import annotations

import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from synesthesia import shm, tracing
from synesthesia.messages import FrameStats, Intent, WorldApplied
from synesthesia.settings import Settings
from synesthesia.stages.host import StageContext
from synesthesia.world import Intent as WorldIntent
from synesthesia.world import Pacer, WorldBackend, create_backend
from synesthesia.world.pacer import raise_thread_priority


def make_backend(cfg: Settings) -> WorldBackend:
    w = cfg.world
    size = {"width": w.width, "height": w.height}
    if w.backend == "procedural":
        return create_backend("procedural", seed=w.seed, tau=w.time_constant_s, **size)
    if w.backend == "emulate":
        from synesthesia.world.emulate import LatencyProfile

        return create_backend("emulate", seed=w.seed, tau=w.time_constant_s,
                              profile=LatencyProfile(w.emulate_mean_ms, w.emulate_std_ms), **size)
    if w.backend == "onnx":
        if not w.onnx_model:
            raise SystemExit("world: the onnx backend needs a model file (world.onnx_model)")
        return create_backend("onnx", model=w.onnx_model, tau=w.time_constant_s, **size)
    return create_backend("odyssey", **size)


class RingSink:
    """`FrameSink` into the frame ring; announces the first frame that shows each intent."""

    def __init__(self, ring: shm.FrameRing, ctx: StageContext) -> None:
        self.ring = ring
        self.ctx = ctx
        # trace id -> (intent id, intent time), for the `world.applied` announcement
        self.pending: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self.lock = threading.Lock()

    def put(self, frame: Any, meta: Mapping[str, Any]) -> None:
        reflects = [int(t) for t in meta.get("reflects", ()) if str(t).isdigit()]
        with self.ring.write() as slot:
            slot.array[...] = frame
            slot.meta.frame = int(meta["seq"])
            slot.meta.trace_ids = tuple(reflects[-shm.MAX_TRACE_IDS :])
            slot.meta.t_source_ns = int(meta["t_ns"])
        for tid in meta.get("first_for", ()):
            with self.lock:
                intent_id, t_intent = self.pending.pop(str(tid), (0, 0))
            now = time.monotonic_ns()
            self.ctx.publish(WorldApplied(trace_id=int(tid), intent_id=intent_id, frame=int(meta["seq"]),
                                          t_intent_ns=t_intent))
            tracing.stamp("first_frame", int(tid), now, stage="world", frame=int(meta["seq"]))

    def expect(self, trace_id: str, intent_id: int, t_ns: int) -> None:
        with self.lock:
            self.pending[trace_id] = (intent_id, t_ns)
            while len(self.pending) > 64:
                self.pending.popitem(last=False)


def _feed_audio(ctx: StageContext, pacer: Pacer) -> None:
    ring = shm.FrameRing.attach(ctx.rings["audio"])
    try:
        while not ctx.stop.is_set():
            rec = ring.read_latest(timeout=0.2)
            if rec is not None:
                samples = rec.array.copy()
                if rec.valid():
                    pacer.feed_audio(samples)
    finally:
        ring.close()


def restore_scene(ctx: StageContext, pacer: Pacer) -> int:
    """Replay the run's recent final intents, which the supervisor keeps, so a restarted world
    shows what was asked for instead of the default scene; settle at once rather than ease in.
    A supervisor that does not answer (a test harness, say) restores nothing."""
    from synesthesia.bus import CommandClient

    try:
        with CommandClient(ctx.endpoints.command("supervisor")) as client:
            reply = client.call("scene", timeout=1.0)
    except Exception as e:
        ctx.log.warning("could not ask the supervisor for the scene: %s", e)
        return 0
    if reply is None or not reply.ok or not isinstance(reply.result, list):
        return 0
    count = 0
    for item in reply.result:
        try:
            intent = WorldIntent(keywords=dict(zip(item["keywords"], item["weights"])), prompt=item.get("prompt", ""),
                                 t_ns=time.monotonic_ns())
        except (KeyError, TypeError):
            continue
        if pacer.submit(intent) is None:
            count += 1
    settle = getattr(pacer.backend, "settle", None)
    if count and callable(settle):
        settle()
    return count


def main(ctx: StageContext) -> None:
    # Python's default 5 ms thread switch interval shows up directly as frame jitter.
    sys.setswitchinterval(0.0005)
    cfg = ctx.settings
    backend = make_backend(cfg)
    if cfg.session:  # log what steers the picture; an existing session is resumed and appended
        from synesthesia.world.session import open_recorder

        backend = open_recorder(backend, cfg, ctx.rings.get("audio"))
    backend.start(cfg.world.prompt)
    ring = shm.FrameRing.attach(ctx.rings["frames"])
    sink = RingSink(ring, ctx)
    pacer = Pacer(backend, sink, fps=cfg.world.fps, respond=cfg.world.respond, realtime=True)
    sub = ctx.subscribe(["nlp.intent"])
    restored = restore_scene(ctx, pacer)  # after subscribing: nothing published meanwhile is missed
    if restored:
        ctx.log.info("restored the scene from the run's last %d intents", restored)
    ctx.status.update(restored_intents=restored)
    pacer.start()
    audio = threading.Thread(target=_feed_audio, args=(ctx, pacer), name="audio", daemon=True)
    audio.start()
    # Intents arrive on this thread: it hands them to the pacer at the same priority (threads started
    # after this would inherit it, so it comes last).
    ctx.status.update(intake_priority=raise_thread_priority())
    last_stats = time.monotonic()
    last_frames = 0
    try:
        while not ctx.stop.is_set():
            ctx.tick()
            got = sub.recv(timeout=0.1)
            if got is not None and isinstance(got[1], Intent):
                msg = got[1]
                if msg.provisional:
                    # Early guesses from partial transcripts flicker (a word heard for 100 ms);
                    # the picture follows the final intent, the spectral pulse covers the wait.
                    continue
                if not msg.keywords:
                    continue  # a retraction alone: the world keeps easing toward what it has
                intent = WorldIntent(keywords=dict(zip(msg.keywords, msg.weights)), prompt=msg.prompt,
                                     trace_id=str(msg.trace_id), t_ns=msg.t_ns)
                sink.expect(intent.trace_id, msg.intent_id, msg.t_ns)
                reason = pacer.submit(intent)
                if reason is not None:
                    ctx.log.warning("intent %x rejected: %s", msg.trace_id, reason)
                else:
                    tracing.stamp("applied", msg.trace_id, time.monotonic_ns(), stage="world")
            now = time.monotonic()
            if now - last_stats >= 1.0:
                st = pacer.stats()
                ctx.publish(FrameStats(stage=ctx.name, stream="frames", frames=st.frames, dropped=st.dropped,
                                       fps=(st.frames - last_frames) / (now - last_stats),
                                       latency_p50_us=st.jitter_ms_p50 * 1e3, latency_p99_us=st.jitter_ms_p99 * 1e3))
                ctx.status.update(st.as_dict(), priority=pacer.priority)
                last_stats, last_frames = now, st.frames
    finally:
        pacer.stop()
        backend.stop()
        sub.close()
        audio.join(1.0)
        ring.close()
