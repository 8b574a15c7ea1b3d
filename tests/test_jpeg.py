"""The JPEG encoder, checked with real decoders (Pillow's libjpeg-turbo) and real photos."""

from __future__ import annotations

import io
import threading
import time
from multiprocessing import shared_memory

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, JpegImagePlugin

from conftest import decode, psnr
from synesthesia import kernels

ZIGZAG = np.array([
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
])
SAMPLING = {"444": 0, "422": 1, "420": 2}


def segments(data: bytes) -> dict[int, list[bytes]]:
    """Marker -> payloads of the header segments, up to the scan."""
    assert data[:2] == b"\xff\xd8", "no SOI"
    out: dict[int, list[bytes]] = {}
    i = 2
    while i < len(data):
        assert data[i] == 0xFF, f"bad marker at {i}"
        marker = data[i + 1]
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        out.setdefault(marker, []).append(data[i + 4 : i + 2 + length])
        i += 2 + length
        if marker == 0xDA:
            break
    return out


def dqt_tables(data: bytes) -> dict[int, list[int]]:
    """Table id -> 64 entries in natural order, parsed from the DQT segments by hand."""
    tables: dict[int, list[int]] = {}
    for payload in segments(data)[0xDB]:
        j = 0
        while j < len(payload):
            precision, tid = payload[j] >> 4, payload[j] & 15
            assert precision == 0, "baseline tables are 8-bit"
            zz = list(payload[j + 1 : j + 65])
            natural = [0] * 64
            for k, v in enumerate(zz):
                natural[ZIGZAG[k]] = v
            tables[tid] = natural
            j += 65
    return tables


def pillow_jpeg(img: npt.NDArray[np.uint8], tables: tuple[list[int], list[int]], subsampling: str) -> bytes:
    buf = io.BytesIO()
    # Pillow's qtables are in natural order; it hands them to libjpeg-turbo (accurate DCT).
    Image.fromarray(img).save(buf, "JPEG", qtables=[list(tables[0]), list(tables[1])], subsampling=SAMPLING[subsampling])
    return buf.getvalue()


@pytest.mark.parametrize("subsampling", ["444", "422", "420", "gray"])
@pytest.mark.parametrize("shape", [(704, 1280), (1, 1), (5, 7), (33, 17), (703, 1279)])
def test_decodes_with_pillow(frame: npt.NDArray[np.uint8], subsampling: str, shape: tuple[int, int]) -> None:
    img = np.ascontiguousarray(frame[: shape[0], : shape[1]])
    data = kernels.encode_jpeg(img, quality=90, subsampling=subsampling)  # type: ignore[arg-type]
    out = decode(data)
    assert out.size == (shape[1], shape[0])
    if subsampling == "gray":
        assert out.mode == "L"
    else:
        assert out.mode == "RGB"
        assert JpegImagePlugin.get_sampling(out) == SAMPLING[subsampling]
    if min(shape) >= 16:
        ref = img if subsampling != "gray" else np.asarray(Image.fromarray(img).convert("L"))
        assert psnr(np.asarray(out), ref) > 30


def test_dqt_holds_the_tables_asked_for(frame: npt.NDArray[np.uint8]) -> None:
    rng = np.random.default_rng(3)
    luma = [int(v) for v in rng.integers(1, 256, 64)]
    chroma = [int(v) for v in rng.integers(1, 256, 64)]
    data = kernels.encode_jpeg(frame, qtables=(luma, chroma))
    assert dqt_tables(data) == {0: luma, 1: chroma}
    # Pillow reads the same tables back (it reports natural order too).
    q = decode(data).quantization
    assert list(q[0]) == luma and list(q[1]) == chroma


def test_quality_tables_match_libjpeg(frame: npt.NDArray[np.uint8]) -> None:
    for quality in (1, 10, 50, 75, 90, 100):
        buf = io.BytesIO()
        Image.fromarray(frame[:64, :64]).save(buf, "JPEG", quality=quality)
        theirs = decode(buf.getvalue()).quantization
        luma, chroma = kernels.quality_tables(quality)
        assert list(luma) == list(theirs[0]) and list(chroma) == list(theirs[1]), quality
        assert dqt_tables(kernels.encode_jpeg(frame[:64, :64], quality=quality)) == {0: list(luma), 1: list(chroma)}


def test_turbo_preset_is_in_the_file(frame: npt.NDArray[np.uint8]) -> None:
    luma, chroma = kernels.turbo_tables()
    data = kernels.encode_jpeg(frame, qtables="turbo")
    assert dqt_tables(data) == {0: luma, 1: chroma}


@pytest.mark.parametrize("quality", [50, 75, 90])
@pytest.mark.parametrize("subsampling", ["420", "444"])
@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "synthetic"])
def test_psnr_matches_libjpeg_turbo(
    photos: dict[str, npt.NDArray[np.uint8]], frame: npt.NDArray[np.uint8], quality: int, subsampling: str, name: str
) -> None:
    img = frame if name == "synthetic" else photos[name]
    tables = tuple(list(t) for t in kernels.quality_tables(quality))
    ours = kernels.encode_jpeg(img, qtables=tables, subsampling=subsampling)  # type: ignore[arg-type]
    theirs = pillow_jpeg(img, tables, subsampling)  # type: ignore[arg-type]
    p_ours, p_theirs = psnr(np.asarray(decode(ours)), img), psnr(np.asarray(decode(theirs)), img)
    assert p_ours >= p_theirs - 0.2, f"ours {p_ours:.3f} dB vs libjpeg-turbo {p_theirs:.3f} dB"


