"""`synesthesia devices` and `synesthesia doctor`: clear answers, real checks."""

from __future__ import annotations

import socket
import subprocess
import sys
from typing import Any

from synesthesia.cli.devices import input_devices


def synesthesia(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "synesthesia", *args], capture_output=True, text=True, timeout=120)


class FakeSoundDevice:
    """sounddevice's documented `query_devices()` shape: a list of dicts."""

    def __init__(self, devices: list[dict[str, Any]]) -> None:
        self.devices = devices

    def query_devices(self) -> list[dict[str, Any]]:
        return self.devices


def test_input_devices_lists_only_inputs() -> None:
    sd = FakeSoundDevice([
        {"name": "HDMI out", "max_input_channels": 0, "default_samplerate": 48000.0},
        {"name": "USB mic", "max_input_channels": 1, "default_samplerate": 44100.0},
    ])
    assert input_devices(sd) == [(1, "USB mic", 1, 44100)]
    assert input_devices(FakeSoundDevice([])) == []


def test_devices_answers_clearly_without_a_sound_card() -> None:
    r = synesthesia("devices")
    assert r.returncode == 0 and "Traceback" not in r.stderr
    # This machine has no sound card: the answer names the sources that work instead.
    if "no audio input devices" in r.stdout:
        assert "file:PATH" in r.stdout and "browser" in r.stdout
    else:
        assert "--device" in r.stdout


def test_doctor_checks_and_reports_a_taken_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = synesthesia("doctor", "--port", str(port))
    assert r.returncode == 0, r.stdout + r.stderr
    for name in ("native module", "onnxruntime", "silero VAD", "pocketsphinx", "shared memory"):
        assert any(line.startswith("ok") and name in line for line in r.stdout.splitlines()), name
    assert f"127.0.0.1:{port} is taken" in r.stdout
