"""Note lists -> frame-aligned piano rolls (the ONE roll function for score input and targets).

Frame ``k`` of the model covers samples ``[(k + 1) * hop - n_fft, (k + 1) * hop)``; its centre
is sample ``(k + 1) * hop - n_fft / 2``. A key is active at frame ``k`` when a note with
velocity > ``velocity_threshold`` sounds at the frame-centre time (onset <= t < offset). A
note's onset frame is the frame whose centre is nearest the note start; the onset frame is
also marked active in the frame roll, so very short notes (drum hits) are never lost.

Public API
----------
- ``frame_centre_s(k, sample_rate, n_fft, hop)``: time stamp of frame ``k`` in seconds.
- ``notes_to_roll(notes, n_frames, ...) -> (frame, onset)``: bool arrays (n_frames, n_keys).

The runtime (``bridge/score.py``) should use exactly this rule; unify the two later.
"""

from __future__ import annotations

import numpy as np


def frame_centre_s(k: np.ndarray | int, sample_rate: int = 44100, n_fft: int = 2048, hop: int = 512):
    """Centre time (s) of frame ``k``: ``((k + 1) * hop - n_fft / 2) / sample_rate``."""
    return ((np.asarray(k) + 1) * hop - n_fft / 2) / sample_rate


def notes_to_roll(
    notes: np.ndarray,
    n_frames: int,
    *,
    start_frame: int = 0,
    key_low: int = 21,
    n_keys: int = 88,
    sample_rate: int = 44100,
    n_fft: int = 2048,
    hop: int = 512,
    velocity_threshold: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Render notes (n_notes, 4) ``[onset_s, offset_s, midi_pitch, velocity]`` to rolls.

    Returns ``(frame, onset)``, both bool (n_frames, n_keys), for frames
    ``start_frame .. start_frame + n_frames - 1``. Pitches outside the key range are ignored.
    """
    frame = np.zeros((n_frames, n_keys), dtype=bool)
    onset = np.zeros((n_frames, n_keys), dtype=bool)
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    if notes.size == 0:
        return frame, onset
    key = np.round(notes[:, 2]).astype(np.int64) - key_low
    keep = (notes[:, 3] > velocity_threshold) & (key >= 0) & (key < n_keys) & (notes[:, 1] > notes[:, 0])
    notes, key = notes[keep], key[keep]
    # frame k has centre sample c_k = (k + 1) * hop - n_fft / 2; active iff on <= c_k < off
    off0 = n_fft / 2 / hop - 1.0  # k = t * sr / hop + off0
    pos_on = notes[:, 0] * sample_rate / hop + off0
    pos_off = notes[:, 1] * sample_rate / hop + off0
    k_on = np.ceil(pos_on - 1e-9).astype(np.int64) - start_frame
    k_off = np.ceil(pos_off - 1e-9).astype(np.int64) - start_frame  # exclusive
    k_onset = np.floor(pos_on + 0.5).astype(np.int64) - start_frame
    for a, b, o, j in zip(k_on, k_off, k_onset, key):
        a2, b2 = max(a, 0), min(b, n_frames)
        if b2 > a2:
            frame[a2:b2, j] = True
        if 0 <= o < n_frames:
            onset[o, j] = True
            frame[o, j] = True
    return frame, onset
