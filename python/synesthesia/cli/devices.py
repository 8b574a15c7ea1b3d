"""`synesthesia devices`: the audio inputs `--source mic --device X` can use."""

from __future__ import annotations

import argparse
import importlib
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def input_devices(sd: Any = None) -> list[tuple[int, str, int, int]]:
    """(index, name, channels, native rate) of every input device; raises when there is no
    audio system at all."""
    sd = sd or importlib.import_module("sounddevice")
    return [(i, str(d["name"]), int(d["max_input_channels"]), int(round(float(d["default_samplerate"]))))
            for i, d in enumerate(sd.query_devices()) if int(d.get("max_input_channels", 0)) > 0]


def main(args: argparse.Namespace) -> int:
    from synesthesia.hearing.sources import OTHER_SOURCES

    try:
        inputs = input_devices()
    except Exception as e:  # no PortAudio library, or no audio system (PortAudioError)
        print(f"no audio input devices: the audio system is not available here ({e}).\n{OTHER_SOURCES[0].upper()}"
              f"{OTHER_SOURCES[1:]}, or `--source browser` to speak through the viewer page.")
        return 0
    if not inputs:
        print(f"no audio input devices found.\n{OTHER_SOURCES[0].upper()}{OTHER_SOURCES[1:]}, "
              "or `--source browser` to speak through the viewer page.")
        return 0
    print(f"{'index':>5}  {'channels':>8}  {'rate':>6}  name")
    for i, name, ch, rate in inputs:
        print(f"{i:>5}  {ch:>8}  {rate:>6}  {name}")
    print("use one with: synesthesia run --source mic --device INDEX|NAME")
    return 0
