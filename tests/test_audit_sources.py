"""Defect 2: a bad audio source ends the run with exit 1 and one line (checked before any stage
starts, and from the capture stage when a file turns out corrupt part-way), and a long file is
streamed, not loaded whole."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from synesthesia.errors import AudioSourceError
from synesthesia.hearing.sources import RATE, FileSource, open_source

TESTS = Path(__file__).parent


def _bad_sources(tmp: Path) -> dict[str, str]:
    sf.write(tmp / "ok.wav", 0.1 * np.sin(np.arange(RATE) / 10), RATE, subtype="PCM_16")
    whole = (tmp / "ok.wav").read_bytes()
    (tmp / "truncated.wav").write_bytes(whole[:30])  # cut inside the header
    (tmp / "header-only.wav").write_bytes(whole[:44])  # a header promising samples, then nothing
    (tmp / "empty.wav").write_bytes(b"")
    (tmp / "notes.wav").write_text("this is not audio\n")
    fmt = struct.pack("<IHHIIHH", 16, 1, 0, RATE, 2 * RATE, 2, 16)  # PCM with 0 channels
    (tmp / "zero-channels.wav").write_bytes(b"RIFF" + struct.pack("<I", 136) + b"WAVEfmt " + fmt + b"data"
                                            + struct.pack("<I", 100) + bytes(100))
    nan = np.zeros(RATE, np.float32)
    nan[100] = np.nan
    sf.write(tmp / "nan.wav", nan, RATE, subtype="FLOAT")
    (tmp / "a-directory.wav").mkdir()
    return {
        "truncated": str(tmp / "truncated.wav"),
        "header only": str(tmp / "header-only.wav"),
        "empty": str(tmp / "empty.wav"),
        "text as wav": str(tmp / "notes.wav"),
        "0 channels": str(tmp / "zero-channels.wav"),
        "NaN samples": str(tmp / "nan.wav"),
        "missing": str(tmp / "missing.flac"),
        "directory": str(tmp / "a-directory.wav"),
        "tone:abc": "tone:abc",
        "silence:x": "silence:x",
    }


def test_every_bad_source_is_refused_on_open(tmp_path: Path) -> None:
    for what, spec in _bad_sources(tmp_path).items():
        with pytest.raises(AudioSourceError):
            open_source(spec, realtime=False)
            pytest.fail(f"{what} was accepted")


def test_run_with_a_bad_source_exits_1_with_one_line_before_starting(tmp_path: Path) -> None:
    sources = _bad_sources(tmp_path)
    env = {**os.environ, "SYNESTHESIA_RUNTIME_DIR": str(tmp_path / "rt")}
    for what in ("text as wav", "directory", "tone:abc"):
        t0 = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "synesthesia", "run", "--headless", "--duration", "30",
                               "--source", sources[what]], capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 1, (what, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr + done.stdout, what
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("synesthesia run: capture.source:"), (what, lines)
        assert done.stdout == "", (what, done.stdout)  # nothing started
        assert time.monotonic() - t0 < 20


_CAPTURE_ONLY = """
import sys
from synesthesia.settings import load_settings
from synesthesia.supervisor.arbiter import Arbiter
from synesthesia.supervisor.watcher import StageSpec
s = load_settings(overrides={"headless": True, "duration_s": 40, "capture": {"source": sys.argv[1], "realtime": False,
                  "wait_s": 0}, "runtime_dir": sys.argv[2], "supervisor": {"heartbeat_timeout_s": 1.0}})
sys.exit(Arbiter(s, [StageSpec("capture", "synesthesia.stages.capture", critical=False)]).run())
"""


def test_a_file_corrupt_part_way_ends_the_run_instead_of_restarting(tmp_path: Path) -> None:
    audio = np.zeros(20 * RATE, np.float32)
    audio[12 * RATE] = np.nan  # past the first block: found while streaming
    sf.write(tmp_path / "late-nan.wav", audio, RATE, subtype="FLOAT")
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-c", _CAPTURE_ONLY, str(tmp_path / "late-nan.wav"), str(tmp_path / "rt")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert time.monotonic() - t0 < 25  # not after the 40 s duration
    errors = [line for line in done.stdout.splitlines() if " error " in line]
    assert any("NaN or infinite" in line for line in errors), done.stdout
    assert "restarting" not in done.stdout and "Traceback" not in done.stdout


def test_a_long_file_is_streamed_in_bounded_memory(tmp_path: Path) -> None:
    # 10 minutes at 16 kHz: 38 MiB as float32 if it were read whole.
    path = tmp_path / "long.wav"
    minute = (0.05 * np.sin(np.arange(60 * RATE) * 0.05)).astype(np.float32)
    with sf.SoundFile(path, "w", RATE, 1, subtype="PCM_16") as f:
        for _ in range(10):
            f.write(minute)
    tracemalloc.start()
    try:
        src = FileSource(path, realtime=False)
        assert abs(src.duration_s - 600) < 0.01
        n = 0
        for chunk in src:
            n += len(chunk.samples)
            if n > 5 * 60 * RATE:
                break
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n > 5 * 60 * RATE
    assert peak < 6 << 20, f"peak {peak / 2**20:.1f} MiB while streaming"
