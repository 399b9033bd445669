"""A song's notes judged together: the note classifier's class evidence refined by the other notes of the file.

The note classifier (``note_classes``) judges each transcribed note from its own patch of the mix. One
instrument plays a part through a song, so notes that sound alike (partials, attack, envelope) and sit in
the same register tend to share a class: a small attention network over all the notes of one file reads,
per note, the classifier's ``sounding`` and ``onset`` logits, the pitch, duration and velocity, and a timbre
summary (``timbre_features``: the levels of the first 16 partials at the attack and in the sustain, relative
to the fundamental, and the fundamental's envelope), and gives each note class probabilities (softmax over
the classes; trained with ``export/note_song.py`` on corpus songs whose timbres the held-out sets do not use;
the shipped file may hold several such networks trained with other seeds, its probabilities their mean, metadata
``members``).

The refined ``sounding`` keeps each note's scale (its highest probability: whether it is a note at all stays
mostly the classifier's call) and redistributes the classes by ``blend`` x the song model's relative
probabilities + (1 - blend) x the classifier's (``blend`` 0.5 in the shipped model's metadata; where the two
disagree on the best class, the note's highest
refined probability falls, to no less than ``1 - blend`` of the classifier's):
``refined[:, k] = max(sounding) * ((1 - blend) * sounding[:, k] / max(sounding) + blend * q[:, k] / max(q))``.
Membership (``Transcriber.membership``: a note joins every class within ``member_share`` of its best) then
follows the blended ranking.

Public API
----------
- ``META_KEY``, ``SONG_CONTEXT_FILE`` (the shipped model), ``N_TIMBRE``, ``N_FEATURES``.
- ``timbre_features(patches) -> (n, N_TIMBRE)``: from ``note_patches``' patches (n, 180, 40).
- ``song_features(notes, sounding, onset, timbre) -> (n, N_FEATURES)`` float32: the network's input.
- ``refined_sounding(sounding, q, blend) -> (n, n_classes)``: see above.
- ``SongContext(path=SONG_CONTEXT_FILE, n_threads=1)``: the ONNX model with validated metadata (``classes``,
  ``n_features``, ``blend``); ``probabilities(features) -> (n, 5)``; ``refine(patches, notes, sounding, onset,
  max_notes=MAX_NOTES) -> sounding`` (n, n_classes), the input unchanged for fewer than two notes, a longer file
  judged in sections of at most ``max_notes``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bridge.errors import ModelError
from bridge.transcribe.note_classes import KNOWN_CLASSES, PATCH

SONG_CONTEXT_FILE = Path(__file__).resolve().parent.parent.parent / "models_onnx" / "note-song.onnx"
META_KEY = "stembridge_note_song"
N_PARTIALS = 16
N_ENVELOPE = 8
N_TIMBRE = 2 * N_PARTIALS + 2 + N_ENVELOPE  # 42
N_FEATURES = 2 * len(KNOWN_CLASSES) + 3 + N_TIMBRE  # 55
# partial k's row in a patch (the fundamental N semitones_below up, 3 bins a semitone)
_PARTIAL_ROWS = np.round(
    PATCH["bins_per_semitone"] * (PATCH["semitones_below"] + 12.0 * np.log2(np.arange(1, N_PARTIALS + 1)))
).astype(int)
_ATTACK = slice(PATCH["frames_before"] + 1, PATCH["frames_before"] + 8)  # 7 frames (81 ms) after the onset
_SUSTAIN = slice(PATCH["frames_before"] + 8, PATCH["frames_before"] + 24)  # the next 16 (186 ms)
_ENVELOPE = slice(PATCH["frames_before"] - 4, PATCH["frames"], 4)  # 8 points from 46 ms before the onset
_LOGIT_CLIP = 1e-5
MAX_NOTES = 1024  # notes judged together at most (about 17 MB of attention weights; training files hold 100-900)


def timbre_features(patches: np.ndarray) -> np.ndarray:
    """``note_patches``' patches (n, 180, 40), in units of 20 dB -> (n, ``N_TIMBRE``) float32: the first 16
    partials' levels at the attack and in the sustain relative to the fundamental (each the highest of three
    rows around the partial, averaged over the frames), the fundamental's own two levels, and its envelope
    at 8 points (every 4th frame from 4 before the onset) relative to its level at the onset frame; all x 0.25
    (about unit spread). Partial 16 lies at the patch's top edge: its last row stands in."""
    p = np.asarray(patches, np.float32)
    if not len(p):
        return np.zeros((0, N_TIMBRE), np.float32)
    rows = np.stack([p[:, max(r - 1, 0) : r + 2, :].max(axis=1) for r in _PARTIAL_ROWS], axis=1)  # (n, 16, 40)
    attack, sustain = rows[:, :, _ATTACK].mean(axis=2), rows[:, :, _SUSTAIN].mean(axis=2)
    env = rows[:, 0, _ENVELOPE]
    out = np.concatenate(
        [attack - attack[:, :1], sustain - sustain[:, :1], attack[:, :1], sustain[:, :1], env - env[:, 1:2]], axis=1
    )
    return (0.25 * out).astype(np.float32)


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, np.float64), _LOGIT_CLIP, 1.0 - _LOGIT_CLIP)
    return np.log(q / (1.0 - q))


