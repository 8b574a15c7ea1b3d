"""Image kernels from the Rust core: SIMD resize and JPEG encoding with custom quantization.

Importable on its own as a library, and used in-process by the encode stage. Images are numpy
``uint8`` arrays shaped (H, W) or (H, W, C) with C in {1, 3, 4} (RGB, RGBA; alpha is ignored
by the encoder). Arrays are read in place: any row stride works (``frame[8:-8, 16:-16]`` costs
no copy) as long as the pixels of a row are contiguous; other layouts raise instead of being
copied behind your back. The GIL is released while a kernel runs.

Every bad argument raises :class:`~synesthesia.errors.KernelArgumentError` (a ``ValueError``)
whose message starts with the argument's name and whose ``argument`` attribute holds it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Literal, Union

import numpy as np
import numpy.typing as npt

from synesthesia import _native
from synesthesia.errors import KernelArgumentError

__all__ = [
    "Method",
    "Subsampling",
    "QTables",
    "resize",
    "encode_jpeg",
    "encode_nano",
    "JpegEncoder",
    "NanoEncoder",
    "rgb_to_i420",
    "rgb_to_i420_planes",
    "quality_tables",
    "turbo_tables",
    "simd_level",
    "available_simd_levels",
    "force_simd",
    "forced_simd",
]

Method = Literal["nearest", "bilinear", "area"]
Subsampling = Literal["444", "422", "420", "gray"]
#: ``None`` (Annex K tables scaled by quality), ``"turbo"`` (the nano preset) or a pair of
#: 64-entry luma and chroma tables in natural (row-major) order, entries 1..255.
QTables = Union[None, Literal["turbo"], tuple[Sequence[int], Sequence[int]]]
Image = npt.NDArray[np.uint8]

_METHODS = ("nearest", "bilinear", "area")
_SUBSAMPLINGS = ("444", "422", "420", "gray")


def _fail(argument: str, message: str) -> KernelArgumentError:
    return KernelArgumentError(f"{argument}: {message}", argument)


def _check_image(img: object, argument: str = "img") -> Image:
    if not isinstance(img, np.ndarray):
        raise _fail(argument, f"expected a numpy.ndarray, got {type(img).__name__}")
    if img.dtype != np.uint8:
        raise _fail(argument, f"dtype must be uint8, got {img.dtype}")
    if img.ndim not in (2, 3):
        raise _fail(argument, f"expected shape (H, W) or (H, W, C), got {img.shape}")
    if img.ndim == 3 and img.shape[2] not in (1, 3, 4):
        raise _fail(argument, f"channel count must be 1, 3 or 4, got {img.shape[2]} (shape {img.shape})")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise _fail(argument, f"image is empty (shape {img.shape})")
    channels = img.shape[2] if img.ndim == 3 else 1
    s = img.strides
    pixels_ok = img.shape[1] == 1 or s[1] == channels
    channels_ok = img.ndim == 2 or channels == 1 or s[2] == 1
    rows_ok = img.shape[0] == 1 or s[0] >= img.shape[1] * channels
    if not (pixels_ok and channels_ok and rows_ok):
        raise _fail(
            argument,
            f"pixels must be contiguous within each row (strides {s} for shape {img.shape}); "
            "pass numpy.ascontiguousarray(...) to copy explicitly",
        )
    return img


def _check_int(argument: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise _fail(argument, f"expected an integer, got {type(value).__name__}")
    if not low <= int(value) <= high:
        raise _fail(argument, f"must be in {low}..{high}, got {value}")
    return int(value)


def _check_choice(argument: str, value: object, choices: Sequence[str]) -> str:
    if value not in choices:
        raise _fail(argument, f"expected one of {', '.join(map(repr, choices))}, got {value!r}")
    return str(value)


def _check_simd(simd: str | None) -> str | None:
    if simd is None:
        return None
    levels = ("portable", "avx2", "avx512")
    _check_choice("simd", simd, levels)
    if simd not in _native.simd_levels():
        raise _fail("simd", f"{simd} is not supported by this CPU (available: {', '.join(_native.simd_levels())})")
    return simd


def _table(name: str, table: object) -> list[int]:
    try:
        arr = np.asarray(table)
    except (TypeError, ValueError) as exc:
        raise _fail("qtables", f"{name} table is not a sequence of integers ({exc})") from None
    if arr.dtype.kind not in "iu" and not (arr.dtype.kind == "f" and np.all(np.mod(arr, 1) == 0)):
        raise _fail("qtables", f"{name} table must hold integers, got dtype {arr.dtype}")
    flat = arr.reshape(-1)
    if flat.size != 64:
        raise _fail("qtables", f"{name} table must have 64 entries, got {flat.size}")
    bad = np.flatnonzero((flat < 1) | (flat > 255))
    if bad.size:
        i = int(bad[0])
        raise _fail("qtables", f"{name} table entry {i} is {flat[i]}, entries must be 1..255")
    return [int(v) for v in flat]


def _qtables(qtables: object) -> tuple[list[int], list[int]] | None:
    if qtables is None:
        return None
    if isinstance(qtables, str):
        if qtables != "turbo":
            raise _fail("qtables", f"unknown preset {qtables!r}; the preset is 'turbo'")
        return turbo_tables()
    if not isinstance(qtables, (tuple, list)) or len(qtables) != 2:
        raise _fail("qtables", "expected None, 'turbo' or a (luma, chroma) pair of 64-entry tables")
    return _table("luma", qtables[0]), _table("chroma", qtables[1])


def _jpeg_args(
    quality: int,
    subsampling: str,
    qtables: QTables,
    optimize: bool,
    restart_interval: int,
    threads: int,
    simd: str | None,
) -> tuple[int, str, tuple[list[int], list[int]] | None, bool, int, int, str | None]:
    return (
        _check_int("quality", quality, 1, 100),
        _check_choice("subsampling", subsampling, _SUBSAMPLINGS),
        _qtables(qtables),
        bool(optimize),
        _check_int("restart_interval", restart_interval, 0, 65535),
        _check_int("threads", threads, 1, 64),
        _check_simd(simd),
    )


def _check_out_buffer(out: object) -> npt.NDArray[np.uint8]:
    try:
        view = memoryview(out)  # type: ignore[arg-type]
    except TypeError:
        raise _fail("out", f"expected a writable buffer (bytearray, memoryview, numpy array), got {type(out).__name__}") from None
    if view.readonly:
        raise _fail("out", "buffer is read-only")
    if not view.c_contiguous:
        raise _fail("out", "buffer must be contiguous")
    return np.frombuffer(view.cast("B"), dtype=np.uint8)


def resize(
    img: Image,
    size: tuple[int, int],
    method: Method = "nearest",
    out: Image | None = None,
    *,
    simd: str | None = None,
) -> Image:
    """Resize ``img`` to ``size = (width, height)``; returns ``out`` (allocated when None).

    ``nearest`` samples pixel centres, ``bilinear`` interpolates two taps per axis at pixel
    centres (no antialiasing), ``area`` averages each output pixel's footprint (the right
    choice for shrinking). ``out`` may be a strided view (e.g. a region of a bigger frame).
    """
    img = _check_image(img)
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in size)
    ):
        raise _fail("size", f"expected (width, height) as two integers, got {size!r}")
    width, height = (int(v) for v in size)
    if width < 1 or height < 1:
        raise _fail("size", f"width and height must be >= 1, got {width}x{height}")
    _check_choice("method", method, _METHODS)
    shape = (height, width) + img.shape[2:]
    if out is None:
        out = np.empty(shape, dtype=np.uint8)
    else:
        out = _check_image(out, "out")
        if out.shape != shape:
            raise _fail("out", f"shape must be {shape} for size {width}x{height}, got {out.shape}")
        if not out.flags.writeable:
            raise _fail("out", "array is read-only")
        if np.may_share_memory(out, img):
            raise _fail("out", "must not overlap img")
    _native.resize_into(img, out, method, _check_simd(simd))
    return out


class JpegEncoder:
    """A reusable baseline JPEG encoder; keeps its buffers between frames.

    ``quality`` scales the standard (ITU T.81 Annex K) tables unless ``qtables`` gives tables
    (used as given). ``optimize`` builds Huffman tables for each image (two passes: smaller,
    slower). ``restart_interval`` puts a restart marker every N MCUs. ``threads > 1`` encodes
    that many horizontal slices in parallel, joined by restart markers.
    """

    def __init__(
        self,
        quality: int = 75,
        subsampling: Subsampling = "420",
        qtables: QTables = None,
        optimize: bool = False,
        restart_interval: int = 0,
        threads: int = 1,
        *,
        simd: str | None = None,
    ) -> None:
        args = _jpeg_args(quality, subsampling, qtables, optimize, restart_interval, threads, simd)
        self._native = _native.JpegEncoder(*args)

    def encode(self, img: Image) -> bytes:
        """The complete JFIF file for ``img``."""
        return self._native.encode(_check_image(img))

    def encode_into(self, img: Image, out: object) -> int:
        """Write the file into the writable buffer ``out``; returns the byte count."""
        return self._native.encode_into(_check_image(img), _check_out_buffer(out))

    def max_encoded_size(self, width: int, height: int) -> int:
        """An upper bound on the file size for a ``width`` x ``height`` image."""
        return self._native.max_encoded_size(_check_int("width", width, 1, 1 << 16), _check_int("height", height, 1, 1 << 16))


class NanoEncoder:
    """The fused nano path: full frame in, JPEG of the frame shrunk ``scale`` times per axis out.

    The defaults are the viewer's nano stream: 4:1 per axis, 4:2:0, the ``turbo`` tables.
    """

    def __init__(
        self,
        scale: int = 4,
        method: Literal["nearest", "area", "bilinear"] = "nearest",
        quality: int = 75,
        subsampling: Subsampling = "420",
        qtables: QTables = "turbo",
        optimize: bool = False,
        restart_interval: int = 0,
        threads: int = 1,
        *,
        simd: str | None = None,
    ) -> None:
        scale = _check_int("scale", scale, 1, 64)
        _check_choice("method", method, _METHODS)
        args = _jpeg_args(quality, subsampling, qtables, optimize, restart_interval, threads, simd)
        self._native = _native.NanoEncoder(scale, method, *args)

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the encoded picture for a ``width`` x ``height`` frame."""
        return self._native.output_size(width, height)

    def encode(self, frame: Image) -> bytes:
        return self._native.encode(_check_image(frame, "frame"))

    def encode_into(self, frame: Image, out: object) -> int:
        return self._native.encode_into(_check_image(frame, "frame"), _check_out_buffer(out))


