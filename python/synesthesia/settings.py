"""One settings tree for a run, read in the supervisor and handed to every stage process.

Layers, lowest first: the defaults below < a TOML file (``--config``) < ``SYNESTHESIA_*``
environment variables (``SYNESTHESIA_SERVE__PORT=9000``: section and key joined by a double
underscore) < command-line flags. Every error names the key and the bad value.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from synesthesia.errors import SynesthesiaError

__all__ = ["Settings", "SettingsError", "load_settings"]

ENV_PREFIX = "SYNESTHESIA_"


class SettingsError(SynesthesiaError, ValueError):
    """A setting is unknown or its value is unusable; ``key`` is its dotted name."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


@dataclass
class CaptureSettings:
    source: str = "demo"  # mic | demo | browser | a path to a WAV/FLAC file
    device: str | None = None  # microphone name or index (mic source)
    realtime: bool = True  # play files at real-time pace
    loop: bool = True  # loop the demo or a file
    wait_s: float = 30.0  # a file waits this long for listen/nlp/world to run before it plays; 0: at once


@dataclass
class ListenSettings:
    recognizer: Literal["whisper", "pocketsphinx", "vosk"] = "whisper"
    vosk_model: str | None = None
    vad_threshold: float = 0.5  # silero probability that counts as speech (0.2..0.95)


@dataclass
class NlpSettings:
    vocabulary: str | None = None  # a TOML dictionary; None: the bundled one


@dataclass
class WorldSettings:
    backend: Literal["procedural", "odyssey", "onnx", "emulate"] = "procedural"
    width: int = 1280
    height: int = 704
    fps: float = 25.0
    # "immediate": an intent's frame is rendered and published at once and the cadence
    # re-phases from it; "tick": it waits for the next regular tick.
    respond: Literal["immediate", "tick"] = "immediate"
    seed: int = 1
    time_constant_s: float = 1.5
    prompt: str = "mountains at sunset"
    onnx_model: str | None = None
    emulate_mean_ms: float = 1274.8
    emulate_std_ms: float = 42.3


@dataclass
class EncodeSettings:
    #: h264: full-resolution delta frames to every page that decodes them (WebCodecs), nano
    #: JPEG beside them only while a page that cannot is connected; jpeg: JPEG only.
    codec: Literal["h264", "jpeg"] = "h264"
    mode: Literal["nano", "preview", "full"] = "nano"
    bitrate_bps: int = 2_000_000
    quality: int = 75


@dataclass
class ServeSettings:
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    #: PEM certificate and key: serve the page and the socket over TLS (a secure context, so
    #: that WebCodecs and the microphone work off localhost). tls_cert = "self-signed" makes a
    #: short-lived certificate at start and logs its SHA-256 fingerprint.
    tls_cert: str | None = None
    tls_key: str | None = None


@dataclass
class SupervisorSettings:
    heartbeat_interval_s: float = 0.25
    heartbeat_timeout_s: float = 2.0
    restart_backoff_s: float = 0.1
    restart_backoff_max_s: float = 5.0
    max_restarts: int = 5
    restart_window_s: float = 30.0
    shutdown_grace_s: float = 3.0
    memory_warn_mb: int = 1024
    memory_kill_mb: int = 4096


@dataclass
class Settings:
    capture: CaptureSettings = field(default_factory=CaptureSettings)
    listen: ListenSettings = field(default_factory=ListenSettings)
    nlp: NlpSettings = field(default_factory=NlpSettings)
    world: WorldSettings = field(default_factory=WorldSettings)
    encode: EncodeSettings = field(default_factory=EncodeSettings)
    serve: ServeSettings = field(default_factory=ServeSettings)
    supervisor: SupervisorSettings = field(default_factory=SupervisorSettings)
    headless: bool = False
    duration_s: float | None = None
    record: str | None = None
    session: str | None = None  # session log (JSON Lines) the world writes; an existing one is resumed
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    runtime_dir: str | None = None
    trace: str | None = None  # JSON Lines trace log for every process of the run (synesthesia.tracing)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Settings:
        settings = cls()
        _apply(settings, data, "")
        return settings


