"""Stand-in nlp and world stages for the e2e harness tests (imported by spawned stage
processes by name): the smallest stages that pass trace ids along the real bus and rings, so
the harness is tested against real processes before the real stages land."""

from __future__ import annotations

import time

from synesthesia import shm
from synesthesia.messages import Intent, Prompt, WorldApplied
from synesthesia.stages.host import StageContext


def nlp(ctx: StageContext) -> None:
    """Prompt -> Intent with the same trace id."""
    sub = ctx.subscribe([""])
    n = 0
    try:
        while not ctx.stop.is_set():
            ctx.tick()
            got = sub.recv(timeout=0.05)
            if got is not None and isinstance(got[1], Prompt):
                n += 1
                words = tuple(got[1].text.split()[:2])
                ctx.publish(Intent(trace_id=got[1].trace_id, intent_id=n, keywords=words,
                                   weights=(1.0,) * len(words), prompt=got[1].text, source="typed"))
    finally:
        sub.close()


def world(ctx: StageContext) -> None:
    """Frames at world.fps; after an intent, the next frames carry its trace id."""
    ring = shm.FrameRing.attach(ctx.rings["frames"])
    sub = ctx.subscribe([""])
    period = 1.0 / ctx.settings.world.fps
    current: tuple[int, ...] = ()
    frame = 0
    try:
        while not ctx.stop.is_set():
            ctx.tick()
            got = sub.recv(timeout=0)
            while got is not None:
                if isinstance(got[1], Intent):
                    current = (got[1].trace_id,)
                    ctx.publish(WorldApplied(trace_id=got[1].trace_id, intent_id=got[1].intent_id, frame=frame + 1))
                got = sub.recv(timeout=0)
            frame += 1
            with ring.write() as slot:
                slot.array[...] = frame % 251
                slot.meta.trace_ids = current
                slot.meta.t_source_ns = time.monotonic_ns()
            ctx.stop.wait(period)
    finally:
        sub.close()
        ring.close()


def main(ctx: StageContext) -> None:
    {"nlp": nlp, "world": world}[ctx.name](ctx)
