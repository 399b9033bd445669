"""Streaming low-delay polyphase resampling for the Processor's host-rate <-> model-rate stages.

Public API
----------
- ``design(rate_in, rate_out) -> ResampleDesign`` (cached per rate pair): the rational ratio
  ``L/M`` (up by L, down by M), a Kaiser-window linear-phase FIR at the fine rate
  ``L * rate_in`` split into L polyphase branches of K taps, its group delay ``delay_fine``
  (fine-rate samples, an integer) and the stream's exact worst-case output shortfall
  ``lag_samples`` (output samples, a ``Fraction``).
- ``PolyphaseStream(rate_in, rate_out, n_channels)``: ``resample_chunk(x)`` with ``x``
  (n, n_channels) float32 -> (n_out, n_channels) float32, the call shape of python-soxr's
  ``ResampleStream``; ``reset()`` clears the state. Any chunk length (0 included) and any
  split of a stream into chunks gives bit-identical output (block-size invariant).
- ``open_stream(rate_in, rate_out, n_channels)``: a ``PolyphaseStream``, or a python-soxr HQ
  stream where the polyphase table would be too large (``FALLBACK_MAX_TAPS``).
- ``stream_lag_samples(rate_in, rate_out) -> Fraction``: the worst-case output shortfall of the
  stream ``open_stream`` returns (exact for the polyphase stream, measured + 1 for soxr).
- ``kaiser_order`` / ``kaiser_lowpass``: ``scipy.signal.kaiserord`` and ``firwin`` with a Kaiser
  window, in numpy (the live path does not import scipy; a test compares them).

Filter (``design``): f_lo = min(rate_in, rate_out); passband to ``min(16 kHz, 0.4 f_lo)``,
stopband from ``f_lo - min(18 kHz, 0.45 f_lo)`` (44.1 <-> 48 kHz: 16.0 / 26.1 kHz), ``ATTEN_DB``
Kaiser attenuation (ripple ~1e-4, 0.001 dB). The stopband edge is the lowest frequency that can
fold into 0..18 kHz at the lower rate, so nothing aliases or images into 0..18 kHz; 18..22 kHz
is a transition band (a tone there comes through partly; its aliases and images land above
18 kHz).

Timing: output k is the input at time ``k * rate_in / rate_out`` (content-aligned, as soxr):
it is computed at fine time ``t = k*M + delay_fine`` from input samples ``t//L - K + 1 .. t//L``
and emitted as soon as input sample ``t//L`` has arrived. The filter's group delay
``delay_fine / M`` output samples therefore shows up as output withheld, never as a shift:
after n input samples the stream has emitted ``n_out(n) >= n * rate_out / rate_in - lag``
samples, ``lag <= delay_fine / M`` (equal for the 48/88.2/96 kHz pairs: 0.248 ms a stage),
computed exactly from integers. The Processor adds the
in and out lags to its integer latency (``bridge.engine.Processor.prepare``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Protocol

import numpy as np
from numpy.lib.stride_tricks import as_strided

ATTEN_DB = 80.0  # Kaiser stopband attenuation per stage (passband ripple about 10**(-ATTEN_DB/20))
PASS_HZ = 16000.0  # passband edge (upper bound; 0.4 * the lower rate below 40 kHz)
TONE_HZ = 18000.0  # highest tone whose aliases/images must stay out of 0..TONE_HZ
FALLBACK_MAX_TAPS = 1 << 21  # prototype longer than this (awkward ratios): python-soxr HQ instead
SOXR_QUALITY = "HQ"
_CHUNK_OUT = 4096  # outputs computed per vectorised step (bounds temporary memory)


class ResampleStreamLike(Protocol):
    def resample_chunk(self, x: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class ResampleDesign:
    """One rate pair's filter: ``branches`` (L, K) float32, branch p tap j = h[p + j*L] * L."""

    rate_in: int
    rate_out: int
    up: int  # L
    down: int  # M
    n_taps: int  # K, taps per polyphase branch
    delay_fine: int  # group delay of the prototype, fine-rate samples ((len(h) - 1) / 2)
    lag_samples: Fraction  # exact worst-case output shortfall, output samples
    pass_hz: float
    stop_hz: float
    branches: np.ndarray

    @property
    def delay_out_samples(self) -> Fraction:
        """Group delay of the filter in output samples (the content delay a causal stream would add)."""
        return Fraction(self.delay_fine, self.down)

    @property
    def prototype_length(self) -> int:
        return self.up * self.n_taps


def band_edges(rate_in: int, rate_out: int) -> tuple[float, float]:
    """(passband edge, stopband edge) in Hz for a rate pair (see the module docstring)."""
    f_lo = float(min(rate_in, rate_out))
    return min(PASS_HZ, 0.4 * f_lo), f_lo - min(TONE_HZ, 0.45 * f_lo)


def _ratio(rate_in: int, rate_out: int) -> tuple[int, int]:
    g = math.gcd(int(rate_in), int(rate_out))
    return int(rate_out) // g, int(rate_in) // g


