"""The whole engine with a browser as its microphone: a spoken WAV played by chromium's fake
microphone travels AudioWorklet -> WebSocket -> serve -> audio ring -> listen -> nlp, and the
intent it speaks comes back to the page (real processes, real chromium)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from test_viewer_browser import Cdp, _chromium, _launch

from synesthesia import tracing

SPEECH = Path(__file__).parent / "data" / "speech"


def test_spoken_wav_through_the_browser_mic_gives_its_intent(tmp_path: Path) -> None:
    exe = _chromium()
    log = tmp_path / "trace.jsonl"
    env = dict(os.environ, SYNESTHESIA_RUNTIME_DIR=str(tmp_path / "rt"), PYTHONUNBUFFERED="1",
               **{tracing.ENV: str(log)})
    run = subprocess.Popen([sys.executable, "-m", "synesthesia", "run", "--source", "browser", "--port", "0"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    proc = cdp = None
    profile = tmp_path / "profile"
    try:
        url = ""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            r = subprocess.run([sys.executable, "-m", "synesthesia", "status", "--json"], capture_output=True,
                               text=True, env=env, timeout=30)
            if r.returncode == 0:
                st = json.loads(r.stdout)
                if st["viewer"] and all(s["state"] == "running" for s in st["stages"]):
                    url = st["viewer"]
                    break
            time.sleep(0.3)
        assert url, "the engine never came up"
        assert "capture" not in {s["name"] for s in st["stages"]}, "the browser is the audio source"
        proc = _launch(exe, SPEECH / "test_0000.wav", profile, tmp_path / "chromium.log")  # "take me to the ocean"
        port_file = profile / "DevToolsActivePort"
        end = time.monotonic() + 60
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            assert proc.poll() is None and time.monotonic() < end, "chromium did not start"
            time.sleep(0.1)
        port, path = port_file.read_text().splitlines()[:2]
        cdp = Cdp(f"ws://127.0.0.1:{port}{path}")
        cdp.open(url)
        cdp.wait("window.synesthesia && window.synesthesia.connected", 30, "the viewer to connect")
        cdp.js("window.synesthesia.toggleMic()", gesture=True)
        cdp.wait("window.synesthesia.mic === 'on'", 15, "the microphone to start")
        cdp.wait("window.synesthesia.events.some(e => e.type === 'intent' && e.intent === 'ocean')", 20,
                 "the spoken intent (ocean) to come back")
        # The page names the utterance by its exact 64-bit trace id (a decimal string on the
        # wire), and the trace log has every hop of it, from the VAD to the page drawing the frame.
        tid = int(cdp.js("window.synesthesia.events.find(e => e.type === 'intent' && e.intent === 'ocean').trace"))
        want = {"speech_start", "speech_end", "transcript_final", "intent", "applied", "first_frame", "sent", "displayed"}
        end = time.monotonic() + 20
        hops: set[str] = set()
        while not want <= hops and time.monotonic() < end:
            hops = {r.hop for r in tracing.read(log)[0] if r.trace_id == tid}
            time.sleep(0.2)
        assert want <= hops, f"missing hops of trace {tid}: {want - hops}"
    finally:
        if cdp is not None:
            cdp.close()
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(profile, ignore_errors=True)
        run.send_signal(signal.SIGINT)
        out, _ = run.communicate(timeout=60)
    assert run.returncode == 0, out
    assert "intent: ocean" in out
