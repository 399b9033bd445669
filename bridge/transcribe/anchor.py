"""Analysis frames anchored to the music, not to the file's first sample.

basic-pitch (2-s windows every 36164 samples at 22.05 kHz, a frame every 256 within each) and the note
classifier (a frame every 512 samples at 44.1 kHz) both cut a file into windows and frames counted from its
first sample, so the same music starting a fraction of a frame later gives other notes and other classes, and
the blind stems move by up to 1-2 dB (BENCHMARKS.md, stops 39-46; the separation that follows moves by under
0.2 dB once its notes and classes are the same). ``strongest_onset`` finds the file's strongest onset, at sample
resolution, and ``pad_to`` the number of zero samples to put in front so that it lands at a fixed place in a
period: each analysis runs on its own padded copy (basic-pitch's period its window hop, the classifier's its
frame), so it sees the music on the same windows and frames wherever the file starts (a delay of d samples moves
the onset by d, and the pad makes up the rest to a whole number of periods), and the note times it gives are
moved back by its pad. At 44.1 kHz (and 22.05 or 88.2 kHz) the periods are whole numbers of samples and a delayed
file gives the same notes and classes, delayed (but for a frame or two at the file's very end); at 48 or 96 kHz
they are not, and the music lands on the grid to within half a sample, then goes through the models' resampling.

The onset is where the energy of the next ``WINDOW_S`` seconds most exceeds that of the last ``WINDOW_S``
(a difference of running sums: exact per sample, so a delay moves it by exactly that many samples).

Public API
----------
- ``WINDOW_S``: the energy windows' length.
- ``strongest_onset(audio, sample_rate) -> int | None``: the sample index, None for a file too short or silent.
- ``pad_to(onset, period, place) -> int``: zero samples (0 .. ``round(period)``) that put sample ``onset`` at
  ``place`` modulo ``period`` (both in samples, not necessarily whole: then to within half a sample); 0 for no
  onset.
"""

from __future__ import annotations

import numpy as np

WINDOW_S = 0.023


def strongest_onset(audio: np.ndarray, sample_rate: int) -> int | None:
    """Mono ``audio`` (n,) -> the sample where the energy rise between the ``WINDOW_S`` before and after it is
    largest (the earliest, on a tie); None if the file is shorter than two windows or has no rise."""
    x = np.nan_to_num(np.asarray(audio, np.float64).reshape(-1), nan=0.0, posinf=0.0, neginf=0.0)
    w = max(1, int(round(WINDOW_S * sample_rate)))
    if len(x) < 2 * w + 1:
        return None
    s = np.concatenate([[0.0], np.cumsum(x * x)])
    rise = s[2 * w :] - 2.0 * s[w:-w] + s[: -2 * w]  # rise[j]: at sample w + j (the next w minus the last w)
    k = int(np.argmax(rise))
    return w + k if rise[k] > 0.0 else None


def pad_to(onset: int | None, period: float, place: float) -> int:
    """Zero samples to put in front so that sample ``onset`` moves to ``place`` modulo ``period``."""
    if onset is None:
        return 0
    return int(round((place - onset) % period))  # may be round(period): a whole period more, harmless


__all__ = ["WINDOW_S", "pad_to", "strongest_onset"]