def kaiser_order(atten_db: float, width: float) -> tuple[int, float]:
    """(numtaps, beta) of a Kaiser-window lowpass: ``scipy.signal.kaiserord(atten_db, width)``,
    width as a fraction of Nyquist. Numpy only, so that the live path does not import scipy
    (about a second); ``tests/test_resample.py`` checks it against scipy."""
    a = abs(atten_db)
    if a > 50:
        beta = 0.1102 * (a - 8.7)
    elif a > 21:
        beta = 0.5842 * (a - 21) ** 0.4 + 0.07886 * (a - 21)
    else:
        beta = 0.0
    return int(math.ceil((a - 7.95) / 2.285 / (math.pi * width) + 1)), beta


def kaiser_lowpass(n_taps: int, cutoff_hz: float, fs: float, beta: float) -> np.ndarray:
    """Linear-phase lowpass, unit DC gain: ``scipy.signal.firwin(n_taps, cutoff_hz,
    window=("kaiser", beta), fs=fs)`` in numpy (float64)."""
    c = cutoff_hz / (0.5 * fs)
    m = np.arange(n_taps) - 0.5 * (n_taps - 1)
    h = c * np.sinc(c * m) * np.kaiser(n_taps, beta)
    return h / h.sum()


def prototype_length(rate_in: int, rate_out: int) -> int:
    """Length of the Kaiser prototype (odd) that ``design`` would build, without building it."""
    up, _ = _ratio(rate_in, rate_out)
    f_pass, f_stop = band_edges(rate_in, rate_out)
    fs_fine = float(rate_in) * up
    n, _beta = kaiser_order(ATTEN_DB, (f_stop - f_pass) / (0.5 * fs_fine))
    return n | 1


