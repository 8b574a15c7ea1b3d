"""`synesthesia doctor`: checks what a run needs and says what to fix."""

from __future__ import annotations

import argparse
import os
import shutil
import socket
from collections.abc import Callable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8765, help="viewer port to check (default: 8765)")


def _native() -> str:
    from synesthesia import _native, kernels

    return f"synesthesia._native {_native.__version__}, SIMD {kernels.simd_level()} (available: {', '.join(kernels.available_simd_levels())})"


def _onnxruntime() -> str:
    import onnxruntime as ort  # type: ignore[import-untyped]

    return f"onnxruntime {ort.__version__}, providers {', '.join(ort.get_available_providers())}"


def _silero() -> str:
    from synesthesia.hearing.vad import silero_model_path

    path = silero_model_path()
    return f"silero VAD model {path} ({path.stat().st_size // 1024} KiB)"


def _pocketsphinx() -> str:
    import pocketsphinx  # type: ignore[import-untyped]

    model = pocketsphinx.get_model_path()
    if not os.path.isdir(os.path.join(model, "en-us", "en-us")):
        raise RuntimeError(f"the en-US acoustic model is missing under {model}")
    return f"pocketsphinx en-US model in {model}"


def _recognizer() -> str:
    """The recognizer a run would use (settings file and SYNESTHESIA_ environment applied) and
    its model; Whisper's is loaded, so a broken model fails here rather than in the listen stage."""
    from synesthesia.settings import load_settings

    name = load_settings(None).listen.recognizer
    if name == "whisper":
        import ctranslate2  # type: ignore[import-untyped]

        from synesthesia.hearing.whisper import WhisperRecognizer

        rec = WhisperRecognizer(["ocean"])
        info = rec.info()
        return (f"whisper: tiny.en int8 on CTranslate2 {ctranslate2.__version__}, {info['threads']} threads, "
                f"model {info['model']} ({info['size_mb']:.0f} MB)")
    if name == "pocketsphinx":
        return "pocketsphinx (" + _pocketsphinx() + ")"
    return "vosk (model directory: listen.vosk_model)"


def _microphone() -> str:
    from synesthesia.cli.devices import input_devices

    try:
        n = len(input_devices())
    except Exception as e:  # no PortAudio / no audio system
        raise RuntimeError(f"no audio system ({e}): use --source FILE, demo or browser") from None
    if not n:
        raise RuntimeError("no audio input device: use --source FILE, demo or browser")
    return f"{n} audio input device(s)"


def _vosk() -> str:
    import vosk  # type: ignore[import-untyped]  # noqa: F401

    return "vosk installed (needs a model directory: --config listen.vosk_model)"


def _odyssey() -> str:
    import odyssey  # type: ignore[import-not-found]  # noqa: F401

    if not os.environ.get("ODYSSEY_API_KEY"):
        raise RuntimeError("the Odyssey SDK is installed but ODYSSEY_API_KEY is not set")
    return "Odyssey SDK and API key present"


def main(args: argparse.Namespace) -> int:
    def port() -> str:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", args.port))
            except OSError as e:
                raise RuntimeError(f"127.0.0.1:{args.port} is taken ({e.strerror}): use --port") from None
        return f"viewer port {args.port} is free"

    def shm() -> str:
        free = shutil.disk_usage("/dev/shm").free
        need = 64 << 20  # the rings of a 1280x704 run take about 30 MiB
        if free < need:
            raise RuntimeError(f"/dev/shm has {free >> 20} MiB free; a run needs about {need >> 20} MiB")
        return f"/dev/shm has {free >> 20} MiB free"

    # (name, check, required): a failed required check makes the exit code 1
    checks: list[tuple[str, Callable[[], str], bool]] = [
        ("native module", _native, True),
        ("onnxruntime", _onnxruntime, True),
        ("silero VAD", _silero, True),
        ("recognizer", _recognizer, True),
        ("pocketsphinx", _pocketsphinx, True),
        ("shared memory", shm, True),
        ("viewer port", port, False),
        ("microphone", _microphone, False),
        ("vosk (optional)", _vosk, False),
        ("odyssey (optional)", _odyssey, False),
    ]
    failed = 0
    for name, check, required in checks:
        try:
            print(f"ok    {name:20} {check()}")
        except Exception as e:  # every check reports; none stops the others
            failed += required
            print(f"{'FAIL' if required else 'note'}  {name:20} {type(e).__name__ if isinstance(e, ImportError) else ''}"
                  f"{': ' if isinstance(e, ImportError) else ''}{e}")
    print("everything a run needs is here" if not failed else f"{failed} required check(s) failed: fix them first")
    return 1 if failed else 0
