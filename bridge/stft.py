"""Streaming STFT analysis and overlap-add synthesis, block-size invariant.

Public API
----------
- ``hann_window(n_fft)``: periodic Hann window, shape (n_fft,).
- ``StreamingAnalysis(n_fft, hop, n_channels)``: ``push(x)`` with x (n_channels, n_samples)
  returns the spectra of every frame completed by those samples, (n_frames, n_channels, n_bins)
  complex64. Frame k covers input samples [(k + 1) * hop - n_fft, (k + 1) * hop); samples
  before the stream start are zeros.
- ``StreamingSynthesis(n_fft, hop, n_sources, n_channels)``: ``push(spectra)`` with spectra
  (n_frames, n_sources, n_channels, n_bins) overlap-adds them and returns the samples that
  became final, (n_sources, n_channels, n_out). The output is aligned with the input: its
  sample i is the resynthesis of input sample i (the pre-roll before sample 0 is dropped), so
  after frame k the output runs up to sample (k + 1) * hop - (n_fft - hop).

With the periodic Hann window at analysis and synthesis and ``n_fft / hop >= 4`` (a power of
two ratio), unit masks reconstruct the input exactly (to float rounding) once past the
pre-roll. Frames are processed in batches, so one call may handle any number of samples.
"""

from __future__ import annotations

import numpy as np
import scipy.fft


def hann_window(n_fft: int) -> np.ndarray:
    """Periodic Hann window (n_fft,) float64."""
    n = np.arange(n_fft)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / n_fft)


def _ola_norm(window: np.ndarray, hop: int) -> float:
    """Sum of squared windows over the overlapping frames at any sample; raises if not constant."""
    n_fft = len(window)
    w2 = np.zeros(n_fft)
    for start in range(0, n_fft, hop):
        w2 += np.roll(window**2, start)
    if not np.allclose(w2, w2[0], rtol=1e-9, atol=0.0):
        raise ValueError(f"window with n_fft={n_fft}, hop={hop} does not satisfy the overlap-add constraint")
    return float(w2[0])


class StreamingAnalysis:
    """Block-size-invariant framing + windowed rFFT of a multichannel stream."""

    def __init__(self, n_fft: int, hop: int, n_channels: int) -> None:
        if n_fft % hop:
            raise ValueError("n_fft must be a multiple of hop")
        self.n_fft, self.hop, self.n_channels = n_fft, hop, n_channels
        self.window = hann_window(n_fft).astype(np.float32)
        self.n_bins = n_fft // 2 + 1
        self._hist = np.zeros((n_channels, n_fft - hop), np.float32)  # last n_fft - hop samples
        self._pending = np.zeros((n_channels, 0), np.float32)  # samples of the frame in progress
        self.n_frames_done = 0

    def reset(self) -> None:
        self._hist[:] = 0.0
        self._pending = np.zeros((self.n_channels, 0), np.float32)
        self.n_frames_done = 0

    @property
    def n_pending(self) -> int:
        """Samples held for the frame in progress (the next frame comes after ``hop - n_pending`` more)."""
        return int(self._pending.shape[1])

    def push(self, x: np.ndarray) -> np.ndarray:
        """x: (n_channels, n_samples) float32 -> spectra (n_frames, n_channels, n_bins) complex64."""
        buf = np.concatenate([self._pending, x], axis=1) if self._pending.shape[1] else x
        n_frames = buf.shape[1] // self.hop
        if n_frames == 0:
            self._pending = np.array(buf, dtype=np.float32, copy=True)
            return np.zeros((0, self.n_channels, self.n_bins), np.complex64)
        used = n_frames * self.hop
        full = np.concatenate([self._hist, buf[:, :used]], axis=1)  # (C, n_fft - hop + used)
        frames = np.lib.stride_tricks.sliding_window_view(full, self.n_fft, axis=1)[:, :: self.hop]
        spec = scipy.fft.rfft(frames * self.window, axis=-1).astype(np.complex64, copy=False)  # (C, T, F), float32 FFT
        self._hist = np.array(full[:, -(self.n_fft - self.hop) :], dtype=np.float32, copy=True)
        self._pending = np.array(buf[:, used:], dtype=np.float32, copy=True)
        self.n_frames_done += n_frames
        return np.ascontiguousarray(spec.transpose(1, 0, 2))


class StreamingSynthesis:
    """Inverse rFFT + windowed overlap-add of (n_sources, n_channels) streams."""

    def __init__(self, n_fft: int, hop: int, n_sources: int, n_channels: int) -> None:
        self.n_fft, self.hop = n_fft, hop
        self.n_sources, self.n_channels = n_sources, n_channels
        window = hann_window(n_fft)
        self.window = (window / _ola_norm(window, hop)).astype(np.float32)
        self._acc = np.zeros((n_sources, n_channels, n_fft - hop), np.float32)
        self._skip = n_fft - hop  # pre-roll samples (before input sample 0) still to drop

    def reset(self) -> None:
        self._acc[:] = 0.0
        self._skip = self.n_fft - self.hop

    def push(self, spectra: np.ndarray) -> np.ndarray:
        """spectra: (n_frames, n_sources, n_channels, n_bins) -> (n_sources, n_channels, n_out) float32."""
        n_frames = spectra.shape[0]
        n_fft, hop = self.n_fft, self.hop
        if n_frames == 0:
            return np.zeros((self.n_sources, self.n_channels, 0), np.float32)
        frames = scipy.fft.irfft(spectra, n=n_fft, axis=-1).astype(np.float32, copy=False)  # (T, S, C, n_fft)
        frames *= self.window
        n_seg = n_fft // hop  # frame t's segment r lands on output hop t + r
        seg = frames.reshape(n_frames, self.n_sources, self.n_channels, n_seg, hop).transpose(1, 2, 0, 3, 4)
        out = np.zeros((self.n_sources, self.n_channels, n_frames + n_seg - 1, hop), np.float32)
        out[:, :, : n_seg - 1] = self._acc.reshape(self.n_sources, self.n_channels, n_seg - 1, hop)
        for r in range(n_seg):
            out[:, :, r : r + n_frames] += seg[:, :, :, r]  # strided views: no copies
        out = out.reshape(self.n_sources, self.n_channels, -1)
        done = n_frames * hop
        self._acc = out[:, :, done:].copy()
        ready = out[:, :, :done]
        if self._skip:
            drop = min(self._skip, done)
            self._skip -= drop
            ready = ready[:, :, drop:]
        return ready
