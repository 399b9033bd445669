"""Decode tuning with the bridge's own decoder: frame onsets are switched on where they help."""

from __future__ import annotations

import numpy as np

from bridge.metadata import validate_metadata
from export.decode_tuning import tune_onsets
from export.metadata import build_metadata, default_decode

STEMS = ["drums", "bass", "piano"]


def _rolls(n_frames: int = 200, n_keys: int = 88) -> tuple[np.ndarray, np.ndarray]:
    """(frame, onset) reference rolls (1, T, S, K): a few notes per pitched stem, drum hits."""
    frame = np.zeros((1, n_frames, len(STEMS), n_keys), np.float32)
    onset = np.zeros_like(frame)
    for s in (1, 2):
        for i, a in enumerate(range(10, n_frames - 30, 25)):
            key = 20 + 7 * s + i % 5
            frame[0, a : a + 15, s, key] = 1.0
            onset[0, a, s, key] = 1.0
    for a in range(5, n_frames - 10, 20):
        onset[0, a, 0, 36 - 21] = 1.0
        frame[0, a : a + 2, 0, 36 - 21] = 1.0
    return frame, onset


def test_weak_onset_head_gets_frame_onsets_strong_one_need_not() -> None:
    fref, oref = _rolls()
    frame_p = np.where(fref > 0, 0.9, 0.05).astype(np.float32)
    onset_p = oref * np.array([0.9, 0.0, 0.9], np.float32)[None, None, :, None]  # bass onset head silent
    raw = [(frame_p, onset_p, fref, oref)]
    decode, scores = tune_onsets(raw, STEMS, default_decode(STEMS), onset_grid=(0.3, 0.5), frame_onset_grid=(0.0, 0.5))
    assert decode["frame_onset_threshold"]["bass"] == 0.5
    assert decode["frame_onset_threshold"]["drums"] == 0.0
    assert decode["frame_onset_threshold"]["piano"] == 0.0  # no gain: the first grid value stays
    assert scores["bass"]["onset_f1"] == 1.0 and scores["piano"]["onset_f1"] == 1.0
    assert scores["drums"]["onset_f1"] == 1.0
    meta = validate_metadata(build_metadata("band", STEMS, 0, decode=decode))
    assert meta.frame_onset_threshold["bass"] == 0.5

    # without frame onsets the bass stem would have had no notes at all
    _, off = tune_onsets(raw, STEMS, default_decode(STEMS), onset_grid=(0.3, 0.5), frame_onset_grid=(0.0,))
    assert off["bass"]["onset_f1"] == 0.0