def song_features(notes: np.ndarray, sounding: np.ndarray, onset: np.ndarray, timbre: np.ndarray) -> np.ndarray:
    """One file's notes (n, 4) ``[onset_s, offset_s, pitch, velocity]``, the classifier's ``sounding`` and
    ``onset`` probabilities (n, 5) and ``timbre_features`` (n, N_TIMBRE) -> (n, N_FEATURES) float32: the two
    logit sets, ``(pitch - 60) / 24``, ``log2(duration_s) / 3``, ``velocity / 127 - 0.5``, the timbre."""
    n = np.asarray(notes, np.float64).reshape(-1, 4)
    dur = np.log2(np.maximum(n[:, 1] - n[:, 0], 0.01))
    cols = [_logit(sounding), _logit(onset), (n[:, 2:3] - 60.0) / 24.0, dur[:, None] / 3.0, n[:, 3:4] / 127.0 - 0.5]
    out = np.concatenate(cols + [np.asarray(timbre, np.float64)], axis=1)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)  # one bad note cannot spread


def refined_sounding(sounding: np.ndarray, q: np.ndarray, blend: float) -> np.ndarray:
    """See the module docstring: ``sounding`` (n, k) probabilities, ``q`` (n, k) the song model's."""
    s = np.asarray(sounding, np.float64)
    top = s.max(axis=1, keepdims=True)
    own = s / np.maximum(top, 1e-12)
    theirs = np.asarray(q, np.float64) / np.maximum(np.asarray(q, np.float64).max(axis=1, keepdims=True), 1e-12)
    return (top * ((1.0 - blend) * own + blend * theirs)).astype(np.float32)


def validate_song_meta(raw: Any, path: Path) -> dict:
    """The song model's metadata; ``ModelError`` for anything that does not fit this bridge."""
    if not isinstance(raw, dict) or raw.get("kind") != "note_song":
        got = raw.get("kind") if isinstance(raw, dict) else raw
        raise ModelError(f"{path}: not a song-context model (metadata kind {got!r})")
    if raw.get("classes") != list(KNOWN_CLASSES):
        raise ModelError(f"{path}: classes must be {list(KNOWN_CLASSES)}, got {raw.get('classes')!r}")
    if raw.get("n_features") != N_FEATURES:
        raise ModelError(
            f"{path}: built for {raw.get('n_features')!r} features per note, this bridge makes {N_FEATURES}"
        )
    blend = raw.get("blend")
    if not isinstance(blend, (int, float)) or not 0.0 <= blend <= 1.0:
        raise ModelError(f"{path}: blend must be a number in [0, 1], got {blend!r}")
    return raw


class SongContext:
    """See the module docstring."""

    def __init__(self, path: str | Path = SONG_CONTEXT_FILE, n_threads: int = 1) -> None:
        from bridge.model import json_metadata, load_session

        path = Path(path)
        self._sess = load_session(path, "song-context model", n_threads)
        raw = json_metadata(self._sess, META_KEY, path)
        self.meta = validate_song_meta(raw, path)
        self.blend = float(raw["blend"])
        ins = {i.name: i.shape for i in self._sess.get_inputs()}
        outs = {o.name: o.shape for o in self._sess.get_outputs()}
        if set(ins) != {"features"} or "probs" not in outs or ins["features"][-1] != N_FEATURES:
            raise ModelError(f"{path}: expected input features (n, {N_FEATURES}) -> probs (got {ins} -> {outs})")

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(n, N_FEATURES) one file's notes -> (n, 5) class probabilities."""
        return np.asarray(self._sess.run(["probs"], {"features": np.asarray(features, np.float32)})[0], np.float32)

    def refine(
        self,
        patches: np.ndarray,
        notes: np.ndarray,
        sounding: np.ndarray,
        onset: np.ndarray,
        max_notes: int = MAX_NOTES,
    ) -> np.ndarray:
        """``sounding`` (n, 5) of one file's ``notes`` (n, 4) refined by the song (``patches`` (n, 180, 40): the
        notes' ``note_classes.note_patches``); fewer than two notes: unchanged. A file of more than
        ``max_notes`` notes is judged in consecutive sections of about equal counts (in onset order), each
        note among those of its section: the attention's memory grows with the square of the count."""
        notes = np.asarray(notes, np.float64).reshape(-1, 4)
        if len(notes) < 2:
            return np.asarray(sounding, np.float32)
        features = song_features(notes, sounding, onset, timbre_features(patches))
        order = np.argsort(notes[:, 0], kind="stable")
        q = np.empty((len(notes), len(KNOWN_CLASSES)), np.float32)
        for section in np.array_split(order, -(-len(notes) // max_notes)):
            q[section] = self.probabilities(features[section])
        return refined_sounding(sounding, q, self.blend)


__all__ = [
    "META_KEY",
    "N_FEATURES",
    "N_TIMBRE",
    "SONG_CONTEXT_FILE",
    "SongContext",
    "refined_sounding",
    "song_features",
    "timbre_features",
    "validate_song_meta",
]