def test_optimized_huffman_is_smaller_and_decodes_the_same(photos: dict[str, npt.NDArray[np.uint8]]) -> None:
    img = photos["astronaut"]
    plain = kernels.encode_jpeg(img, quality=80)
    optimized = kernels.encode_jpeg(img, quality=80, optimize=True)
    assert len(optimized) < len(plain)
    assert np.array_equal(np.asarray(decode(plain)), np.asarray(decode(optimized)))


@pytest.mark.parametrize("interval", [1, 7, 80])
def test_restart_markers(frame: npt.NDArray[np.uint8], interval: int) -> None:
    data = kernels.encode_jpeg(frame, restart_interval=interval)
    dri = segments(data)[0xDD][0]
    assert int.from_bytes(dri, "big") == interval
    scan = data[data.index(b"\xff\xda") :]
    mcus = (1280 // 16) * (704 // 16)
    rst = sum(scan.count(bytes([0xFF, 0xD0 + k])) for k in range(8))
    assert rst == (mcus - 1) // interval
    plain = np.asarray(decode(kernels.encode_jpeg(frame)))
    assert np.array_equal(np.asarray(decode(data)), plain)


@pytest.mark.parametrize("threads", [2, 3, 4])
@pytest.mark.parametrize("optimize", [False, True])
def test_parallel_slices_decode_like_one_thread(frame: npt.NDArray[np.uint8], threads: int, optimize: bool) -> None:
    one = np.asarray(decode(kernels.encode_jpeg(frame, optimize=optimize)))
    many = kernels.encode_jpeg(frame, threads=threads, optimize=optimize)
    assert 0xDD in segments(many), "slices are joined by restart markers"
    assert np.array_equal(np.asarray(decode(many)), one)


def test_alpha_is_ignored_and_gray_input_is_one_component(frame: npt.NDArray[np.uint8]) -> None:
    rgba = np.dstack([frame, np.full(frame.shape[:2], 77, np.uint8)])
    assert kernels.encode_jpeg(rgba) == kernels.encode_jpeg(frame)
    gray = np.ascontiguousarray(frame[..., 0])
    out = decode(kernels.encode_jpeg(gray))
    assert out.mode == "L"
    assert kernels.encode_jpeg(gray) == kernels.encode_jpeg(gray[..., None])


def test_strided_view_gives_the_same_bytes_as_a_copy(frame: npt.NDArray[np.uint8]) -> None:
    view = frame[7:-9, 13:-20]
    assert kernels.encode_jpeg(view) == kernels.encode_jpeg(np.ascontiguousarray(view))


def test_encode_into_shared_memory(frame: npt.NDArray[np.uint8]) -> None:
    enc = kernels.JpegEncoder(quality=70)
    expected = enc.encode(frame)
    shm = shared_memory.SharedMemory(create=True, size=enc.max_encoded_size(1280, 704))
    try:
        n = enc.encode_into(frame, shm.buf)
        assert bytes(shm.buf[:n]) == expected
    finally:
        shm.close()
        shm.unlink()
    buf = bytearray(len(expected) + 10)
    assert enc.encode_into(frame, buf) == len(expected)
    assert bytes(buf[: len(expected)]) == expected
    with pytest.raises(ValueError, match="too small"):
        enc.encode_into(frame, bytearray(len(expected) - 1))


@pytest.mark.parametrize("level", kernels.available_simd_levels())
@pytest.mark.parametrize("subsampling", ["444", "422", "420", "gray"])
def test_every_simd_level_gives_the_same_bytes(photos: dict[str, npt.NDArray[np.uint8]], level: str, subsampling: str) -> None:
    for img in (photos["chelsea"], photos["coffee"][3:, 5:]):
        for quality in (30, 95):
            args = dict(quality=quality, subsampling=subsampling)
            assert kernels.encode_jpeg(img, simd=level, **args) == kernels.encode_jpeg(img, simd="portable", **args)  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["nearest", "area", "bilinear"])
def test_nano_equals_resize_then_encode(frame: npt.NDArray[np.uint8], method: str) -> None:
    nano = kernels.encode_nano(frame, method=method)  # type: ignore[arg-type]
    small = kernels.resize(frame, (320, 176), method)  # type: ignore[arg-type]
    assert nano == kernels.encode_jpeg(small, qtables="turbo")
    out = decode(nano)
    assert out.size == (320, 176) and JpegImagePlugin.get_sampling(out) == 2
    enc = kernels.NanoEncoder(method=method)  # type: ignore[arg-type]
    assert enc.output_size(1280, 704) == (320, 176)
    buf = bytearray(200_000)
    assert bytes(buf[: enc.encode_into(frame, buf)]) == nano


def test_gil_is_released_while_encoding() -> None:
    big = np.random.default_rng(0).integers(0, 256, (4000, 4000, 3), dtype=np.uint8)
    enc = kernels.JpegEncoder(quality=95, subsampling="444")
    counter = 0
    running = True

    def spin() -> None:
        nonlocal counter
        while running:
            counter += 1
            time.sleep(0)

    t = threading.Thread(target=spin)
    t.start()
    try:
        time.sleep(0.01)
        before = counter
        enc.encode(big)
        during = counter - before
    finally:
        running = False
        t.join()
    # With the GIL held the spinner could only sneak in a couple of iterations around the call.
    assert during > 50, f"another Python thread made {during} steps during the encode"
