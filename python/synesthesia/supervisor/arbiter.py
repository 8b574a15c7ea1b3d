"""The arbiter: one run of the engine, from rings and bus to a clean exit.

Runs in the `synesthesia run` process. It cleans up what a crashed run left, creates the run's
private directory, the shared-memory rings and the event bus, spawns a watcher per stage,
answers `status` / `stop` / `say` on its command socket, shows a live view (or plain log lines
when not on a terminal) and, on SIGINT/SIGTERM, a `stop` command, the end of `--duration` or a
critical stage's failure, stops the stages in order and removes every process, socket and
segment it made.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from synesthesia import shm, tracing
from synesthesia.bus import CommandServer, Endpoints, EventProxy, Publisher, Subscriber
from synesthesia.messages import (
    FrameStats,
    Heartbeat,
    Intent,
    LogLine,
    Prompt,
    TranscriptFinal,
    TranscriptPartial,
    WorldApplied,
    new_trace_id,
)
from synesthesia.settings import Settings
from synesthesia.stages import host
from synesthesia.supervisor.policy import RestartPolicy
from synesthesia.supervisor.preflight import preflight
from synesthesia.supervisor.runtime import RuntimeDir, cleanup_stale_runs
from synesthesia.supervisor.watcher import StageSpec, StageState, Watcher

__all__ = ["Arbiter", "default_graph", "AUDIO_CHUNK"]

log = logging.getLogger("synesthesia.supervisor")

#: Samples per audio chunk on the audio ring: 32 ms at 16 kHz (silero VAD's window).
AUDIO_CHUNK = 512
#: Final intents the supervisor keeps for a restarted world stage.
SCENE_MEMORY = 16
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


def default_graph(settings: Settings) -> list[StageSpec]:
    """The stages of a run, upstream first (also the start order; stop runs upstream first
    too, so nothing new enters a pipeline that is draining)."""
    specs = []
    # Hearing is not critical: without it the picture keeps moving and typed prompts still work.
    if settings.capture.source != "browser":  # the browser's mic arrives through the serve stage
        specs.append(StageSpec("capture", "synesthesia.stages.capture", critical=False))
    specs += [
        StageSpec("listen", "synesthesia.stages.listen", critical=False),
        StageSpec("nlp", "synesthesia.stages.nlp", critical=False),
        StageSpec("world", "synesthesia.stages.world"),
        StageSpec("encode", "synesthesia.stages.encode"),
    ]
    if not settings.headless:
        specs.append(StageSpec("serve", "synesthesia.stages.serve"))
    return specs


@dataclass
class _StageView:
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)  # stream -> last FrameStats


class Arbiter:
    def __init__(
        self,
        settings: Settings,
        graph: Sequence[StageSpec] | None = None,
        out: TextIO | None = None,
        live_view: bool | None = None,
    ) -> None:
        self.settings = settings
        self.graph = list(graph if graph is not None else default_graph(settings))
        self.out = out or sys.stdout
        self.live_view = (self.out.isatty() and not settings.headless) if live_view is None else live_view
        self.stop_requested = threading.Event()
        self.stop_reason = ""
        self.watchers: dict[str, Watcher] = {}
        self.views: dict[str, _StageView] = {}
        self.last_transcript = ""
        self.last_intent = ""
        self.recent_logs: deque[str] = deque(maxlen=8)
        self.viewer_url = ""
        self.started = time.monotonic()
        self.rings: dict[str, shm.FrameRing | shm.ByteRing] = {}
        self.runtime: RuntimeDir | None = None
        self.endpoints: Endpoints | None = None
        self.counts: dict[str, int] = {"prompts": 0, "intents": 0, "transcripts": 0, "applied": 0}
        # The run's recent final intents: a restarted world stage replays them (`scene` command)
        # so a crash does not throw away what the user asked for.
        self.scene: deque[Intent] = deque(maxlen=SCENE_MEMORY)

    # -- output ---------------------------------------------------------------------------
    def say(self, stage: str, level: str, text: str) -> None:
        if _LEVELS.get(level, 20) < _LEVELS[self.settings.log_level]:
            return
        line = f"{time.strftime('%H:%M:%S')} {stage:10} {level:7} {text}"
        self.recent_logs.append(line)
        if not self.live_view:
            print(line, file=self.out, flush=True)

    def _render(self) -> None:
        rows = [f"synesthesia  run {self.runtime.run_id if self.runtime else '-'}  up {time.monotonic() - self.started:6.1f} s"
                f"   (Ctrl-C to stop)", f"viewer: {self.viewer_url or '(starting)'}", ""]
        rows.append(f"{'stage':10} {'state':9} {'pid':>7} {'restarts':>8} {'mem MiB':>8}  throughput")
        for w in self.watchers.values():
            st = w.status()
            stats = self.views.get(w.name, _StageView()).stats
            tp = "  ".join(f"{k}: {v['fps']:.1f}/s p50 {v['p50']:.0f}us p99 {v['p99']:.0f}us drop {v['dropped']}"
                           for k, v in stats.items())
            mem = f"{st['memory_mb']:.0f}" if st["memory_mb"] else "-"
            rows.append(f"{w.name:10} {st['state']:9} {st['pid'] or '-':>7} {st['restarts']:>8} {mem:>8}  {tp}")
        rows += ["", f"transcript: {self.last_transcript}", f"intent:     {self.last_intent}", "", *self.recent_logs]
        self.out.write("\x1b[H\x1b[2J" + "\n".join(rows) + "\n")
        self.out.flush()

    # -- lifecycle ------------------------------------------------------------------------
    def _create_rings(self) -> dict[str, str]:
        assert self.runtime is not None
        w = self.settings.world
        names = {}
        specs: dict[str, Callable[[str], shm.FrameRing | shm.ByteRing]] = {
            "audio": lambda n: shm.FrameRing.create(n, (AUDIO_CHUNK,), np.float32, slots=512),
            "frames": lambda n: shm.FrameRing.create(n, (w.height, w.width, 3), np.uint8, slots=6),
            "jpeg": lambda n: shm.ByteRing.create(n, record_size=w.width * w.height * 3 // 2 + 65536, slots=8),
        }
        for ring, make in specs.items():
            name = self.runtime.segment_name(ring)
            self.rings[ring] = make(name)
            names[ring] = name
        return names

    def _command_handlers(self, publisher: Publisher) -> dict[str, Callable[[Any], Any]]:
        def status(_: Any) -> dict[str, Any]:
            return self.status()

        def stop(_: Any) -> str:
            self.request_stop("stop command")
            return "stopping"

        def say(args: Any) -> dict[str, Any]:
            text = args.get("text") if isinstance(args, dict) else None
            if not isinstance(text, str) or not text.strip():
                raise ValueError("say: expected a non-empty 'text'")
            if len(text) > 2000:
                raise ValueError(f"say: text is {len(text)} characters, the limit is 2000")
            tid = new_trace_id()
            publisher.publish(Prompt(trace_id=tid, text=text, source="say"))
            return {"trace_id": tid}

        def scene(_: Any) -> list[dict[str, Any]]:
            return [{"keywords": list(m.keywords), "weights": list(m.weights), "prompt": m.prompt} for m in self.scene]

        return {"status": status, "stop": stop, "say": say, "scene": scene}

    def status(self) -> dict[str, Any]:
        stages = []
        for w in self.watchers.values():
            st = w.status()
            st["streams"] = self.views.get(w.name, _StageView()).stats
            stages.append(st)
        return {
            "run": self.runtime.run_id if self.runtime else None,
            "pid": os.getpid(),
            "uptime_s": round(time.monotonic() - self.started, 3),
            "stages": stages,
            "viewer": self.viewer_url,
            "last_transcript": self.last_transcript,
            "last_intent": self.last_intent,
            "counts": dict(self.counts),
        }

    def request_stop(self, reason: str) -> None:
        if not self.stop_requested.is_set():
            self.stop_reason = reason
            self.stop_requested.set()

    def _on_message(self, topic: str, msg: Any) -> None:
        stage = topic.split(".", 1)[0]
        tracing.stamp_message(msg, stage)  # no-op unless SYNESTHESIA_TRACE is set
        if isinstance(msg, Heartbeat):
            w = self.watchers.get(msg.stage)
            if w is not None and w.pid == msg.pid:
                w.heartbeat()
        elif isinstance(msg, LogLine):
            if msg.stage == "serve" and msg.text.startswith("viewer: "):
                self.viewer_url = msg.text[len("viewer: ") :]
            self.say(msg.stage, msg.level, msg.text)
        elif isinstance(msg, FrameStats):
            view = self.views.setdefault(msg.stage, _StageView())
            view.stats[msg.stream] = {"frames": msg.frames, "fps": msg.fps, "dropped": msg.dropped,
                                      "p50": msg.latency_p50_us, "p99": msg.latency_p99_us}
        elif isinstance(msg, (TranscriptFinal, TranscriptPartial)):
            self.last_transcript = msg.text + ("" if isinstance(msg, TranscriptFinal) else " ...")
            if isinstance(msg, TranscriptFinal):
                self.counts["transcripts"] += 1
                self.say(stage, "info", f"transcript: {msg.text!r} (confidence {msg.confidence:.2f})")
        elif isinstance(msg, Intent):
            self.counts["intents"] += 1
            if not msg.provisional and msg.keywords:
                self.scene.append(msg)
            words = ", ".join(f"{k} {w:.2f}" for k, w in zip(msg.keywords, msg.weights))
            self.last_intent = f"{words}  ({msg.prompt!r})" if msg.prompt else words
            self.say(stage, "info", f"intent: {self.last_intent}{' (provisional)' if msg.provisional else ''}")
        elif isinstance(msg, WorldApplied):
            self.counts["applied"] += 1
        elif isinstance(msg, Prompt):
            self.counts["prompts"] += 1
            self.say(stage, "info", f"prompt ({msg.source}): {msg.text!r}")

    def run(self) -> int:
        """Run until stopped; returns the process exit code (0 clean, 1 a critical stage failed)."""
        cfg = self.settings
        preflight(cfg, stages={spec.name for spec in self.graph})
        if cfg.trace:
            tracing.enable(cfg.trace)  # before any stage spawns: they inherit it
        for line in cleanup_stale_runs(Path(cfg.runtime_dir) if cfg.runtime_dir else None):
            self.say("supervisor", "warning", f"removed a crashed run's leftover: {line}")
        self.runtime = RuntimeDir.create(Path(cfg.runtime_dir) if cfg.runtime_dir else None)
        self.endpoints = Endpoints.for_run(self.runtime.run_id, self.runtime.path)
        ep = self.endpoints
        proxy = EventProxy(ep).start()
        sub = Subscriber([""], ep)
        publisher = Publisher("supervisor", ep)
        control = CommandServer(ep.command("supervisor"), self._command_handlers(publisher))
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in previous:
            signal.signal(s, lambda signum, _f: self.request_stop(signal.Signals(signum).name))
        code = 0
        try:
            ring_names = self._create_rings()
            sup = cfg.supervisor
            for spec in self.graph:
                log_file = str(self.runtime.path / f"{spec.name}.log")
                self.watchers[spec.name] = Watcher(
                    spec,
                    RestartPolicy(sup.restart_backoff_s, sup.restart_backoff_max_s, sup.max_restarts, sup.restart_window_s),
                    host.main,
                    (spec.name, spec.module, cfg.to_dict(), (ep.events_in, ep.events_out, str(ep.directory), ep.run),
                     ring_names, log_file),
                    heartbeat_timeout_s=sup.heartbeat_timeout_s,
                    memory_warn_mb=sup.memory_warn_mb,
                    memory_kill_mb=sup.memory_kill_mb,
                    log=lambda level, text, n=spec.name: self.say("supervisor", level, f"{n}: {text}"),
                )
            for w in self.watchers.values():
                w.start()
            self.say("supervisor", "info", f"run {self.runtime.run_id}: {len(self.watchers)} stages started "
                     f"({', '.join(self.watchers)}); control socket {ep.command('supervisor')}")
            deadline = None if cfg.duration_s is None else time.monotonic() + cfg.duration_s
            next_render = 0.0
            while not self.stop_requested.is_set():
                got = sub.recv(timeout=0.02)
                while got is not None:
                    self._on_message(*got)
                    got = sub.recv(timeout=0)
                for w in self.watchers.values():
                    before = w.state
                    state = w.poll()
                    if state == StageState.FAILED and before != StageState.FAILED and w.fatal:
                        self.request_stop(f"{w.name} cannot run as configured")
                        code = 1
                    elif state == StageState.FAILED and before != StageState.FAILED and w.spec.critical:
                        self.say("supervisor", "error", f"{w.name} failed ({w.fail_reason}); the pipeline cannot run without it")
                        self.request_stop(f"{w.name} failed")
                        code = 1
                while control.serve_once(0):
                    pass
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    self.request_stop(f"--duration {cfg.duration_s:g} s elapsed")
                if self.live_view and now >= next_render:
                    self._render()
                    next_render = now + 0.5
        finally:
            self.say("supervisor", "info", f"stopping: {self.stop_reason or 'error'}")
            self._shutdown()
            for s, h in previous.items():
                signal.signal(s, h)
            control.close()
            publisher.close()
            sub.close()
            proxy.stop()
            for ring in self.rings.values():
                ring.close()
                ring.unlink()
            if self.runtime is not None:
                self.runtime.remove()
        if self.live_view:
            self._render()
        self.say("supervisor", "info", "stopped: no stage processes or shared memory left")
        return code

    def _shutdown(self) -> None:
        grace = self.settings.supervisor.shutdown_grace_s
        for w in self.watchers.values():
            w.request_stop()
            w.finish_stop(time.monotonic() + grace)
