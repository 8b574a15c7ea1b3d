"""Every bad argument to the kernels raises KernelArgumentError naming that argument."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest

from synesthesia import kernels
from synesthesia.errors import KernelArgumentError

RGB = np.zeros((16, 24, 3), np.uint8)


def raises(argument: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> KernelArgumentError:
    with pytest.raises(KernelArgumentError) as info:
        fn(*args, **kwargs)
    assert info.value.argument == argument, str(info.value)
    assert str(info.value).startswith(f"{argument}: ")
    assert isinstance(info.value, ValueError)
    return info.value


@pytest.mark.parametrize(
    "img, words",
    [
        (RGB.astype(np.float32), "dtype must be uint8, got float32"),
        (RGB.astype(np.uint16), "dtype must be uint8, got uint16"),
        (np.zeros((16,), np.uint8), "expected shape"),
        (np.zeros((2, 16, 24, 3), np.uint8), "expected shape"),
        (np.zeros((16, 24, 2), np.uint8), "channel count must be 1, 3 or 4, got 2"),
        (np.zeros((16, 24, 5), np.uint8), "channel count must be 1, 3 or 4, got 5"),
        (np.zeros((0, 24, 3), np.uint8), "image is empty"),
        (RGB[:, ::2], "pixels must be contiguous"),
        (RGB[::-1], "pixels must be contiguous"),
        (np.asfortranarray(RGB), "pixels must be contiguous"),
        ([[1, 2], [3, 4]], "expected a numpy.ndarray, got list"),
    ],
)
@pytest.mark.parametrize("call", ["resize", "encode_jpeg", "encode_nano"])
def test_bad_images(img: Any, words: str, call: str) -> None:
    fn = {
        "resize": lambda a: kernels.resize(a, (8, 8)),
        "encode_jpeg": kernels.encode_jpeg,
        "encode_nano": kernels.encode_nano,
    }[call]
    err = raises("frame" if call == "encode_nano" else "img", fn, img)
    assert words in str(err)


@pytest.mark.parametrize("quality", [0, 101, -5, 1000])
def test_quality_out_of_range(quality: int) -> None:
    err = raises("quality", kernels.encode_jpeg, RGB, quality=quality)
    assert str(quality) in str(err)


def test_quality_wrong_type() -> None:
    raises("quality", kernels.encode_jpeg, RGB, quality=75.5)
    raises("quality", kernels.encode_jpeg, RGB, quality=True)


def test_subsampling_unknown() -> None:
    err = raises("subsampling", kernels.encode_jpeg, RGB, subsampling="411")
    assert "'411'" in str(err)


def test_qtables_wrong_length() -> None:
    err = raises("qtables", kernels.encode_jpeg, RGB, qtables=([1] * 63, [1] * 64))
    assert "luma table must have 64 entries, got 63" in str(err)
    err = raises("qtables", kernels.encode_jpeg, RGB, qtables=([1] * 64, [1] * 65))
    assert "chroma table must have 64 entries, got 65" in str(err)


@pytest.mark.parametrize("bad", [0, 256, -1])
def test_qtables_entry_out_of_range(bad: int) -> None:
    table = [16] * 64
    table[10] = bad
    err = raises("qtables", kernels.encode_jpeg, RGB, qtables=([16] * 64, table))
    assert f"chroma table entry 10 is {bad}" in str(err)


def test_qtables_other_shapes() -> None:
    raises("qtables", kernels.encode_jpeg, RGB, qtables="fast")
    raises("qtables", kernels.encode_jpeg, RGB, qtables=([16] * 64,))
    raises("qtables", kernels.encode_jpeg, RGB, qtables=([16.5] * 64, [16] * 64))


def test_native_layer_validates_too() -> None:
    # The core checks ranges itself (Rust callers get the same errors); its errors come back
    # as the same Python class with the argument named.
    from synesthesia import _native

    with pytest.raises(KernelArgumentError) as info:
        _native.JpegEncoder(0, "420", None, False, 0, 1, None)
    assert info.value.argument == "quality"
    with pytest.raises(KernelArgumentError) as info:
        _native.JpegEncoder(75, "420", ([0] * 64, [1] * 64), False, 0, 1, None)
    assert info.value.argument == "qtables"
    with pytest.raises(KernelArgumentError) as info:
        _native.JpegEncoder(75, "411", None, False, 0, 1, None)
    assert info.value.argument == "subsampling"


def test_threads_and_restart_range() -> None:
    raises("threads", kernels.encode_jpeg, RGB, threads=0)
    raises("threads", kernels.encode_jpeg, RGB, threads=1000)
    raises("restart_interval", kernels.encode_jpeg, RGB, restart_interval=-1)
    raises("restart_interval", kernels.encode_jpeg, RGB, restart_interval=70000)


def test_resize_arguments() -> None:
    raises("size", kernels.resize, RGB, (0, 8))
    raises("size", kernels.resize, RGB, (8,))
    raises("size", kernels.resize, RGB, (8.0, 8))
    raises("method", kernels.resize, RGB, (8, 8), method="cubic")
    raises("out", kernels.resize, RGB, (8, 8), out=np.zeros((8, 8, 4), np.uint8))
    raises("out", kernels.resize, RGB, (8, 8), out=np.zeros((8, 9, 3), np.uint8))
    raises("out", kernels.resize, RGB, (8, 8), out=np.zeros((8, 8, 3), np.float32))
    ro = np.zeros((8, 8, 3), np.uint8)
    ro.flags.writeable = False
    raises("out", kernels.resize, RGB, (8, 8), out=ro)
    big = np.zeros((32, 32, 3), np.uint8)
    raises("out", kernels.resize, big[:16, :24], (8, 8), out=big[8:16, :8])


def test_nano_arguments() -> None:
    raises("scale", kernels.encode_nano, RGB, scale=0)
    raises("method", kernels.encode_nano, RGB, method="lanczos")


def test_encode_into_buffer_errors() -> None:
    enc = kernels.JpegEncoder()
    raises("out", enc.encode_into, RGB, bytearray(10))
    raises("out", enc.encode_into, RGB, b"x" * 100000)
    raises("out", enc.encode_into, RGB, 12)


def test_simd_unknown_or_unavailable() -> None:
    raises("simd", kernels.force_simd, "neon")
    raises("simd", kernels.resize, RGB, (8, 8), simd="sse9")
