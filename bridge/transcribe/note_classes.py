"""Which instrument class played a transcribed note, and is it a note at all: a small network over
a pitch-aligned patch of the mix.

For every note of an instrument-blind transcription, the patch is the mix's log-frequency map
(``bridge.logfreq``, 3 bins per semitone) from 12 semitones below the note's pitch to 48 above
(its first ~16 partials) and from 12 frames before its onset to 28 after (0.46 s), in dB relative
to the patch's 99th percentile (so the level of the note does not matter), plus two scalars: the
pitch and the note's log2 duration. Centred on the pitch, the patch shows the note's partial
pattern and envelope the same way at every pitch (trained with ``export/note_classes.py`` on the
transcription's own notes). Per class, two probabilities: ``sounding`` (a note of that class and
pitch sounds there: the note belongs in that class's part) and ``onset`` (one starts there: the
note is written as that class's note when it reaches the class's threshold from the metadata),
and ``shift_s``: how far the true onset lies from the transcribed one (basic-pitch finds slow
attacks late), within +-0.15 s. A note with every ``sounding`` low is one the transcription made
up (an octave ghost, a partial).

Public API
----------
- ``PATCH``: the patch geometry every classifier must declare in its metadata.
- ``log_map_db(audio, sample_rate) -> (n_frames, n_log)``: the mix's log-frequency map in dB
  (mono audio at any rate; resampled to 44.1 kHz).
- ``note_patches(log_map, notes) -> (patches (n, 180, 40) float32, scalars (n, 2) float32)``.
- ``NoteClassifier(path, n_threads=1)``: an ONNX classifier with validated metadata (``classes``,
  ``sounding_threshold``, ``onset_thresholds`` (n_classes,), ``decoding``: how basic-pitch's notes
  were decoded for its training, ``DEFAULT_DECODING`` where the metadata has none; ``context``,
  optional: ``{"kind": "file_mean_embedding", "dim": d}`` for a classifier that also takes the mean
  embedding of the file's notes, input ``context`` (n, d), output ``embedding`` (n, d);
  ``part_pooling``, optional: ``{"dim": d, "temperature": t, "weight": w}`` (w one number or one
  per class) for a classifier with
  output ``part_embedding`` (n, d), whose logits are pooled per file with ``pool_classes``);
  ``predict(audio, sample_rate, notes, batch=256, patches=None) -> (sounding, onset, shift_s)``: probabilities,
  each (n, n_classes), and onset shifts (n,) s (``patches``: ``note_patches``' result for these notes, where the
  caller has it).
- ``pool_by_part(logits, part_embedding, temperature, weight) -> logits``: a file's note logits
  pooled over the notes of the same part (a classifier with a part head); ``pool_classes(sounding,
  onset, part_embedding, temperature, weight)``: the sounding logits so pooled, the onset logits
  moved with them.
- ``merge_repeated_onsets(notes, tolerance_s=0.05) -> notes``: one note where pieces of a pitch start
  together (after the onset shift).
- ``NOTE_CLASSES_FILE``: the shipped classifier.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bridge.errors import ModelError
from bridge.logfreq import log_filterbank

NOTE_CLASSES_FILE = Path(__file__).resolve().parent.parent.parent / "models_onnx" / "note-classes.onnx"
META_KEY = "stembridge_note_classes"
KNOWN_CLASSES = ("bass", "piano", "guitar", "strings", "other")
VERSION = "2.5.0"
# basic-pitch's decoding of the notes a classifier was trained on (``basic_pitch.decode_notes``): a
# classifier declares it in its metadata (``decoding``; absent: basic-pitch's defaults, as 2.0.0 was
# trained) and the transcriber decodes the same way
DEFAULT_DECODING: dict[str, float] = {"onset_threshold": 0.5, "frame_threshold": 0.3, "min_note_frames": 11}
_DECODING_RANGES = {"onset_threshold": (0.0, 1.0), "frame_threshold": (0.0, 1.0), "min_note_frames": (0, 86)}
PATCH: dict[str, Any] = {
    "sample_rate": 44100,
    "n_fft": 2048,
    "hop": 512,
    "bins_per_semitone": 3,
    "midi_low": 18,
    "midi_high": 134,
    "semitones_below": 12,
    "semitones_above": 48,
    "frames_before": 12,
    "frames": 40,
    "floor_db": -80.0,
}
_N_PATCH_BINS = PATCH["bins_per_semitone"] * (PATCH["semitones_below"] + PATCH["semitones_above"])
MAX_SHIFT_S = 0.15  # the shift head's range (export/note_classes.py ONSET_WINDOW_S)
_MIN_DB = -100.0  # outside the map (below MIDI 18, past the file's ends)


def log_map_db(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono ``audio`` (n,) -> (n_frames, n_log) dB; frame t covers samples [t*hop, t*hop + n_fft) at 44.1 kHz."""
    sr, n_fft, hop = PATCH["sample_rate"], PATCH["n_fft"], PATCH["hop"]
    x = np.nan_to_num(np.asarray(audio, np.float32).reshape(-1), nan=0.0, posinf=0.0, neginf=0.0)
    if sample_rate != sr and len(x):
        import soxr

        x = soxr.resample(x, sample_rate, sr, quality="HQ").astype(np.float32)
    fb = log_filterbank(sr, n_fft, n_fft // 2 + 1, PATCH["bins_per_semitone"], PATCH["midi_low"], PATCH["midi_high"])
    n_frames = 1 + max(0, len(x) - n_fft) // hop
    win = np.hanning(n_fft + 1)[:-1].astype(np.float32)
    xp = np.pad(x, (0, n_fft))
    out = np.empty((n_frames, fb.shape[1]), np.float32)
    for t0 in range(0, n_frames, 512):  # bounded memory on long files
        idx = np.arange(n_fft)[None] + hop * np.arange(t0, min(t0 + 512, n_frames))[:, None]
        mag = np.abs(np.fft.rfft(xp[idx] * win, axis=1)).astype(np.float32)
        out[t0 : t0 + len(idx)] = 20.0 * np.log10(mag @ fb + 1e-5)
    return out


def note_patches(log_map: np.ndarray, notes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``log_map`` (n_frames, n_log) dB, ``notes`` (n, 4) ``[onset_s, offset_s, pitch, velocity]`` ->
    patches (n, n_patch_bins, frames) in units of 20 dB re the patch's 99th percentile, clipped to
    [floor_db / 20, 0.5], and scalars (n, 2): ``(pitch - 60) / 24``, ``log2(duration_s)``."""
    b, hop, sr = PATCH["bins_per_semitone"], PATCH["hop"], PATCH["sample_rate"]
    n_t, pre = PATCH["frames"], PATCH["frames_before"]
    pad_f, pad_t = b * (PATCH["semitones_below"] + PATCH["semitones_above"]), n_t + pre
    big = np.pad(log_map, ((pad_t, pad_t), (pad_f, pad_f)), constant_values=_MIN_DB)
    notes = np.asarray(notes, np.float64).reshape(-1, 4)
    patches = np.zeros((len(notes), _N_PATCH_BINS, n_t), np.float32)
    scalars = np.zeros((len(notes), 2), np.float32)
    floor = PATCH["floor_db"] / 20.0
    for i, (on, off, pitch, _vel) in enumerate(notes.tolist()):
        f0 = int(np.clip(round(on * sr / hop), -pad_t, log_map.shape[0])) - pre + pad_t
        b0 = b * (int(pitch) - PATCH["semitones_below"] - PATCH["midi_low"]) + pad_f
        b0 = int(np.clip(b0, 0, big.shape[1] - _N_PATCH_BINS))
        pt = big[f0 : f0 + n_t, b0 : b0 + _N_PATCH_BINS].T
        ref = np.percentile(pt, 99)
        patches[i] = np.clip((pt - ref) / 20.0, floor, 0.5)
        scalars[i] = ((pitch - 60.0) / 24.0, np.log2(max(off - on, 0.02)))
    return patches, scalars


def validate_note_classes_meta(raw: Any, path: Path) -> tuple[str, ...]:
    """The classes of a classifier's metadata; ``ModelError`` for anything that does not fit."""
    if not isinstance(raw, dict) or raw.get("kind") != "note_classes":
        raise ModelError(
            f"{path}: not a note classifier (metadata kind {raw.get('kind') if isinstance(raw, dict) else raw!r})"
        )
    classes = raw.get("classes")
    if (
        not isinstance(classes, list)
        or not classes
        or len(set(classes)) != len(classes)
        or not set(classes) <= set(KNOWN_CLASSES)
    ):
        raise ModelError(f"{path}: classes must be distinct names from {list(KNOWN_CLASSES)}, got {classes!r}")
    for key, want in PATCH.items():
        if raw.get(key) != want:
            raise ModelError(
                f"{path}: built for another patch geometry ({key} = {raw.get(key)!r}, this bridge uses {want!r})"
            )
    thresholds = [raw.get("sounding_threshold")] + list(raw.get("onset_thresholds") or [])
    if len(thresholds) != len(classes) + 1 or not all(
        isinstance(t, (int, float)) and 0.0 < t < 1.0 for t in thresholds
    ):
        raise ModelError(
            f"{path}: needs a sounding_threshold and one onset threshold per class, each in (0, 1) "
            f"(got {raw.get('sounding_threshold')!r}, {raw.get('onset_thresholds')!r})"
        )
    decoding = raw.get("decoding", DEFAULT_DECODING)
    if not isinstance(decoding, dict) or set(decoding) != set(_DECODING_RANGES):
        raise ModelError(f"{path}: decoding must name {sorted(_DECODING_RANGES)}, got {decoding!r}")
    for key, (lo, hi) in _DECODING_RANGES.items():
        v = decoding[key]
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not lo <= v <= hi:
            raise ModelError(f"{path}: decoding {key} must be a number in [{lo}, {hi}], got {v!r}")
    pooling = raw.get("part_pooling")
    if pooling is not None and (
        not isinstance(pooling, dict)
        or type(pooling.get("dim")) is not int
        or not 0 < pooling["dim"] <= 4096
        or type(pooling.get("temperature")) not in (int, float)
        or not 1e-4 <= pooling["temperature"] < float("inf")
        or not _pool_weights_ok(pooling.get("weight"), len(classes))
    ):
        raise ModelError(
            f"{path}: part_pooling must be {{'dim': 1..4096, 'temperature': >= 1e-4, "
            f"'weight': 0..1 or one per class}}, got {pooling!r}"
        )
    context = raw.get("context")
    if context is not None and (
        not isinstance(context, dict)
        or context.get("kind") != "file_mean_embedding"
        or not isinstance(context.get("dim"), int)
        or isinstance(context.get("dim"), bool)
        or not 0 < context["dim"] <= 4096
    ):
        raise ModelError(f"{path}: context must be {{'kind': 'file_mean_embedding', 'dim': 1..4096}}, got {context!r}")
    return tuple(classes)


def _pool_weights_ok(weight: Any, n_classes: int) -> bool:
    """A pooling weight in [0, 1], or a list of one per class."""
    ws = weight if isinstance(weight, list) and len(weight) == n_classes else [weight]
    return all(type(w) in (int, float) and 0 <= w <= 1 for w in ws)


def merge_repeated_onsets(notes: np.ndarray, tolerance_s: float = 0.05) -> np.ndarray:
    """Notes (n, 4) ``[onset_s, offset_s, pitch, velocity]`` without the repeats of a pitch that start
    within ``tolerance_s`` of the previous kept onset of that pitch (two pieces of one note, moved onto
    the same true onset); the first of each run is kept, sorted by onset."""
    notes = np.asarray(notes, np.float64).reshape(-1, 4)
    if len(notes) < 2:
        return notes
    order = np.lexsort((notes[:, 0], notes[:, 2]))
    keep = np.zeros(len(notes), bool)
    last_pitch, last_on = None, -np.inf
    for i in order.tolist():
        on, pitch = notes[i, 0], notes[i, 2]
        if pitch != last_pitch or on - last_on > tolerance_s:
            keep[i] = True
            last_pitch, last_on = pitch, on
    out = notes[keep]
    return out[np.argsort(out[:, 0], kind="stable")]


class NoteClassifier:
    """An ONNX note classifier (see the module docstring); ``classes`` from its validated metadata."""

    def __init__(self, path: str | Path = NOTE_CLASSES_FILE, n_threads: int = 1) -> None:
        from bridge.model import json_metadata, load_session

        path = Path(path)
        self._sess = load_session(path, "note classifier", n_threads)
        raw = json_metadata(self._sess, META_KEY, path)
        self.classes = validate_note_classes_meta(raw, path)
        self.meta = raw
        self.sounding_threshold = float(raw["sounding_threshold"])
        self.onset_thresholds = np.asarray(raw["onset_thresholds"], np.float32)
        self.decoding = dict(raw.get("decoding", DEFAULT_DECODING))
        self.context_dim = int(raw["context"]["dim"]) if raw.get("context") else 0
        self.pooling = raw.get("part_pooling")
        ins = {i.name: i.shape for i in self._sess.get_inputs()}
        outs = {o.name: o.shape for o in self._sess.get_outputs()}
        want_in = {"patch", "scalars"} | ({"context"} if self.context_dim else set())
        want_out = {"sounding", "onset", "shift_s"} | ({"embedding"} if self.context_dim else set())
        want_out |= {"part_embedding"} if self.pooling else set()
        if set(ins) != want_in or not want_out <= set(outs):
            raise ModelError(
                f"{path}: expected inputs {', '.join(sorted(want_in))} and outputs {', '.join(sorted(want_out))} "
                f"(got {sorted(ins)} -> {sorted(outs)})"
            )
        for name in ("sounding", "onset"):
            if outs[name][-1] != len(self.classes):
                raise ModelError(f"{path}: {outs[name][-1]} {name} outputs for {len(self.classes)} classes")
        width = (outs["part_embedding"] or ["no width"])[-1] if self.pooling else None
        if self.pooling and width != self.pooling["dim"]:
            raise ModelError(f"{path}: part_embedding of {width}, metadata says {self.pooling['dim']}")

    def predict(
        self,
        audio: np.ndarray,
        sample_rate: int,
        notes: np.ndarray,
        batch: int = 256,
        patches: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(sounding, onset, shift_s)`` of ``notes`` (n, 4) in mono ``audio``: probabilities, each
        (n, n_classes), and the onset shifts (n,) in seconds (``patches``: ``note_patches``' result for these
        notes where the caller has it already). A classifier with a context runs twice:
        the notes' embeddings first, then every note with their mean (all the notes given: one file);
        one with ``part_pooling`` pools the logits of the notes given over their part embeddings."""
        notes = np.asarray(notes, np.float64).reshape(-1, 4)
        if not len(notes):
            empty = np.zeros((0, len(self.classes)), np.float32)
            return empty, empty.copy(), np.zeros(0, np.float32)
        patch, scalars = note_patches(log_map_db(audio, sample_rate), notes) if patches is None else patches
        names = ["sounding", "onset", "shift_s"]
        feeds = [
            {"patch": patch[i : i + batch], "scalars": scalars[i : i + batch]} for i in range(0, len(notes), batch)
        ]
        if self.context_dim:
            for f in feeds:
                f["context"] = np.zeros((len(f["patch"]), self.context_dim), np.float32)
            emb = np.concatenate([self._sess.run(["embedding"], f)[0] for f in feeds])
            mean = emb.mean(axis=0, keepdims=True).astype(np.float32)
            for f in feeds:
                f["context"] = np.repeat(mean, len(f["patch"]), axis=0)
        if self.pooling:
            names.append("part_embedding")
        runs = [self._sess.run(names, f) for f in feeds]
        sounding, onset, shift = (np.concatenate([r[k] for r in runs]) for k in (0, 1, 2))
        if self.pooling:  # every note given is one file's: pooled over the notes of the same part
            t, w = float(self.pooling["temperature"]), self.pooling["weight"]
            sounding, onset = pool_classes(sounding, onset, np.concatenate([r[3] for r in runs]), t, w)
        shift = np.clip(np.nan_to_num(shift.reshape(-1), nan=0.0), -MAX_SHIFT_S, MAX_SHIFT_S)
        return _sigmoid(sounding), _sigmoid(onset), shift.astype(np.float32)


def pool_by_part(
    logits: np.ndarray, part_embedding: np.ndarray, temperature: float, weight: Any, rows: int = 1024
) -> np.ndarray:
    """``logits`` (n, k) of one file's notes pooled over the notes that sound like each one:
    ``(1 - weight) * logits + weight * A @ logits`` with ``A = softmax(E E^T / temperature)`` by row,
    ``part_embedding`` E (n, d) unit rows (a note's own row included). One part keeps one instrument
    through a file, so a note the patch alone leaves in doubt takes the class of the notes that share
    its timbre. ``weight``: one number, or one per column (k,). Computed ``rows`` at a time (memory
    O(rows * n))."""
    y = np.asarray(logits, np.float64)
    e = np.asarray(part_embedding, np.float64)
    out = np.empty_like(y)
    for i in range(0, len(y), rows):
        s = e[i : i + rows] @ e.T / temperature
        a = np.exp(s - s.max(axis=1, keepdims=True))
        out[i : i + rows] = (a @ y) / a.sum(axis=1, keepdims=True)
    w = np.asarray(weight, np.float64)
    return ((1.0 - w) * y + w * out).astype(np.float32)


def pool_classes(
    sounding: np.ndarray, onset: np.ndarray, part_embedding: np.ndarray, temperature: float, weight: Any
) -> tuple[np.ndarray, np.ndarray]:
    """One file's ``sounding`` and ``onset`` logits (n, n_classes) with the class evidence pooled over
    each note's part (``pool_by_part`` of the sounding logits); the onset logits move by as much as
    the sounding ones (whether a note starts there stays the note's own)."""
    pooled = pool_by_part(sounding, part_embedding, temperature, weight)
    return pooled, (np.asarray(onset, np.float32) + pooled - np.asarray(sounding, np.float32)).astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, np.float64)))).astype(np.float32)


__all__ = [
    "DEFAULT_DECODING",
    "NOTE_CLASSES_FILE",
    "PATCH",
    "VERSION",
    "NoteClassifier",
    "log_map_db",
    "merge_repeated_onsets",
    "note_patches",
    "pool_by_part",
    "pool_classes",
]