def _convert(key: str, hint: Any, value: Any, from_text: bool) -> Any:
    """Coerce ``value`` to the annotated type, or raise naming ``key``."""
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        if value is None or (from_text and str(value).lower() in ("", "none", "null")):
            if type(None) in get_args(hint):
                return None
        errors = []
        for option in options:
            try:
                return _convert(key, option, value, from_text)
            except SettingsError as exc:
                errors.append(str(exc))
        raise SettingsError(key, f"invalid value {value!r}")
    if origin is Literal:
        choices = get_args(hint)
        if value not in choices:
            raise SettingsError(key, f"invalid value {value!r}; expected one of {', '.join(map(repr, choices))}")
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        if from_text and str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if from_text and str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise SettingsError(key, f"invalid value {value!r}; expected true or false")
    if hint is int:
        if isinstance(value, bool):
            raise SettingsError(key, f"invalid value {value!r}; expected an integer")
        if isinstance(value, int):
            return value
        if from_text:
            try:
                return int(str(value).replace("_", ""))
            except ValueError:
                pass
        raise SettingsError(key, f"invalid value {value!r}; expected an integer")
    if hint is float:
        number: float | None = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif from_text:
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise SettingsError(key, f"invalid value {value!r}; expected a number")
        if not math.isfinite(number):
            # nan compares false with every bound: it would switch a range check (and the
            # timeout it guards) off instead of failing it.
            raise SettingsError(key, f"invalid value {value!r}; expected a finite number")
        return number
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise SettingsError(key, f"invalid value {value!r}; expected a string")
    raise SettingsError(key, f"unsupported setting type {hint!r}")


def _apply(target: Any, data: Mapping[str, Any], prefix: str, from_text: bool = False) -> None:
    hints = typing.get_type_hints(type(target))
    names = {f.name for f in dataclasses.fields(target)}
    for name, value in data.items():
        key = f"{prefix}{name}"
        if name not in names:
            known = ", ".join(sorted(names))
            raise SettingsError(key, f"unknown setting (known here: {known})")
        current = getattr(target, name)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, Mapping):
                raise SettingsError(key, f"expected a table of settings, got {value!r}")
            _apply(current, value, f"{key}.", from_text)
        else:
            setattr(target, name, _convert(key, hints[name], value, from_text))
    _validate(target, prefix)


#: Inclusive ranges, by setting name wherever it occurs in the tree.
_RANGES: dict[str, tuple[float, float]] = {
    "fps": (1, 240),
    "width": (32, 8192),  # the procedural world's smallest frame
    "height": (32, 8192),
    "port": (0, 65535),
    "quality": (1, 100),
    "bitrate_bps": (10_000, 1_000_000_000),
    "vad_threshold": (0.2, 0.95),  # speech ends 0.15 below it: 0.2 keeps that above 0
    "heartbeat_interval_s": (0.01, 60),
    "heartbeat_timeout_s": (0.05, 3600),
    "restart_backoff_s": (0, 3600),
    "restart_backoff_max_s": (0, 3600),
    "max_restarts": (0, 1_000_000),
    "restart_window_s": (0.001, 86_400),
    "shutdown_grace_s": (0, 3600),
    "memory_warn_mb": (1, 1 << 30),
    "memory_kill_mb": (1, 1 << 30),
    "emulate_mean_ms": (0, 3_600_000),
    "emulate_std_ms": (0, 3_600_000),
}


