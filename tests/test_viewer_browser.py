"""The viewer in a real browser: Debian's headless chromium, driven over the DevTools protocol.

One chromium and one demo pipeline serve the whole module (starting a browser is the expensive
part on a small machine). The fake microphone plays a WAV made here, so the PCM reaching the
audio sink can be checked for the tone that went in. Without chromium these tests skip with the
reason; under CI=true they fail instead, because CI must exercise the browser.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from synesthesia.bench.browser import CANVAS_DIGEST, VIEWER_STATE, find_chromium, launch_chromium
from synesthesia.bench.browser import Cdp as PackageCdp
from synesthesia.stream.demo import DemoPipeline

TONE_HZ = 440.0


def _chromium() -> str:
    if path := find_chromium():
        return path
    reason = (
        "REAL-BROWSER VIEWER TESTS NOT RUN: no chromium on PATH. `make test` installs Debian's "
        "chromium when it runs as root with apt-get; otherwise `apt-get install chromium` or set "
        "SYNESTHESIA_CHROMIUM."
    )
    if os.environ.get("CI") == "true":
        pytest.fail(reason + " (CI=true: the browser tests must run here)", pytrace=False)
    pytest.skip(reason)


class Cdp(PackageCdp):
    """The package's DevTools client with the tests' patience: CI shares 2 cores, so waits are
    generous multiples of what a quiet machine needs, and a timeout shows the viewer's state."""

    def wait(self, expression: str, timeout: float = 15.0, what: str = "", state: str = VIEWER_STATE) -> Any:
        return super().wait(expression, 3 * timeout, what, state)


def _launch(exe: str, wav: Path, profile: Path, log_path: Path) -> subprocess.Popen[bytes]:
    return launch_chromium(exe, profile, log_path, fake_audio=wav)


def _tone_wav(path: Path, seconds: float = 3.0, rate: int = 48000) -> None:
    t = np.arange(int(seconds * rate)) / rate
    pcm = (0.5 * 32767 * np.sin(2 * np.pi * TONE_HZ * t)).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cdp, DemoPipeline, Path]]:
    exe = _chromium()
    work = tmp_path_factory.mktemp("viewer")
    wav = work / "tone.wav"
    _tone_wav(wav)
    pipe = DemoPipeline(width=640, height=352, fps=25.0, codec="jpeg").start()
    profile = work / "profile"
    proc = _launch(exe, wav, profile, work / "chromium.log")
    cdp = None
    try:
        port_file = profile / "DevToolsActivePort"
        end = time.monotonic() + 60
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if proc.poll() is not None or time.monotonic() > end:
                raise AssertionError(f"chromium did not start: {(work / 'chromium.log').read_text()[-2000:]}")
            time.sleep(0.1)
        port, path = port_file.read_text().splitlines()[:2]
        cdp = Cdp(f"ws://127.0.0.1:{port}{path}")
        cdp.open(pipe.server.url)
        cdp.wait("window.synesthesia && window.synesthesia.connected", 30, "the viewer to connect")
        yield cdp, pipe, work
    finally:
        if cdp is not None:
            cdp.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        pipe.stop()
        shutil.rmtree(profile, ignore_errors=True)




def _screenshot(cdp: Cdp) -> Image.Image:
    data = base64.b64decode(cdp.call("Page.captureScreenshot", {"format": "png"})["data"])
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def test_frames_are_drawn(browser: tuple[Cdp, DemoPipeline, Path]) -> None:
    cdp, pipe, work = browser
    cdp.wait("window.synesthesia.framesDrawn >= 5", 20, "five drawn frames")
    first = cdp.js(CANVAS_DIGEST)
    drawn = cdp.js("window.synesthesia.framesDrawn")
    cdp.wait(f"window.synesthesia.framesDrawn >= {drawn + 10}", 20, "ten more frames")
    second = cdp.js(CANVAS_DIGEST)
    assert (first["w"], first["h"]) == (160, 88)
    assert first["hash"] != second["hash"], "canvas pixels did not change between frames"
    assert max(second["mean"]) > 20, f"canvas is dark: {second}"
    shot = _screenshot(cdp)
    shot.save(work / "viewer.png")
    pixels = np.asarray(shot.convert("RGB"), dtype=np.float64)
    assert pixels.std() > 20, "screenshot is blank"
    # The page acknowledged frames: display latency is measured on the server.
    client = next(iter(pipe.server.clients))
    assert client.display_ns and client.frames > 10


