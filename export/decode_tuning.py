"""Tune note decoding on validation outputs with the bridge's own decoder (``bridge.notes``).

- ``tune_decode(raw, stems) -> (decode, scores)``: what ``train --finalize`` writes into the
  model card: ``tune_frames`` then ``tune_onsets``; scores ``{stem: {onset_f1, frame_f1}}``.
- ``tune_frames(raw, stems) -> ({stem: frame_threshold}, {stem: frame F1})``: the frame
  threshold maximising frame-level F1 of ``frame_p >= threshold`` against the true roll.
- ``tune_onsets(raw, stems, decode, ...) -> (decode, scores)``: per stem, the onset threshold
  and (pitched stems) the frame-onset threshold that maximise onset F1 (mir_eval, 50 ms) of
  ``NoteDecoder`` on the validation crops, frame threshold and minimum length as given.
  ``raw`` is what ``export.train.validate(..., return_raw=True)`` collects: a list of
  ``(frame_p, onset_p, frame_ref, onset_ref)``, each (batch, n_frames, n_stems, n_keys).
  A frame-onset threshold of 0 means frame onsets stay off for that stem.

- ``decoder_metadata(stems, decode)`` and ``bridge_notes(meta, frame_p, onset_p)``: the notes the
  bridge would write for validation crops; ``export.train.validate`` scores onset F1 with them.

The reference notes come from the true piano rolls (``export.note_scores.roll_to_notes``), as in
``validate``, so the tuned scores match the card's ``validation.onset_f1`` for the same decode.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bridge.metadata import ModelMetadata, validate_metadata
from bridge.notes import NoteDecoder, events_to_notes
from export.metadata import build_metadata, default_decode
from export.note_scores import onset_f1, roll_to_notes

THRESHOLD_GRID = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
FRAME_ONSET_GRID = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)  # 0: off


def decoder_metadata(stems: list[str], decode: dict[str, Any]) -> ModelMetadata:
    """Metadata of the fixed front end with ``decode`` (missing keys from ``default_decode``)."""
    return validate_metadata(build_metadata("validation", stems, 0, decode={**default_decode(stems), **decode}))


def bridge_notes(meta: ModelMetadata, frame_p: np.ndarray, onset_p: np.ndarray) -> list[list[list[tuple]]]:
    """What the bridge would write: per crop, per stem [(onset_s, offset_s, midi)] from (B, T, S, K) probs."""
    out = []
    for b in range(frame_p.shape[0]):
        dec = NoteDecoder(meta)
        events = dec.decode(0, frame_p[b], onset_p[b]) + dec.flush(frame_p.shape[1])
        notes = events_to_notes(events, meta.sample_rate, len(meta.stems))
        out.append([[(float(a), float(z), int(m)) for a, z, m, _v in n] for n in notes])
    return out


def tune_onsets(
    raw: list,
    stems: list[str],
    decode: dict[str, Any],
    onset_grid: tuple[float, ...] = THRESHOLD_GRID,
    frame_onset_grid: tuple[float, ...] = FRAME_ONSET_GRID,
) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """Best (onset, frame-onset) threshold per stem; returns (new decode dict, {stem: {onset_f1, ...}})."""

    refs = []  # per raw chunk, per crop, per stem: [(onset_s, offset_s, midi)]
    for _fp, _op, fref, oref in raw:
        refs.append(
            [[roll_to_notes(fref[b, :, s], oref[b, :, s]) for s in range(len(stems))] for b in range(fref.shape[0])]
        )
    best: dict[str, tuple[float, float, float]] = {s: (-1.0, 0.5, 0.0) for s in stems}
    for on_th in onset_grid:
        for fo_th in frame_onset_grid:
            meta = decoder_metadata(stems, {**decode, "onset_threshold": on_th, "frame_onset_threshold": fo_th})
            counts = np.zeros((len(stems), 3), np.int64)  # n_ref, n_est, n_match
            for (fp, op, _fref, _oref), chunk_refs in zip(raw, refs):
                for crop_notes, crop_refs in zip(bridge_notes(meta, fp, op), chunk_refs):
                    for s, name in enumerate(stems):
                        _, nr, ne, nm = onset_f1(crop_refs[s], crop_notes[s], name == "drums")
                        counts[s] += (nr, ne, nm)
            for s, name in enumerate(stems):
                if name == "drums" and fo_th > 0:
                    continue  # drums ignore frame onsets: the same result as fo_th = 0
                nr, ne, nm = counts[s]
                f1 = 2 * nm / (nr + ne) if nr + ne else 0.0
                if f1 > best[name][0]:
                    best[name] = (float(f1), on_th, fo_th)
    new = dict(decode)
    new["onset_threshold"] = {s: best[s][1] for s in stems}
    new["frame_onset_threshold"] = {s: best[s][2] for s in stems}
    scores = {s: {"onset_f1": round(best[s][0], 3)} for s in stems}
    return new, scores


def tune_frames(raw: list, stems: list[str], grid: tuple[float, ...] = THRESHOLD_GRID) -> tuple[dict, dict]:
    """Per stem, the frame threshold with the best frame-level F1, and that F1 (3 decimals)."""
    thresholds, scores = {}, {}
    for s, name in enumerate(stems):
        best = (-1.0, 0.4)
        for th in grid:
            tp = fp_ = fn = 0
            for fp, _op, fref, _oref in raw:
                est = fp[:, :, s] >= th
                ref = fref[:, :, s] > 0.5
                tp += int((est & ref).sum())
                fp_ += int((est & ~ref).sum())
                fn += int((~est & ref).sum())
            f1 = 2 * tp / (2 * tp + fp_ + fn) if tp else 0.0
            if f1 > best[0]:
                best = (f1, th)
        thresholds[name], scores[name] = best[1], round(best[0], 3)
    return thresholds, scores


def tune_decode(raw: list, stems: list[str]) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """Frame thresholds, then onset and frame-onset thresholds; ``{stem: {onset_f1, frame_f1}}``."""
    frame_threshold, frame_f1 = tune_frames(raw, stems)
    decode, onset_scores = tune_onsets(raw, stems, {**default_decode(stems), "frame_threshold": frame_threshold})
    return decode, {s: {"onset_f1": onset_scores[s]["onset_f1"], "frame_f1": frame_f1[s]} for s in stems}