_cache = threading.local()


def _cached(kind: str, key: tuple[object, ...], make: type[JpegEncoder] | type[NanoEncoder]) -> JpegEncoder | NanoEncoder:
    # One-shot calls reuse an encoder per thread and option set, so that the convenience
    # functions cost what the classes cost (no scratch allocation per frame).
    cache: dict[tuple[object, ...], JpegEncoder | NanoEncoder] = getattr(_cache, kind, None) or {}
    setattr(_cache, kind, cache)
    enc = cache.get(key)
    if enc is None:
        if len(cache) >= 8:
            cache.pop(next(iter(cache)))
        enc = make(*key[:-1], simd=key[-1])  # type: ignore[arg-type]
        cache[key] = enc
    return enc


def _key(*values: object) -> tuple[object, ...]:
    return tuple(tuple(tuple(t) for t in v) if isinstance(v, (tuple, list)) else v for v in values)


def encode_jpeg(
    img: Image,
    quality: int = 75,
    subsampling: Subsampling = "420",
    qtables: QTables = None,
    optimize: bool = False,
    restart_interval: int = 0,
    threads: int = 1,
    *,
    simd: str | None = None,
) -> bytes:
    """Encode ``img`` as a baseline JPEG; see :class:`JpegEncoder` for the options."""
    enc = _cached("jpeg", _key(quality, subsampling, qtables, optimize, restart_interval, threads, simd), JpegEncoder)
    return enc.encode(img)


