"""Synthetic RGB frames for demos, tests and benchmarks (any process; numpy only).

A landscape-like scene (sky gradient, sun, layered hill silhouettes, water with ripples, fine
grain) that moves with ``t``: smooth areas, hard edges and texture in the proportions a JPEG
encoder meets in generated video, and deterministic for a given ``t`` and size.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["synthetic_frame"]


def synthetic_frame(t: float = 0.0, width: int = 1280, height: int = 704, seed: int = 7) -> npt.NDArray[np.uint8]:
    """An RGB uint8 frame (height, width, 3) of the scene at time ``t`` seconds."""
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    horizon = 0.62
    sky = np.empty((height, width, 3), dtype=np.float32)
    sky[..., 0] = 40 + 180 * y + 20 * np.sin(0.3 * t)
    sky[..., 1] = 60 + 120 * y
    sky[..., 2] = 150 + 80 * (1 - y)
    # The sun: a soft disc drifting across the sky.
    sx, sy = 0.2 + 0.6 * ((0.02 * t) % 1.0), 0.3
    d2 = ((x - sx) * width / height) ** 2 + (y - sy) ** 2
    glow = np.exp(-d2 / 0.004)
    sky += glow[..., None] * np.array([255, 200, 120], dtype=np.float32) * 0.8
    img = sky
    # Three hill silhouettes with hard edges, parallax-scrolled.
    for i, (amp, freq, speed, colour) in enumerate(
        ((0.08, 3.0, 0.01, (70, 80, 110)), (0.10, 5.0, 0.02, (45, 70, 60)), (0.07, 9.0, 0.04, (25, 45, 30)))
    ):
        ridge = horizon - 0.05 * (2 - i) - amp * (0.5 + 0.5 * np.sin(freq * 2 * np.pi * (x + speed * t) + i))
        mask = y > ridge
        img = np.where(mask[..., None], np.array(colour, dtype=np.float32) + 30 * (y - ridge)[..., None], img)
    # Water below the horizon band: a darkened reflection with moving ripples.
    water = y > 0.85
    ripple = 12 * np.sin(80 * y + 6 * t) * np.sin(23 * x + 2 * t)
    img = np.where(water[..., None], img[::-1] * 0.45 + ripple[..., None] + np.float32(20), img)
    rng = np.random.default_rng(seed + int(t * 25))
    img += rng.normal(0.0, 4.0, size=(height, width, 1)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)
