"""A trace log switched on for an ordinary `synesthesia run` records its traced events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from synesthesia import tracing


def test_say_on_a_traced_run_lands_in_the_log_with_its_trace_id(tmp_path: Path) -> None:
    log = tmp_path / "trace.jsonl"
    env = dict(os.environ, SYNESTHESIA_RUNTIME_DIR=str(tmp_path / "rt"), **{tracing.ENV: str(log)})
    run = subprocess.Popen([sys.executable, "-m", "synesthesia", "run", "--headless", "--duration", "20"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    try:
        # Wait until the stages are up: a prompt sent before the world subscribes has no one to
        # apply it.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            r = subprocess.run([sys.executable, "-m", "synesthesia", "status", "--json"], capture_output=True,
                               text=True, env=env, timeout=30)
            if r.returncode == 0 and all(s["state"] == "running" for s in json.loads(r.stdout)["stages"]):
                break
            time.sleep(0.3)
        said = None
        deadline = time.monotonic() + 30
        while said is None and time.monotonic() < deadline:
            r = subprocess.run([sys.executable, "-m", "synesthesia", "say", "a storm over the mountains"],
                               capture_output=True, text=True, env=env, timeout=30)
            if r.returncode == 0:
                said = int(r.stdout.split("trace id ")[1].rstrip(")\n"), 16)
            else:
                time.sleep(0.3)
        assert said is not None, "the run never answered `say`"
        # The prompt is logged by the supervisor as it brokers it; the NLP and the world then
        # add their hops under the same trace id.
        deadline = time.monotonic() + 30
        hops: set[str] = set()
        found = []
        while not {"prompt", "intent", "first_frame"} <= hops and time.monotonic() < deadline:
            found = [r for r in tracing.read(log)[0] if r.trace_id == said] if log.exists() else []
            hops = {r.hop for r in found}
            time.sleep(0.1)
        assert ("prompt", "supervisor", "a storm over the mountains") in [(r.hop, r.stage, r.fields.get("text")) for r in found]
        assert {"intent", "first_frame"} <= hops, hops
    finally:
        subprocess.run([sys.executable, "-m", "synesthesia", "stop"], capture_output=True, env=env, timeout=30)
        out, _ = run.communicate(timeout=60)
    assert run.returncode == 0, out
