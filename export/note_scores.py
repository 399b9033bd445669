"""Note decoding and onset scoring of the training side (validation and decode tuning).

Public API
----------
- ``decode_notes(frame_p, onset_p, on_th, fr_th, min_frames=2)``: (T, K) probabilities ->
  ``[(onset_s, offset_s, midi), ...]``, greedy onset-then-sustain.
- ``frame_centre(k)``: the time (s) of frame ``k``'s centre on the training STFT grid.
- ``onset_f1(ref_notes, est_notes, drums) -> (f1, n_ref, n_est, n_match)``: mir_eval onset
  matching, 50 ms.
- ``roll_to_notes(frame_roll, onset_roll)``: the notes of true piano rolls (thresholds 0.5).
"""

from __future__ import annotations

import numpy as np

from bridge.instruments import KEY_LOW
from export.metadata import FRONT_END

SAMPLE_RATE, N_FFT, HOP = FRONT_END["sample_rate"], FRONT_END["n_fft"], FRONT_END["hop"]


def decode_notes(frame_p: np.ndarray, onset_p: np.ndarray, on_th: float, fr_th: float, min_frames: int = 2):
    """Greedy onset-then-sustain decoding. (T, K) probs -> list of (onset_s, offset_s, midi)."""
    t_n, k_n = frame_p.shape
    notes = []
    times = frame_centre(np.arange(t_n + 1))
    for k in range(k_n):
        on = onset_p[:, k] >= on_th
        t = 0
        while t < t_n:
            if on[t] and (t == 0 or not on[t - 1]):
                e = t + 1
                while e < t_n and frame_p[e, k] >= fr_th and not (on[e] and not on[e - 1]):
                    e += 1
                e = max(e, t + min_frames)
                notes.append((times[t], times[min(e, t_n)], KEY_LOW + k))
                t = e
            else:
                t += 1
    return notes


def frame_centre(k: np.ndarray) -> np.ndarray:
    return ((k + 1) * HOP - N_FFT / 2) / SAMPLE_RATE


def onset_f1(ref_notes: list, est_notes: list, drums: bool) -> tuple[float, int, int, int]:
    """(f1, n_ref, n_est, n_match) with mir_eval onset matching (50 ms)."""
    import mir_eval

    if not ref_notes or not est_notes:
        return (1.0 if not ref_notes and not est_notes else 0.0), len(ref_notes), len(est_notes), 0
    ri = np.array([[a, max(b, a + 0.01)] for a, b, _ in ref_notes])
    rp = np.array([440.0 * 2 ** ((p - 69) / 12) for *_, p in ref_notes])
    ei = np.array([[a, max(b, a + 0.01)] for a, b, _ in est_notes])
    ep = np.array([440.0 * 2 ** ((p - 69) / 12) for *_, p in est_notes])
    m = mir_eval.transcription.match_notes(ri, rp, ei, ep, offset_ratio=None, onset_tolerance=0.05)
    n = len(m)
    p = n / len(est_notes)
    r = n / len(ref_notes)
    return (2 * p * r / (p + r) if n else 0.0), len(ref_notes), len(est_notes), n


def roll_to_notes(frame_roll: np.ndarray, onset_roll: np.ndarray) -> list:
    return decode_notes(frame_roll.astype(np.float32), onset_roll.astype(np.float32), 0.5, 0.5, min_frames=1)
