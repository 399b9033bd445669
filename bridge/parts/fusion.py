"""Class stems fused from two estimates by their magnitudes: the parts' and the network's.

The score-informed parts and the score-conditioned network err differently; a fixed linear blend
of their waveforms (``bridge.parts.classes.NETWORK_SHARE``) keeps the errors of both. Fusion works
per time-frequency bin instead: a fused stem's magnitude is the weighted geometric mean
``|P| ** (1 - a) * |N| ** a`` of the two estimates' (``a``: the network's exponent for that stem,
``FUSION_EXPONENT``), and the fused stems share the signal left for them (the input minus the
stems that stay linear) in proportion to those magnitudes (ratio masks), so the stems still sum
back to the input. The remainder (``other``: the input minus every class stem, of each estimate)
is a fused stem like the others, and gains most. Chosen on the selection set (seed 9002, 48
tracks, true score, ``bench/fusion_select.py``); held out (``bench/quality.py``, seed 9001) the
class stems with a score read +9.03 dB median SI-SDRi against +8.67 for the linear blend, paired
+0.44 dB a stem (`other` +1.08, piano +0.69, bass -0.09; BENCHMARKS.md, stop 26).

The STFT is the parts' own (``stft_size_for``: 4096 / 1024 at 44.1 and 48 kHz; a 2048 window, which
``low_latency`` parts settings also give the fusion, read lower on the selection set, the bass
losing outright), so fusion adds ``n_fft - 1`` samples of latency (93 ms at 44.1 kHz).

Public API
----------
- ``FUSION_EXPONENT``: {class stem: the network's exponent ``a``} for the fused stems; stems not
  listed stay linear blends.
- ``StemFusion(exponents, n_fft, hop, n_channels, max_block_size, powers=None, one_estimate=False)``:
  ``exponents`` one per fused stem, the remainder last; ``powers`` (one per stem, default 1) sharpen (> 1)
  or soften (< 1) each stem's mask: its weight is its fused magnitude relative to the target's, to that
  power; ``one_estimate``: ``process(parts, None, target)`` masks by the parts' magnitudes alone.
  ``process(parts, network, target) -> fused``: ``parts`` and ``network`` (n_fused, n_channels, n) each,
  the remainder last; ``target`` (n_channels, n) the signal the fused stems
  share; returns the fused stems but the remainder, (n_fused - 1, n_channels, n), delayed by
  ``latency_samples`` (the remainder is the delayed target minus them). One mask per stem for
  every channel, from the magnitudes of the channel means (as the parts' own). ``reset()``.
  Block-size invariant (a fixed frame schedule).
- ``StemRemask(powers, n_fft, hop, n_channels, max_block_size)``: finished stems (remainder last, summing to
  the input) re-masked from their own sum by their magnitudes in a long STFT (``remask_size_for``), each
  mask to its stem's power: ``process(stems) -> stems`` delayed by ``latency_samples``, still summing to
  the (delayed) input. The blind path's stems gain on every stem (``bridge.transcribe``; BENCHMARKS.md,
  stop 37): offline only, the window is long.
- ``remask_powers(powers, stems) -> list``: {stem: power} as one power per stem (1 where not named), unknown
  stems refused.
- ``remask_size_for(sample_rate) -> (n_fft, hop)``: 16384 samples at 44.1 / 48 kHz (0.37 / 0.34 s), hop a
  quarter.
- ``powered_masks(weights, target_mag, powers) -> masks``: the masks for powers other than 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from bridge.ring import RingBuffer
from bridge.stft import StreamingAnalysis, StreamingSynthesis

# the network's exponent per fused class stem (0: the parts' magnitude alone); the remainder's is
# REMAINDER_EXPONENT. Selection set, seed 9002, 48 tracks, true score (BENCHMARKS.md, stop 26).
FUSION_EXPONENT = {"bass": 0.12, "piano": 0.25, "guitar": 0.15, "strings": 0.0}
REMAINDER_EXPONENT = 0.1
_TINY = 1e-12
REMAINDER_FLOOR = 1e-3  # of the target's magnitude, given to the remainder in every bin


class StemFusion:
    """Magnitude fusion of two stem estimates; see the module docstring."""

    def __init__(
        self,
        exponents: Sequence[float],
        n_fft: int,
        hop: int,
        n_channels: int,
        max_block_size: int,
        powers: Sequence[float] | None = None,
        one_estimate: bool = False,
    ) -> None:
        a = np.asarray(exponents, np.float32)
        if a.ndim != 1 or len(a) < 2 or np.any(a < 0.0) or np.any(a > 1.0):
            raise ValueError(
                f"fusion exponents must lie in [0, 1], one per stem and the remainder, got {list(exponents)}"
            )
        q = np.ones_like(a) if powers is None else np.asarray(powers, np.float32)
        if q.shape != a.shape or not np.all((q >= 0.1) & (q <= 4.0)):
            raise ValueError(f"mask powers must lie in [0.1, 4], one per stem and the remainder, got {list(q)}")
        self.exponents, self.powers = a, q
        self.n_stems, self.n_channels = len(a), n_channels
        self.n_fft, self.hop = n_fft, hop
        self.latency_samples = n_fft - 1  # as the parts': n_fft - hop of overlap, hop - 1 of framing
        # the channel means of the parts' and the network's stems (n_stems rows each; the parts' alone with
        # ``one_estimate``), then the target (n_channels rows): one mask per stem for every channel, as the
        # parts' own
        self.one_estimate = one_estimate
        n_estimates = 1 if one_estimate else 2
        self._analysis = StreamingAnalysis(n_fft, hop, n_estimates * self.n_stems + n_channels)
        # the remainder is not resynthesised: the caller takes it as the target minus the others
        self._synthesis = StreamingSynthesis(n_fft, hop, self.n_stems - 1, n_channels)
        cap = self.latency_samples + 4 * max(1, int(max_block_size)) + 8 * hop + 16384
        self._fifo = RingBuffer(max(1, self.n_stems - 1) * n_channels, cap)
        self.reset()

    def reset(self) -> None:
        self._analysis.reset()
        self._synthesis.reset()
        self._fifo.clear()
        self._fifo.fill_zeros(self.latency_samples)

    def masks(self, parts_mag: np.ndarray, network_mag: np.ndarray, target_mag: np.ndarray) -> np.ndarray:
        """parts_mag, network_mag (T, n_stems, F), target_mag (T, F) -> ratio masks (T, n_stems, F),
        summing to 1 over the stems. The remainder's weight has a floor of ``REMAINDER_FLOOR`` times
        ``target_mag`` (the mean of the target channels' magnitudes), so a bin that neither
        estimate fills goes mostly to the remainder: there the ratios of near-silent estimates would
        follow their rounding (a block size, a CPU's vector width). Each weight, relative to
        ``target_mag``, is raised to its stem's power (1: the plain ratio of magnitudes;
        ``powered_masks``); a remainder's power under 1 lifts its floor (1e-3 ** power of the target)."""
        a = self.exponents[None, :, None]
        log_p = np.log(parts_mag + _TINY)
        w = np.exp(log_p + a * (np.log(network_mag + _TINY) - log_p))  # |P| ** (1 - a) * |N| ** a
        w[:, -1] += REMAINDER_FLOOR * target_mag + _TINY
        if np.any(self.powers != 1.0):
            return powered_masks(w, target_mag, self.powers)
        return w / w.sum(axis=1, keepdims=True)

    def process(self, parts: np.ndarray, network: np.ndarray | None, target: np.ndarray) -> np.ndarray:
        """parts, network (n_stems, n_channels, n) (network None, and only then, with ``one_estimate``: the
        parts' magnitudes alone); target (n_channels, n) -> (n_stems - 1, n_channels, n) the fused stems but
        the remainder (the delayed target minus these), delayed by ``latency_samples``."""
        if (network is None) != self.one_estimate:
            raise ValueError("a network estimate goes with two estimates, None with one_estimate")
        s, c, n = self.n_stems, self.n_channels, target.shape[1]
        means = [parts.mean(axis=1)] + ([] if network is None else [network.mean(axis=1)])
        rows = np.concatenate([*means, target], axis=0)
        spectra = self._analysis.push(rows.astype(np.float32, copy=False))  # (T, rows, F)
        if spectra.shape[0]:
            k = len(means) * s  # the target's first row
            mag = np.abs(spectra)
            m = self.masks(mag[:, :s], mag[:, k - s : k], mag[:, k:].mean(axis=1))  # (T, s, F)
            out = self._synthesis.push(m[:, :-1, None, :] * spectra[:, None, k:, :])  # (s - 1, c, n_out)
            self._fifo.write(np.ascontiguousarray(out.reshape((s - 1) * c, -1)))
        fused = np.empty(((s - 1) * c, n), np.float32)
        self._fifo.read(n, fused)
        return fused.reshape(s - 1, c, n)


def powered_masks(weights: np.ndarray, target_mag: np.ndarray, powers: np.ndarray) -> np.ndarray:
    """weights (T, n_stems, F) > 0, target_mag (T, F), powers (n_stems,) -> masks (T, n_stems, F) summing to 1
    over the stems, each ``(weight / target) ** power`` normalised; computed in the log domain with each
    bin's largest term taken out first, so a bin where the stems cancel to a silent target (ratios of
    1e15) or a large power neither overflows nor gives NaN."""
    log_r = np.log(weights) - np.log(target_mag + _TINY)[:, None, :]
    log_r *= np.asarray(powers, np.float32)[None, :, None]
    r = np.exp(log_r - log_r.max(axis=1, keepdims=True))
    return r / r.sum(axis=1, keepdims=True)


def remask_powers(powers: Mapping[str, float], stems: Sequence[str]) -> list[float]:
    """``StemRemask``'s powers: one per stem of ``stems`` (a model's, ``other`` last), 1 where ``powers`` does not
    name it; ``ValueError`` naming the stems of ``powers`` not among ``stems`` (a misspelt one would keep 1)."""
    unknown = sorted(set(powers) - set(stems))
    if unknown:
        raise ValueError(f"remask names stems {', '.join(unknown)} this model lacks; its are {', '.join(stems)}")
    return [float(powers.get(s, 1.0)) for s in stems]


def remask_size_for(sample_rate: int) -> tuple[int, int]:
    """``(n_fft, hop)`` of ``StemRemask`` at a host rate: 16384 samples up to 50 kHz (0.37 s at 44.1 kHz,
    0.34 s at 48 kHz), twice that up to 100 kHz, four times above; hop a quarter."""
    n_fft = 16384 if sample_rate <= 50000 else 32768 if sample_rate <= 100000 else 65536
    return n_fft, n_fft // 4


class StemRemask:
    """Finished stems re-masked from their sum; see the module docstring."""

    def __init__(self, powers: Sequence[float], n_fft: int, hop: int, n_channels: int, max_block_size: int) -> None:
        self._fusion = StemFusion([0.0] * len(powers), n_fft, hop, n_channels, max_block_size, powers, True)
        self.latency_samples = self._fusion.latency_samples
        self._total = RingBuffer(n_channels, self.latency_samples + 4 * max(1, int(max_block_size)) + 16384)
        self.reset()

    def reset(self) -> None:
        self._fusion.reset()
        self._total.clear()
        self._total.fill_zeros(self.latency_samples)

    def process(self, stems: np.ndarray) -> np.ndarray:
        """stems (n_stems, n_channels, n), the remainder last -> the re-masked stems, (n_stems, n_channels,
        n), delayed by ``latency_samples``; the remainder is the delayed sum minus the others."""
        total = stems.sum(axis=0, dtype=np.float32)
        out = self._fusion.process(stems, None, total)
        self._total.write(total)
        late = np.empty_like(total)
        self._total.read(total.shape[1], late)
        return np.concatenate([out, (late - out.sum(axis=0))[None]])
