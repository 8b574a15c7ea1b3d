"""Shared fixtures: real photos that ship inside scikit-image's wheel, and synthetic frames."""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from synesthesia.frames import synthetic_frame


def _photos() -> dict[str, npt.NDArray[np.uint8]]:
    from skimage import data

    return {
        "astronaut": data.astronaut(),
        "coffee": data.coffee(),
        "chelsea": data.chelsea(),
    }


@pytest.fixture(scope="session")
def photos() -> dict[str, npt.NDArray[np.uint8]]:
    return _photos()


@pytest.fixture(scope="session")
def frame() -> npt.NDArray[np.uint8]:
    return synthetic_frame(1.0)


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def psnr(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