def _lag(up: int, down: int, n_taps: int, delay_fine: int) -> Fraction:
    """max over n >= 1 of n*L/M - n_out(n), n_out(n) = #{k >= 0 : (k*M + delay_fine) // L <= n - 1}.

    The shortfall is periodic in n with period M once outputs flow, so n up to
    M + delay_fine // L + 2 covers every case.
    """
    n = np.arange(1, down + delay_fine // up + 3, dtype=np.int64)
    n_out = np.maximum(0, (n * up - 1 - delay_fine) // down + 1)
    num = n * up - down * n_out  # shortfall * M
    return Fraction(int(num.max()), down)


@lru_cache(maxsize=32)
def design(rate_in: int, rate_out: int) -> ResampleDesign:
    """The polyphase filter for ``rate_in -> rate_out`` (cached). Main thread (it allocates)."""
    rate_in, rate_out = int(rate_in), int(rate_out)
    if rate_in <= 0 or rate_out <= 0:
        raise ValueError(f"sample rates must be positive, got {rate_in} -> {rate_out}")
    up, down = _ratio(rate_in, rate_out)
    f_pass, f_stop = band_edges(rate_in, rate_out)
    fs_fine = float(rate_in) * up
    n, beta = kaiser_order(ATTEN_DB, (f_stop - f_pass) / (0.5 * fs_fine))
    n |= 1  # odd: integer group delay
    h = kaiser_lowpass(n, 0.5 * (f_pass + f_stop), fs_fine, beta) * up
    n_taps = -(-n // up)
    padded = np.zeros(n_taps * up)
    padded[:n] = h
    branches = np.ascontiguousarray(padded.reshape(n_taps, up).T, dtype=np.float32)  # (L, K)
    delay_fine = (n - 1) // 2
    return ResampleDesign(
        rate_in=rate_in,
        rate_out=rate_out,
        up=up,
        down=down,
        n_taps=n_taps,
        delay_fine=delay_fine,
        lag_samples=_lag(up, down, n_taps, delay_fine),
        pass_hz=f_pass,
        stop_hz=f_stop,
        branches=branches,
    )


class PolyphaseStream:
    """Streaming rational resampler (see the module docstring); python-soxr's call shape."""

    def __init__(self, rate_in: int, rate_out: int, n_channels: int, dtype: str = "float32") -> None:
        """Main thread: builds (or fetches) the design and allocates the state."""
        if dtype != "float32":
            raise ValueError("PolyphaseStream works in float32")
        self.design = d = design(rate_in, rate_out)
        self.n_channels = int(n_channels)
        # output k = q*L + r (q periods, r < L) uses inputs newest-K+1 .. newest,
        # newest = q*M + _newest[r], taps _coef[r] (oldest first); both tiled past L so that
        # _CHUNK_OUT consecutive outputs are one contiguous slice
        r = np.arange(d.up + _CHUNK_OUT, dtype=np.int64)
        t = r * d.down + d.delay_fine
        self._newest = t // d.up
        self._coef = np.ascontiguousarray(d.branches[t % d.up, ::-1])[:, :, None]  # (L + chunk, K, 1)
        self._store = np.zeros((0, self.n_channels), np.float32)  # input samples, see _alloc
        self._fill = 0
        self._alloc(d.n_taps - 1 + 4 * _CHUNK_OUT)
        self.reset()

    @property
    def lag_samples(self) -> Fraction:
        return self.design.lag_samples

    def reset(self) -> None:
        """Clear the stream: the next chunk starts a new signal (zeros before it). Keeps the store."""
        k = self.design.n_taps
        self._store[: k - 1] = 0.0
        self._store_start = -(k - 1)  # absolute input index of _store[0]
        self._fill = k - 1  # rows of _store in use
        self._n_in = 0
        self._k_next = 0  # next output index

    def _alloc(self, n_rows: int) -> None:
        """A store of n_rows input samples and its read-only window view (rows, C, K):
        windows[i, c, j] = store[i + j, c], made once per allocation, not per chunk."""
        k = self.design.n_taps
        store = np.zeros((n_rows, self.n_channels), np.float32)
        store[: self._fill] = self._store[: self._fill]
        self._store = store
        s0, s1 = store.strides
        self._windows = as_strided(store, (n_rows - k + 1, self.n_channels, k), (s0, s1, s0), writeable=False)

    def _append(self, x: np.ndarray) -> None:
        n = x.shape[0]
        if self._fill + n > self._store.shape[0]:
            # drop the inputs no output needs any more (older than the next output's oldest)
            d = self.design
            keep_from = min((self._k_next * d.down + d.delay_fine) // d.up - (d.n_taps - 1), self._n_in)
            drop = keep_from - self._store_start
            if drop > 0:
                self._store[: self._fill - drop] = self._store[drop : self._fill]
                self._fill -= drop
                self._store_start = keep_from
            if self._fill + n > self._store.shape[0]:
                self._alloc(2 * (self._fill + n))
        self._store[self._fill : self._fill + n] = x
        self._fill += n
        self._n_in += n

    def resample_chunk(self, x: np.ndarray) -> np.ndarray:
        """x (n, n_channels) -> every output now computable, (n_out, n_channels) float32."""
        d = self.design
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_channels:
            raise ValueError(f"expected (n, {self.n_channels}), got {x.shape}")
        if x.shape[0]:
            self._append(x)
        up, down = d.up, d.down
        # outputs with (k*M + delay) // L <= n_in - 1
        k_end = max(0, (self._n_in * up - 1 - d.delay_fine) // down + 1)
        n_out = max(0, k_end - self._k_next)
        out = np.empty((n_out, self.n_channels, 1), np.float32)
        for a in range(0, n_out, _CHUNK_OUT):
            n = min(n_out - a, _CHUNK_OUT)
            q, r = divmod(self._k_next + a, up)
            # store row of the oldest input each output uses
            first = self._newest[r : r + n] + (q * down - self._store_start - (d.n_taps - 1))
            np.matmul(self._windows[first], self._coef[r : r + n], out=out[a : a + n])
        self._k_next += n_out
        return out[:, :, 0]


def uses_polyphase(rate_in: int, rate_out: int) -> bool:
    """Whether ``open_stream`` builds a ``PolyphaseStream`` for this pair (else python-soxr)."""
    return prototype_length(rate_in, rate_out) <= FALLBACK_MAX_TAPS


def open_stream(rate_in: int, rate_out: int, n_channels: int) -> ResampleStreamLike:
    """Main thread. A streaming resampler, content-aligned, with ``resample_chunk((n, C))``."""
    if uses_polyphase(rate_in, rate_out):
        return PolyphaseStream(rate_in, rate_out, n_channels)
    import soxr

    return soxr.ResampleStream(rate_in, rate_out, n_channels, dtype="float32", quality=SOXR_QUALITY)


@lru_cache(maxsize=32)
def soxr_lag_samples(rate_in: int, rate_out: int, quality: str = SOXR_QUALITY) -> float:
    """Worst-case output shortfall of a python-soxr stream, in output samples.

    After n input samples a python-soxr stream has emitted at least
    ``n * rate_out / rate_in - lag`` output samples (its output is content-aligned but
    emitted in bursts). Measured by feeding one sample at a time, the worst case.
    """
    import soxr

    rs = soxr.ResampleStream(rate_in, rate_out, 1, dtype="float32", quality=quality)
    one = np.zeros(1, np.float32)
    n_out, lag = 0, 0.0
    for n_in in range(1, 16385):
        n_out += len(rs.resample_chunk(one))
        lag = max(lag, n_in * rate_out / rate_in - n_out)
    return lag


def stream_lag_samples(rate_in: int, rate_out: int) -> Fraction:
    """Worst-case output shortfall (output samples) of the stream ``open_stream`` returns: exact
    for a ``PolyphaseStream``; for python-soxr the measured figure plus one sample of margin
    (it is measured over 16384 samples only)."""
    if uses_polyphase(rate_in, rate_out):
        return design(rate_in, rate_out).lag_samples
    return Fraction(soxr_lag_samples(rate_in, rate_out)).limit_denominator(1 << 20) + 1
