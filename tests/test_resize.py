"""Resize kernels against float references of their documented definitions."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from synesthesia import kernels

LEVELS = kernels.available_simd_levels()


def _nearest_index(src: int, dst: int) -> npt.NDArray[np.int64]:
    x = np.arange(dst, dtype=np.int64)
    return ((2 * x + 1) * src) // (2 * dst)


def _bilinear_weights(src: int, dst: int) -> npt.NDArray[np.float64]:
    w = np.zeros((dst, src))
    pos = np.clip((np.arange(dst) + 0.5) * src / dst - 0.5, 0, src - 1)
    x0 = np.floor(pos).astype(int)
    x1 = np.minimum(x0 + 1, src - 1)
    f = pos - x0
    np.add.at(w, (np.arange(dst), x0), 1 - f)
    np.add.at(w, (np.arange(dst), x1), f)
    return w


def _area_weights(src: int, dst: int) -> npt.NDArray[np.float64]:
    edges = np.arange(dst + 1) * src / dst
    lo = np.arange(src)[None, :]
    overlap = np.clip(np.minimum(edges[1:, None], lo + 1) - np.maximum(edges[:-1, None], lo), 0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def reference(img: npt.NDArray[np.uint8], size: tuple[int, int], method: str) -> npt.NDArray[np.float64]:
    w, h = size
    a = img.astype(np.float64)
    if img.ndim == 2:
        a = a[..., None]
    if method == "nearest":
        out = a[_nearest_index(img.shape[0], h)][:, _nearest_index(img.shape[1], w)]
    else:
        make = _bilinear_weights if method == "bilinear" else _area_weights
        wy, wx = make(img.shape[0], h), make(img.shape[1], w)
        out = np.tensordot(wy, a, axes=(1, 0))  # (h, sw, c)
        out = np.tensordot(out, wx, axes=(1, 1)).transpose(0, 2, 1)  # (h, w, c)
    return out if img.ndim == 3 else out[..., 0]


def check(img: npt.NDArray[np.uint8], size: tuple[int, int], method: str, **kw: object) -> npt.NDArray[np.uint8]:
    out = kernels.resize(img, size, method, **kw)  # type: ignore[arg-type]
    assert out.shape == (size[1], size[0]) + img.shape[2:]
    assert out.dtype == np.uint8
    diff = np.abs(out.astype(np.float64) - reference(img, size, method))
    assert diff.max() <= 1.0, f"{method} {img.shape}->{size}: max error {diff.max():.2f}"
    return out


SIZES = [
    ((704, 1280), (320, 176)),
    ((704, 1280), (640, 352)),
    ((23, 37), (11, 7)),
    ((9, 13), (40, 31)),
    ((1, 50), (7, 1)),
    ((50, 1), (1, 9)),
    ((64, 64), (64, 64)),
    ((100, 80), (33, 47)),
]


@pytest.mark.parametrize("method", ["nearest", "bilinear", "area"])
@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("shape, size", SIZES)
def test_matches_reference(method: str, channels: int, shape: tuple[int, int], size: tuple[int, int]) -> None:
    rng = np.random.default_rng(hash((shape, channels)) & 0xFFFF)
    img = rng.integers(0, 256, size=shape + (channels,), dtype=np.uint8)
    check(img, size, method)


@pytest.mark.parametrize("method", ["nearest", "bilinear", "area"])
def test_photo_and_two_dimensional_input(photos: dict[str, npt.NDArray[np.uint8]], method: str) -> None:
    photo = photos["coffee"]
    check(photo, (photo.shape[1] // 4, photo.shape[0] // 4), method)
    check(photo, (173, 111), method)
    check(np.ascontiguousarray(photo[..., 1]), (150, 100), method)


@pytest.mark.parametrize("method", ["nearest", "bilinear", "area"])
def test_strided_view_equals_copy(frame: npt.NDArray[np.uint8], method: str) -> None:
    view = frame[13:-7, 21:-30]
    assert not view.flags.c_contiguous
    a = kernels.resize(view, (301, 170), method)  # type: ignore[arg-type]
    b = kernels.resize(np.ascontiguousarray(view), (301, 170), method)  # type: ignore[arg-type]
    assert np.array_equal(a, b)


def test_out_may_be_a_region_of_a_bigger_frame(frame: npt.NDArray[np.uint8]) -> None:
    canvas = np.zeros((400, 500, 3), np.uint8)
    region = canvas[50:226, 100:420]
    ret = kernels.resize(frame, (320, 176), "area", out=region)
    assert ret is region
    assert np.array_equal(region, kernels.resize(frame, (320, 176), "area"))
    assert not canvas[:50].any() and not canvas[226:].any() and not canvas[:, :100].any()


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("method", ["nearest", "bilinear", "area"])
def test_every_simd_level_gives_the_same_bytes(frame: npt.NDArray[np.uint8], level: str, method: str) -> None:
    for size in [(320, 176), (640, 352), (333, 201), (1500, 800)]:
        ours = kernels.resize(frame, size, method, simd=level)  # type: ignore[arg-type]
        ref = kernels.resize(frame, size, method, simd="portable")  # type: ignore[arg-type]
        assert np.array_equal(ours, ref), (level, method, size)


def test_forced_simd_is_used_and_restored() -> None:
    best = kernels.simd_level()
    with kernels.forced_simd("portable"):
        assert kernels.simd_level() == "portable"
    assert kernels.simd_level() == best
