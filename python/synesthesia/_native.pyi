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