def encode_nano(
    frame: Image,
    scale: int = 4,
    method: Literal["nearest", "area", "bilinear"] = "nearest",
    quality: int = 75,
    subsampling: Subsampling = "420",
    qtables: QTables = "turbo",
    optimize: bool = False,
    restart_interval: int = 0,
    threads: int = 1,
    *,
    simd: str | None = None,
) -> bytes:
    """Shrink ``frame`` ``scale`` times per axis and encode it, in one native call."""
    key = _key(scale, method, quality, subsampling, qtables, optimize, restart_interval, threads, simd)
    return _cached("nano", key, NanoEncoder).encode(frame)


def rgb_to_i420(frame: Image, out: Image | None = None, *, simd: str | None = None) -> Image:
    """RGB(A) ``frame`` -> I420 (BT.601 limited range), for the video encoder.

    Returns ``out`` (allocated when None): a contiguous ``(h * 3 // 2, w)`` uint8 array holding
    the Y plane, then U, then V (each ``w/2 x h/2``), the layout
    ``av.VideoFrame.from_ndarray(out, format="yuv420p")`` takes. Width and height must be even.
    Chroma is each 2x2 block's mean with one rounding; see ``rust/synesthesia-core/src/yuv``.
    """
    frame = _check_image(frame, "frame")
    h, w = frame.shape[:2]
    if frame.ndim != 3 or frame.shape[2] not in (3, 4):
        raise _fail("frame", f"expected RGB or RGBA (H, W, 3|4), got shape {frame.shape}")
    if w % 2 or h % 2:
        raise _fail("frame", f"4:2:0 needs an even width and height, got {w}x{h}")
    shape = (h * 3 // 2, w)
    if out is None:
        out = np.empty(shape, dtype=np.uint8)
    elif not isinstance(out, np.ndarray) or out.dtype != np.uint8 or out.shape != shape or not out.flags.c_contiguous:
        raise _fail("out", f"expected a C-contiguous uint8 array of shape {shape}")
    elif not out.flags.writeable:
        raise _fail("out", "array is read-only")
    _native.rgb_to_i420_into(frame, out.reshape(-1), _check_simd(simd))
    return out


def rgb_to_i420_planes(frame: Image, y: object, u: object, v: object, *, simd: str | None = None) -> None:
    """:func:`rgb_to_i420` into three separate writable contiguous buffers of exactly
    ``w*h``, ``w/2*h/2`` and ``w/2*h/2`` bytes (e.g. the planes of an encoder's picture)."""
    frame = _check_image(frame, "frame")
    if frame.ndim != 3 or frame.shape[2] not in (3, 4):
        raise _fail("frame", f"expected RGB or RGBA (H, W, 3|4), got shape {frame.shape}")
    planes = []
    for name, buf in (("y", y), ("u", u), ("v", v)):
        try:
            planes.append(_check_out_buffer(buf))
        except KernelArgumentError as exc:
            raise _fail(name, str(exc).split(": ", 1)[1]) from None
    _native.rgb_to_i420_planes_into(frame, planes[0], planes[1], planes[2], _check_simd(simd))


def quality_tables(quality: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The (luma, chroma) Annex K tables scaled for ``quality``, natural order."""
    luma, chroma = _native.quality_tables(_check_int("quality", quality, 1, 100))
    return tuple(luma), tuple(chroma)


def turbo_tables() -> tuple[list[int], list[int]]:
    """The ``turbo`` preset (luma, chroma) for the nano stream, natural order."""
    luma, chroma = _native.turbo_tables()
    return list(luma), list(chroma)


def simd_level() -> str:
    """The instruction set kernels use now: ``portable``, ``avx2`` or ``avx512``."""
    return _native.simd_level()


def available_simd_levels() -> list[str]:
    """Every level this CPU can run, slowest first."""
    return list(_native.simd_levels())


def force_simd(level: str | None) -> None:
    """Force every kernel in this process onto ``level`` (``None``: back to the best)."""
    _native.force_simd(_check_simd(level))


@contextlib.contextmanager
def forced_simd(level: str | None) -> Iterator[None]:
    """``with forced_simd("portable"): ...`` runs the block on one instruction set."""
    previous = _native.simd_level()
    force_simd(level)
    try:
        yield
    finally:
        _native.force_simd(previous)