def test_hud_shows_the_stream_health(browser: tuple[Cdp, DemoPipeline, Path]) -> None:
    cdp, _, _ = browser
    cdp.wait("window.synesthesia.hud && window.synesthesia.hud.encoder && window.synesthesia.hud.encoder.mode", 15, "a HUD event with encoder stats")
    text = cdp.wait("(t => t.includes('fps') && !t.includes('fps 0.0') && t.includes('nano') && t)(document.getElementById('hud').textContent)", 10, "HUD text")
    assert "kbps" in text and "dropped" in text and "latency ms" in text and "nano" in text


def test_typed_prompt_gives_an_intent_and_a_changed_frame(browser: tuple[Cdp, DemoPipeline, Path]) -> None:
    cdp, pipe, work = browser
    before = cdp.js(CANVAS_DIGEST)["mean"]
    cdp.js("document.getElementById('prompt').focus()")
    cdp.call("Input.insertText", {"text": "a forest at dawn"})
    cdp.js("document.querySelector('#prompt-form button').click()", gesture=True)
    cdp.wait("window.synesthesia.events.some(e => e.type === 'intent' && e.intent === 'forest')", 10, "the forest intent")
    assert any(p.text == "a forest at dawn" for p in pipe.brain.prompts)
    trace = cdp.js("window.synesthesia.events.find(e => e.type === 'intent' && e.intent === 'forest').trace")
    cdp.wait(f"window.synesthesia.lastTraced && window.synesthesia.lastTraced.trace.includes({json.dumps(trace)})", 10, "a frame traced to the prompt")
    cdp.wait(f"window.synesthesia.lastDrawn > window.synesthesia.lastTraced.frame", 10, "the traced frame drawn")
    after = cdp.js(CANVAS_DIGEST)["mean"]
    # The forest look lifts green against red; the picture visibly changed.
    assert after[1] / max(after[0], 1) > 1.2 * before[1] / max(before[0], 1), (before, after)
    assert "forest" in cdp.js("document.getElementById('intents').textContent")
    assert "a forest at dawn" in cdp.js("document.getElementById('transcript').textContent")
    # The HUD shows the traced frame's per-stage latencies once it has redrawn.
    hud = cdp.wait("(t => /typed→intent [0-9.]+/.test(t) && /intent→frame [0-9.]+/.test(t) && t)(document.getElementById('hud').textContent)", 5, "per-stage latencies in the HUD")
    assert "frame→encoded" in hud
    _screenshot(cdp).save(work / "viewer-forest.png")


def test_fake_microphone_streams_16khz_pcm_to_the_sink(browser: tuple[Cdp, DemoPipeline, Path]) -> None:
    cdp, pipe, _ = browser
    start = pipe.audio.samples
    cdp.js("window.synesthesia.toggleMic()", gesture=True)
    cdp.wait("window.synesthesia.mic === 'on' || window.synesthesia.mic === 'error'", 15, "the microphone to start")
    assert cdp.js("window.synesthesia.mic") == "on", cdp.js("window.synesthesia.errors")
    end = time.monotonic() + 15
    while pipe.audio.samples - start < 24000 and time.monotonic() < end:
        time.sleep(0.1)
    t0 = time.monotonic()
    cdp.wait("window.synesthesia.events.some(e => e.type === 'audio')", 10, "an audio event back")
    got = pipe.audio.samples - start
    cdp.js("window.synesthesia.toggleMic()", gesture=True)
    assert got >= 24000, f"only {got} samples arrived"
    # Rate check: the sink receives 16 kHz, i.e. about as many samples as seconds * 16000.
    pcm = pipe.audio.pcm()[-16000:].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(pcm.size)))
    peak = np.argmax(spectrum[1:]) + 1
    assert peak * 16000 / pcm.size == pytest.approx(TONE_HZ, abs=6), "the tone did not survive capture -> 16 kHz PCM"
    assert np.sqrt(np.mean(pcm**2)) > 1000, "the PCM is near silence"
    assert time.monotonic() - t0 < 10
