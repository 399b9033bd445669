"""Spectral templates for the score-informed decomposition: harmonic combs and drum spectra.

Public API
----------
- ``midi_to_hz(pitch)``: equal-tempered frequency (A4 = 440 Hz).
- ``harmonic_template(pitch, sample_rate, n_fft, amplitudes=None) -> (n_bins,) float32``: a comb
  of partials at ``h * f0`` (``h = 1, 2, ...`` up to ``MAX_PARTIAL_HZ``), each the magnitude of the
  Hann window's main lobe, widened for vibrato and shifted upward for inharmonicity at high
  partials; partial ``h`` has amplitude ``amplitudes[h - 1]`` (default ``1 / h``). Bins outside
  every partial's support are exactly 0, so multiplicative updates keep them 0. Unit sum.
- ``warm_layouts(sample_rate, n_fft)``: compute every MIDI pitch's comb layout now (the main
  thread, at prepare), so a new live pitch costs the real-time thread a lookup.
- ``fundamental_bins(pitch, sample_rate, n_fft) -> (n,) int``: the bins of the comb's first partial.
- ``partial_amplitudes(template, pitch, sample_rate, n_fft, n_partials) -> (n_partials,)``: the
  peak value of each partial of an (adapted) template, the inverse of ``harmonic_template``.
- ``drum_template(n_bins) -> (n_bins,) float32``: a smooth broadband start for a drum sound
  (every bin positive, adapted freely). Unit sum.
- ``smoothing_bands(sample_rate, n_fft)``: the band matrix that keeps an adapted drum
  template a smooth envelope (no harmonic lines, which belong to the pitched parts).
- ``background_template(n_bins)``: the same shape, for the component that takes what the score
  does not explain.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

MAX_PARTIAL_HZ = 16000.0
MAX_PARTIALS = 20  # selection sets 9002 / 9202: band 10.00 -> 10.45 dB, chamber 11.84 -> 12.13 against 40
VIBRATO_CENTS = 25.0  # support half-width in pitch, on top of the main lobe
INHARMONICITY = 2e-4  # largest stretch allowed: f_h = h f0 sqrt(1 + B h^2), B up to this
MAIN_LOBE_BINS = 2.0  # Hann main lobe half-width
SUPPORT_FLOOR = 0.05  # smallest start value inside a partial's support (relative to its peak)


def midi_to_hz(pitch: float) -> float:
    """Equal-tempered frequency of a MIDI pitch (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((pitch - 69.0) / 12.0)


def _hann_lobe(d_bins: np.ndarray) -> np.ndarray:
    """|Hann spectrum| at ``d_bins`` from a peak, 1 at 0, 0 from the main lobe's edge on."""
    d = np.abs(d_bins)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.sinc(d) / (1.0 - d * d)
    v = np.where(np.isclose(d, 1.0), 0.5, v)
    return np.where(d < MAIN_LOBE_BINS, np.abs(v), 0.0)


def n_partials_of(pitch: float, sample_rate: int) -> int:
    """How many partials of ``pitch`` lie below ``MAX_PARTIAL_HZ`` and Nyquist (at least 1)."""
    f0 = midi_to_hz(pitch)
    top = min(MAX_PARTIAL_HZ, 0.48 * sample_rate)
    return int(max(1, min(MAX_PARTIALS, np.floor(top / f0))))


@lru_cache(maxsize=4096)
def _comb_layout(pitch: float, sample_rate: int, n_fft: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The support of ``pitch``'s comb: bin indices, the partial (0-based) owning each (the one
    whose lobe is largest there) and the lobe value, computed once per (pitch, rate, n_fft)."""
    n_bins = n_fft // 2 + 1
    bin_hz = sample_rate / n_fft
    f0 = midi_to_hz(pitch)
    n_h = n_partials_of(pitch, sample_rate)
    h = np.arange(1, n_h + 1, dtype=np.float64)[:, None]  # (H, 1)
    bins = np.arange(n_bins, dtype=np.float64)[None, :]  # (1, F)
    tol = 2.0 ** (VIBRATO_CENTS / 1200.0) - 1.0
    centre = h * f0 / bin_hz
    stretch = h * f0 * (np.sqrt(1.0 + INHARMONICITY * h * h) - 1.0) / bin_hz
    inside = (bins > centre * (1.0 - tol) - MAIN_LOBE_BINS) & (bins < centre * (1.0 + tol) + stretch + MAIN_LOBE_BINS)
    shape = np.where(inside, np.maximum(_hann_lobe(bins - centre), SUPPORT_FLOOR), -1.0)
    owner = shape.argmax(axis=0)
    value = shape.max(axis=0)
    keep = np.nonzero(value > 0)[0]
    return keep, owner[keep], value[keep]


def warm_layouts(sample_rate: int, n_fft: int) -> None:
    """Fill the layout cache for MIDI pitches 0..127 at this rate and window."""
    for pitch in range(128):
        _comb_layout(float(pitch), int(sample_rate), int(n_fft))


def fundamental_bins(pitch: float, sample_rate: int, n_fft: int) -> np.ndarray:
    """Bin indices of ``pitch``'s first partial (its support in ``harmonic_template``)."""
    bins, owner, _ = _comb_layout(pitch, int(sample_rate), int(n_fft))
    return bins[owner == 0]


def harmonic_template(pitch: float, sample_rate: int, n_fft: int, amplitudes: np.ndarray | None = None) -> np.ndarray:
    """Harmonic comb of ``pitch`` on the rFFT grid, (n_fft // 2 + 1,) float32, unit sum."""
    n_h = n_partials_of(pitch, sample_rate)
    if amplitudes is None:
        amplitudes = 1.0 / np.arange(1, n_h + 1)
    amps = np.zeros(n_h)
    m = min(n_h, len(amplitudes))
    amps[:m] = np.maximum(np.asarray(amplitudes[:m], np.float64), 0.0)
    bins, owner, value = _comb_layout(pitch, int(sample_rate), int(n_fft))
    out = np.zeros(n_fft // 2 + 1)
    out[bins] = value * amps[owner]
    total = out.sum()
    return (out / total if total > 0 else out).astype(np.float32)


def partial_amplitudes(template: np.ndarray, pitch: float, sample_rate: int, n_fft: int, n_partials: int) -> np.ndarray:
    """Peak of each partial (``h = 1..n_partials``) of ``template`` within +-1 bin of ``h f0``; 0 past the top."""
    bin_hz = sample_rate / n_fft
    f0 = midi_to_hz(pitch)
    out = np.zeros(n_partials)
    n = len(template)
    for h in range(1, n_partials + 1):
        c = int(round(h * f0 / bin_hz))
        if c + 1 >= n:
            break
        out[h - 1] = float(np.max(template[max(c - 1, 0) : c + 2]))
    return out


def drum_template(n_bins: int) -> np.ndarray:
    """Smooth broadband start (n_bins,) float32, unit sum, falling 3 dB per octave above ~100 Hz."""
    k = np.arange(n_bins, dtype=np.float64)
    out = 1.0 / np.sqrt(1.0 + k / 5.0)
    return (out / out.sum()).astype(np.float32)


def smoothing_bands(sample_rate: int, n_fft: int, per_octave: float = 3.0, low_hz: float = 40.0) -> np.ndarray:
    """(n_bins, n_bands) triangular bands centred ``per_octave`` per octave from ``low_hz``, a
    partition of unity (every row sums to 1): ``B @ ((B.T @ w) / B.sum(0))`` is ``w`` smoothed to
    a spectral envelope without harmonic fine structure (what a drum template may be)."""
    n_bins = n_fft // 2 + 1
    hz = np.arange(n_bins) * sample_rate / n_fft
    top = sample_rate / 2
    n = int(np.floor(np.log2(top / low_hz) * per_octave)) + 1
    centres = np.concatenate([[0.0], low_hz * 2.0 ** (np.arange(n) / per_octave), [top]])
    bands = np.zeros((n_bins, len(centres) - 2))
    for j in range(1, len(centres) - 1):
        lo, c, hi = centres[j - 1], centres[j], centres[j + 1]
        bands[:, j - 1] = np.clip(np.minimum((hz - lo) / (c - lo), (hi - hz) / (hi - c)), 0.0, None)
    bands[hz <= centres[1], 0] = 1.0  # below the first centre: the first band alone
    bands[hz >= centres[-2], -1] = 1.0  # above the last centre: the last band alone
    return bands


def background_template(n_bins: int) -> np.ndarray:
    """Start of the background component (what the score does not explain): as ``drum_template``."""
    return drum_template(n_bins)