def _validate(target: Any, prefix: str) -> None:
    for name, (low, high) in _RANGES.items():
        if hasattr(target, name):
            value = getattr(target, name)
            if not low <= value <= high:
                raise SettingsError(f"{prefix}{name}", f"invalid value {value!r}; must be in {low:g}..{high:g}")
    for name in ("duration_s", "time_constant_s", "wait_s"):
        value = getattr(target, name, None)
        if value is not None and value < 0:
            raise SettingsError(f"{prefix}{name}", f"invalid value {value!r}; must be >= 0")
    if isinstance(target, SupervisorSettings) and target.restart_backoff_max_s < target.restart_backoff_s:
        raise SettingsError(f"{prefix}restart_backoff_max_s", f"invalid value {target.restart_backoff_max_s!r}; "
                            f"must be >= restart_backoff_s ({target.restart_backoff_s:g})")
    if isinstance(target, ServeSettings) and target.token is not None:
        if len(target.token) < 16 or not target.token.isascii() or not target.token.isprintable() or " " in target.token:
            raise SettingsError(f"{prefix}token", "must be at least 16 printable ASCII characters without spaces")


def _env_layer(environ: Mapping[str, str]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == f"{ENV_PREFIX}SIMD":
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        node = layer
        for i, part in enumerate(path[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                table = ".".join(path[: i + 1])
                raise SettingsError(table, f"{ENV_PREFIX}{'__'.join(path[: i + 1]).upper()} gives a value to "
                                           f"{table}, which is a table of settings (and {name} sets a key in it)")
        if isinstance(node.get(path[-1]), dict):
            raise SettingsError(".".join(path), f"{name} gives a value to a table of settings")
        node[path[-1]] = value
    return layer


def load_settings(
    config: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Defaults < TOML file < environment < ``overrides`` (flags, as a nested mapping)."""
    settings = Settings()
    if config is not None:
        path = Path(config)
        try:
            with path.open("rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise SettingsError("config", f"no such file: {path}") from None
        except IsADirectoryError:
            raise SettingsError("config", f"{path} is a directory, not a TOML file") from None
        except UnicodeDecodeError as exc:
            raise SettingsError("config", f"{path} is not UTF-8 text (byte {exc.start}): not a TOML file") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError("config", f"{path} is not valid TOML: {exc}") from None
        except OSError as exc:
            raise SettingsError("config", f"cannot read {path}: {exc.strerror or exc}") from None
        _apply(settings, data, "")
    _apply(settings, _env_layer(os.environ if environ is None else environ), "", from_text=True)
    if overrides:
        _apply(settings, overrides, "")
    _check_together(settings)
    return settings


def _check_together(settings: Settings) -> None:
    """Settings that are each valid but cannot work together: refuse, never ignore silently."""
    if settings.headless and settings.record:
        raise SettingsError("record", "needs the serve stage, which headless runs leave out: drop --headless")
    tls_cert, tls_key = settings.serve.tls_cert, settings.serve.tls_key
    if tls_cert is not None and tls_cert != "self-signed" and not tls_key:
        raise SettingsError("serve.tls_key", "a certificate needs its key (--tls-key), or use --tls self-signed")
    if tls_key and (tls_cert is None or tls_cert == "self-signed"):
        raise SettingsError("serve.tls_cert", "a key without its certificate (--tls-cert)")
    if settings.headless and settings.capture.source == "browser":
        raise SettingsError("capture.source", "'browser' needs the serve stage, which headless runs leave out")
    if settings.session and settings.world.backend != "procedural":
        raise SettingsError("world.backend", f"{settings.world.backend!r} is not deterministic; "
                            "sessions record the procedural world")
    # An .avi recording takes the JPEG records (made all along when the codec is h264).
    record = (settings.record or "").lower()
    if record and not record.endswith((".mp4", ".avi")):
        raise SettingsError("record", f"{settings.record!r}: the suffix must be .mp4 (H.264) or .avi (MJPEG)")
    if record.endswith(".mp4") and settings.encode.codec != "h264":
        raise SettingsError("record", "an .mp4 recording holds the H.264 stream: set encode.codec = 'h264' or record .avi")
    for key in ("trace", "record", "session"):
        value = getattr(settings, key)
        if value:
            target = Path(value)
            if target.is_dir():
                raise SettingsError(key, f"{value} is a directory; give a file path")
            if not target.parent.is_dir():
                raise SettingsError(key, f"the folder {target.parent} does not exist (it is not created for you)")
