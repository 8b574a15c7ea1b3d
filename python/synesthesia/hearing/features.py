"""Whisper's log-mel features in numpy (runs in the listen process, inside the Whisper
recognizer): 80 mel bins of a 400-point STFT every 160 samples (25 ms windows, 10 ms hop, 16 kHz),
log10 clipped to 8 decades under the utterance's peak and scaled to about -1..1, as the model was
trained on. Unlike Whisper's reference pipeline nothing is padded to 30 s: the caller pads the
audio to a short window (`pad_frames`), which is what keeps one decode of a short command cheap.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

__all__ = ["N_FFT", "HOP", "N_MELS", "RATE", "mel_filters", "log_mel", "pad_frames"]

RATE = 16000
N_FFT = 400
HOP = 160
N_MELS = 80


def _hz_to_mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Slaney's mel scale (the Auditory Toolbox's): linear to 1 kHz at 200/3 Hz per mel, then
    logarithmic at 27 mels per factor 6.4. Whisper's filterbank is built on this scale."""
    f_sp, min_log_hz = 200.0 / 3.0, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    lin = hz / f_sp
    return np.where(hz >= min_log_hz, min_log_mel + np.log(np.maximum(hz, 1e-12) / min_log_hz) / logstep, lin)


def _mel_to_hz(mel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    f_sp, min_log_hz = 200.0 / 3.0, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


@functools.cache
def mel_filters(n_mels: int = N_MELS, n_fft: int = N_FFT, rate: int = RATE) -> npt.NDArray[np.float32]:
    """(n_mels, n_fft // 2 + 1) triangular filters evenly spaced on the Slaney mel scale from 0 Hz
    to Nyquist, each scaled to unit area (2 / its width in Hz)."""
    bins = np.linspace(0.0, rate / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array(0.0)), _hz_to_mel(np.array(rate / 2)), n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lo) / (mid - lo)
    falling = (hi - bins[None, :]) / (hi - mid)
    weights = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (hi - lo))
    weights.setflags(write=False)
    return weights.astype(np.float32)


@functools.cache
def _bands() -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64], npt.NDArray[np.intp]]:
    """The filterbank as its nonzero entries (391 of 80 x 201): each filter covers one run of
    adjacent bins, so the product is a gather and a sum per filter. A dense matrix product
    would go to the BLAS, whose own threads cost more CPU than the product on short windows and
    compete with the recognizer's and the world's threads."""
    weights = mel_filters().astype(np.float64)
    rows, cols = np.nonzero(weights)
    starts = np.searchsorted(rows, np.arange(weights.shape[0]))
    if len(np.unique(rows)) != weights.shape[0]:
        raise AssertionError("a mel filter without a frequency bin")  # cannot happen at 16 kHz, n_fft 400
    return cols, weights[rows, cols], starts


@functools.cache
def _window() -> npt.NDArray[np.float64]:
    # periodic Hann (the DFT-even one torch.hann_window gives)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)


def pad_frames(n_samples: int, multiple: int = 100) -> int:
    """The feature frames of ``n_samples`` of audio rounded up to a multiple of ``multiple``
    (100 frames = 1 s): the short window the encoder sees instead of 30 s."""
    frames = n_samples // HOP
    return max(multiple, -(-frames // multiple) * multiple)


def log_mel(audio: npt.NDArray[np.float32], frames: int | None = None) -> npt.NDArray[np.float32]:
    """(80, frames) features of 16 kHz mono audio. ``frames``: pad the audio with silence (or cut
    it) to exactly that many frames; default ``len(audio) // 160``. The STFT is centred (the
    signal reflected by 200 samples at both ends) and its last frame dropped, as Whisper does."""
    x = np.asarray(audio, dtype=np.float64)
    if frames is None:
        frames = len(x) // HOP
    want = frames * HOP
    x = np.pad(x, (0, want - len(x))) if len(x) < want else x[:want]
    half = N_FFT // 2
    if len(x) <= half:
        x = np.pad(x, (0, half + 1 - len(x)))
    padded = np.pad(x, half, mode="reflect")
    view = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:frames]
    power = np.abs(np.fft.rfft(view * _window(), axis=1)) ** 2  # (frames, 201)
    cols, weights, starts = _bands()
    mel = np.add.reduceat(power[:, cols] * weights, starts, axis=1).T  # (80, frames)
    logspec = np.log10(np.maximum(mel, 1e-10))
    logspec = np.maximum(logspec, logspec.max() - 8.0)
    out: npt.NDArray[np.float32] = ((logspec + 4.0) / 4.0).astype(np.float32)
    return out
