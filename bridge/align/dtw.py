"""Multiresolution DTW in numpy: a full DTW on coarse features, refined in a band at finer ones.

Steps (1, 0), (0, 1), (1, 1), all of weight 1 (as synctoolbox's default), from (0, 0) to
(n - 1, m - 1), or from and to anywhere within the open margins of the score. Rows (the
recording's frames) are computed one at a time, every row in a few vectorised numpy calls: the
vertical and diagonal predecessors come from the previous row and the horizontal run is a
running minimum over the row's prefix sums, ``D[j] = S[j] + min_{k <= j}(E[k] - S[k])`` with
``S`` the row's cumulative cost and ``E`` the cost reached without a horizontal step. Memory is
the band (one step code per cell), so a 5-minute piece at 20 ms (15000 x 15000 frames) needs a
few MB.

Local cost of frames a (recording) and b (score): ``(1 - <chroma_a, chroma_b>) +
ONSET_WEIGHT * |onsets_a - onsets_b|``.

Public API
----------
- ``mrdtw(audio, score, factors=None, radius=RADIUS, open_start=0, open_end=0,
  onset_weight=ONSET_WEIGHT) -> DtwResult``:
  features from ``bridge.align.features``; the path may begin within the first ``open_start``
  score frames and end within the last ``open_end``; ``factors`` the downsampling of each
  level, coarsest first, ending in 1 (default: chosen from the length so the coarse level has
  at most ~1000 frames).
- ``DtwResult``: ``path`` (n_steps, 2) int [recording frame, score frame], ``cost`` (total),
  ``mean_cost`` (per step), ``coarse_mean_cost``, ``factors``.
- ``dtw_band(cost_row, n, m, lo, hi, open_start=0, open_end=0) -> (path, total_cost)``: the
  banded core; ``cost_row(i, lo, hi)`` gives row ``i``'s local costs for score frames
  ``lo..hi-1``.
- ``local_cost(audio, score, i, lo, hi, onset_weight=ONSET_WEIGHT)``: that row of local costs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import maximum_filter1d, minimum_filter1d

from bridge.align.features import Features

ONSET_WEIGHT = 0.25
RADIUS = 12  # band half-width in frames of the finer level, around the coarser path
COARSE_MAX_FRAMES = 1000
_DIAG, _UP, _LEFT = 0, 1, 2


@dataclass
class DtwResult:
    path: np.ndarray  # (n_steps, 2) int [recording frame, score frame]
    cost: float
    mean_cost: float
    coarse_mean_cost: float
    factors: tuple[int, ...]


def local_cost(
    audio: Features, score: Features, i: int, lo: int, hi: int, onset_weight: float = ONSET_WEIGHT
) -> np.ndarray:
    """Local costs of recording frame ``i`` against score frames ``lo..hi-1`` (float64)."""
    a_c = audio.chroma[:, i]
    a_o = audio.onsets[:, i]
    s_c = score.chroma[:, lo:hi]
    s_o = score.onsets[:, lo:hi]
    chroma = 1.0 - a_c @ s_c
    if onset_weight == 0.0:
        return chroma.astype(np.float64)
    d = s_o - a_o[:, None]
    onset = np.sqrt(np.einsum("ij,ij->j", d, d))
    return chroma.astype(np.float64) + onset_weight * onset


def dtw_band(
    cost_row: Callable[[int, int, int], np.ndarray],
    n: int,
    m: int,
    lo: np.ndarray,
    hi: np.ndarray,
    open_start: int = 0,
    open_end: int = 0,
) -> tuple[np.ndarray, float]:
    """DTW over the band ``lo[i] <= j < hi[i]`` (both nondecreasing, ``lo[0] = 0``, ``hi[-1] = m``).

    The path may start at any ``(0, j <= open_start)`` and end at any ``(n - 1, j >= m - 1 - open_end)``
    (the score's silent margins need not be matched by a recording that starts or ends mid-note)."""
    offsets = np.concatenate([[0], np.cumsum(hi - lo)]).astype(np.int64)
    steps = np.empty(int(offsets[-1]), np.int8)
    prev = np.empty(0)
    prev_lo = prev_hi = 0
    for i in range(n):
        a, b = int(lo[i]), int(hi[i])
        c = cost_row(i, a, b)
        if i == 0:
            row = np.cumsum(c)
            step = np.full(b - a, _LEFT, np.int8)
            free = min(open_start + 1, b)
            row[:free] = c[:free]
            step[:free] = _DIAG
        else:
            up = np.full(b - a, np.inf)
            diag = np.full(b - a, np.inf)
            # vertical: D[i-1, j] for j in [max(a, prev_lo), min(b, prev_hi))
            s, e = max(a, prev_lo), min(b, prev_hi)
            if e > s:
                up[s - a : e - a] = prev[s - prev_lo : e - prev_lo]
            # diagonal: D[i-1, j-1] for j-1 in [prev_lo, prev_hi)
            s, e = max(a, prev_lo + 1), min(b, prev_hi + 1)
            if e > s:
                diag[s - a : e - a] = prev[s - 1 - prev_lo : e - 1 - prev_lo]
            use_up = up < diag
            reached = np.where(use_up, up, diag) + c
            cum = np.cumsum(c)
            row = cum + np.minimum.accumulate(reached - cum)
            left = row < reached - 1e-9 * (1.0 + np.abs(row))
            row = np.where(left, row, reached)
            step = np.where(left, _LEFT, np.where(use_up, _UP, _DIAG)).astype(np.int8)
        steps[offsets[i] : offsets[i + 1]] = step
        prev, prev_lo, prev_hi = row, a, b
    first = max(m - 1 - open_end, prev_lo)
    j = first + int(np.argmin(prev[first - prev_lo :]))
    total = float(prev[j - prev_lo])
    # backtrack
    path = []
    i = n - 1
    while True:
        path.append((i, j))
        if i == 0 and (j == 0 or steps[offsets[0] + j] == _DIAG):
            break
        code = steps[offsets[i] + j - lo[i]]
        if i == 0 or code == _LEFT:
            j -= 1
        elif code == _UP:
            i -= 1
        else:
            i -= 1
            j -= 1
    return np.asarray(path[::-1], np.int64), total


def _band_from_path(path: np.ndarray, factor: int, n: int, m: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """The finer level's band: every coarse cell of ``path`` expanded by ``factor``, widened by ``radius``."""
    lo = np.full(n, m, np.int64)
    hi = np.zeros(n, np.int64)
    for i_c, j_c in path:
        r0, r1 = i_c * factor, min((i_c + 1) * factor, n)
        if r0 >= n:
            continue
        lo[r0:r1] = np.minimum(lo[r0:r1], j_c * factor)
        hi[r0:r1] = np.maximum(hi[r0:r1], min((j_c + 1) * factor, m))
    size = 2 * radius + 1
    lo = minimum_filter1d(lo, size, mode="nearest") - radius
    hi = maximum_filter1d(hi, size, mode="nearest") + radius
    lo = np.minimum.accumulate(np.clip(lo, 0, m - 1)[::-1])[::-1]
    hi = np.maximum.accumulate(np.clip(hi, 1, m))
    lo[0], hi[-1] = 0, m
    return lo, np.maximum(hi, lo + 1)


def default_factors(n: int, m: int) -> tuple[int, ...]:
    """Downsampling per level, coarsest first: factors of 5 until the coarse level is small."""
    factors = [1]
    while max(n, m) / factors[-1] > COARSE_MAX_FRAMES:
        factors.append(factors[-1] * 5)
    return tuple(factors[::-1])


def mrdtw(
    audio: Features,
    score: Features,
    factors: tuple[int, ...] | None = None,
    radius: int = RADIUS,
    open_start: int = 0,
    open_end: int = 0,
    onset_weight: float = ONSET_WEIGHT,
) -> DtwResult:
    """Multiresolution DTW of ``audio`` against ``score`` (see the module docstring)."""
    n, m = audio.n_frames, score.n_frames
    factors = default_factors(n, m) if factors is None else tuple(factors)
    path = np.empty((0, 2), np.int64)
    total = 0.0
    coarse_mean = 0.0
    prev_factor = 0
    for level, f in enumerate(factors):
        a, s = audio.downsample(f), score.downsample(f)
        nl, ml = a.n_frames, s.n_frames
        if level == 0:
            lo, hi = np.zeros(nl, np.int64), np.full(nl, ml, np.int64)
        else:
            lo, hi = _band_from_path(path, prev_factor // f, nl, ml, radius)
        cost = functools.partial(local_cost, a, s, onset_weight=onset_weight)
        path, total = dtw_band(cost, nl, ml, lo, hi, open_start // f, open_end // f)
        if level == 0:
            coarse_mean = total / len(path)
        prev_factor = f
    return DtwResult(path, total, total / len(path), coarse_mean, factors)
