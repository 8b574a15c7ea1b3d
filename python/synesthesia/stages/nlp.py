"""NLP stage: transcripts and typed prompts -> intents on the bus.

Runs in its own process: a shell over :class:`synesthesia.intent.IntentTracker` and the keyword
dictionary. Partial transcripts may publish early (provisional) intents that the final one
confirms or retracts; typed prompts (viewer, `synesthesia say`) take the same path as speech.
"""

from __future__ import annotations

import itertools
import time

from synesthesia import intent as nlp
from synesthesia import tracing
from synesthesia.messages import Intent, Prompt, TranscriptFinal, TranscriptPartial
from synesthesia.priority import lower_niceness
from synesthesia.stages.host import StageContext


def main(ctx: StageContext) -> None:
    ctx.status.update(priority=lower_niceness())
    vocab = nlp.load_vocabulary(ctx.settings.nlp.vocabulary)
    tracker = nlp.IntentTracker(vocab)
    sub = ctx.subscribe(["listen.transcript", "serve.prompt", "supervisor.prompt"])
    ids = itertools.count(1)
    provisional: dict[int, int] = {}  # trace id -> its latest provisional intent id
    published = 0
    try:
        while not ctx.stop.is_set():
            ctx.tick()
            got = sub.recv(timeout=0.2)
            if got is None:
                continue
            msg = got[1]
            t0 = time.perf_counter_ns()
            if isinstance(msg, TranscriptPartial):
                found = tracker.partial(str(msg.trace_id), msg.text, msg.t_ns)
            elif isinstance(msg, TranscriptFinal):
                found = tracker.final(str(msg.trace_id), msg.text, msg.t_ns)
            elif isinstance(msg, Prompt):
                found = tracker.typed(str(msg.trace_id), msg.text)
            else:
                continue
            nlp_ms = (time.perf_counter_ns() - t0) / 1e6
            if found is None:
                if isinstance(msg, (TranscriptFinal, Prompt)):
                    ctx.log.info("no keyword in %r", msg.text)
                continue
            tid = int(found.trace_id)
            intent_id = next(ids)
            earlier = provisional.pop(tid, 0) if found.final else 0
            if not found.final:
                provisional[tid] = intent_id
            while len(provisional) > 256:
                provisional.pop(next(iter(provisional)))
            out = Intent(trace_id=tid, intent_id=intent_id, keywords=found.keywords, weights=found.weights,
                         prompt=found.prompt, provisional=not found.final,
                         confirms=earlier if found.keywords else 0,
                         retracts=earlier if found.retracted else 0, source=found.source)
            ctx.publish(out)
            if found.final:
                tracing.stamp("intent", tid, out.t_ns, stage="nlp", nlp_ms=nlp_ms)
            published += 1
            ctx.status.update(intents=published, nlp_ms=round(nlp_ms, 4))
    finally:
        sub.close()
