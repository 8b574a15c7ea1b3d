# Hand-written stub for the PyO3 module; `make test` checks it against the built module
# with mypy.stubtest so the two cannot drift.
from typing import final

import numpy as np
import numpy.typing as npt

__all__ = [
    "__version__",
    "JpegEncoder",
    "NanoEncoder",
    "force_simd",
    "quality_tables",
    "resize_into",
    "simd_level",
    "simd_levels",
    "turbo_tables",
]

__version__: str

_Tables = tuple[list[int], list[int]]

def simd_levels() -> list[str]: ...
def simd_level() -> str: ...
def force_simd(level: str | None = None) -> None: ...
def resize_into(
    img: npt.NDArray[np.uint8], out: npt.NDArray[np.uint8], method: str, simd: str | None = None
) -> None: ...
def quality_tables(quality: int) -> _Tables: ...
def turbo_tables() -> _Tables: ...

@final
class JpegEncoder:
    def __new__(
        cls,
        quality: int,
        subsampling: str,
        qtables: _Tables | None,
        optimize: bool,
        restart_interval: int,
        threads: int,
        simd: str | None,
    ) -> JpegEncoder: ...
    def encode(self, img: npt.NDArray[np.uint8]) -> bytes: ...
    def encode_into(self, img: npt.NDArray[np.uint8], out: npt.NDArray[np.uint8]) -> int: ...
    def max_encoded_size(self, width: int, height: int) -> int: ...

@final
class NanoEncoder:
    def __new__(
        cls,
        scale: int,
        method: str,
        quality: int,
        subsampling: str,
        qtables: _Tables | None,
        optimize: bool,
        restart_interval: int,
        threads: int,
        simd: str | None,
    ) -> NanoEncoder: ...
    def output_size(self, width: int, height: int) -> tuple[int, int]: ...
    def encode(self, frame: npt.NDArray[np.uint8]) -> bytes: ...
    def encode_into(self, frame: npt.NDArray[np.uint8], out: npt.NDArray[np.uint8]) -> int: ...

# --- world (procedural renderer, scene state, spectral pulse); facade: synesthesia.world ---
from collections.abc import Sequence

def world_vocabulary() -> list[tuple[str, str]]: ...
def world_state_names() -> list[str]: ...
def world_default_state() -> list[float]: ...
def spectral_pulse(samples: npt.NDArray[np.float32], sample_rate: int = 16000) -> list[float]: ...

@final
class WorldScene:
    def __new__(cls, tau: float, jump: float, initial: Sequence[float] | None = None) -> WorldScene: ...
    def apply(self, words: Sequence[tuple[str, float]]) -> None: ...
    def advance(self, dt: float) -> None: ...
    def settle(self) -> None: ...
    def current(self) -> list[float]: ...
    def target(self) -> list[float]: ...
    def world_time(self) -> float: ...
    def set_world_time(self, t: float) -> None: ...

@final
class WorldRenderer:
    def __new__(cls, seed: int) -> WorldRenderer: ...
    def render_into(
        self, out: npt.NDArray[np.uint8], state: Sequence[float], t: float, pulse: Sequence[float] | None = None
    ) -> None: ...

__all__ += [
    "WorldRenderer",
    "WorldScene",
    "spectral_pulse",
    "world_default_state",
    "world_state_names",
    "world_vocabulary",
]
