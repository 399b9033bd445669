"""Frame / onset probabilities -> live note events, decided causally frame by frame.

Public API
----------
- ``NoteEvent(sample, stem, note, velocity, on)``: one note-on or note-off.
- ``NoteDecoder(meta)``: stateful decoder; ``decode(first_frame, note_frame, note_onset)
  -> list[NoteEvent]``, ``flush(frame_index) -> list[NoteEvent]``, ``reset()``.
- ``onset_velocity(onset_prob) -> int``: the velocity mapping.
- ``pair_events(events) -> list[(stem, note, on_sample, off_sample, velocity)]``: note-ons
  matched with their note-offs (helper for evaluation and file writing).
- ``events_to_notes(events, sample_rate, n_stems=None) -> list[(n_notes, 4) float64]``:
  ``[onset_s, offset_s, pitch, velocity]`` per stem, for mir_eval / comparisons.

Decoding rules (per stem ``s`` and active key, thresholds from the model metadata)
-------------------------------------------------------------------------------
- NaN probabilities count as 0. Only ``meta.active_keys[stem]`` emit notes.
- Onset: a rising edge of the onset probability across ``onset_threshold[s]`` (this frame
  ``>=`` it, the previous one below), so a long onset plateau triggers once and a new onset
  needs the probability to dip below the threshold first. No look-ahead.
- Frame onsets (pitched stems whose ``frame_onset_threshold[s]`` is set, > 0): a rising edge of
  the frame probability across ``max(frame_onset_threshold[s], start threshold)`` also counts
  as an onset, for a key with no note held (a held note is only re-struck by the onset head).
  A weak onset head then still starts the notes its frame head hears.
- Pitched stems: a note starts at an onset when the frame probability is
  ``>= START_FRAME_FRACTION * frame_threshold[s]`` (0.75); it is held while the frame
  probability stays ``>= SUSTAIN_FRACTION * frame_threshold[s]`` (0.5): hysteresis. The
  note-off is at the first frame below the sustain threshold. An onset of a held note
  (that passes the start test) ends it and starts a new one at the same sample (off first).
- Minimum length ``meta.min_note_ms``: a note whose frames end sooner keeps sounding and
  its note-off is emitted at the first frame whose centre is at least ``min_note_ms`` after
  the onset (causal: decided then, nothing is taken back); a re-onset within the minimum
  length is ignored.
- Drums (stem named ``drums``): onset only; each hit gets a note-off at the first frame
  centre at least ``max(DRUM_NOTE_MS, min_note_ms)`` (50 ms) after it; a new hit of a
  sounding drum note ends it first.
- Velocity: ``onset_velocity(p) = clip(round(127 * p), 1, 127)`` with ``p`` the onset
  probability at the onset frame (``max(onset, frame)`` probability for a frame onset).
- Event time ``sample``: the centre of the frame that decided it,
  ``(k + 1) * hop - n_fft // 2`` at the model rate (the engine may shift it by its latency).
  Events come out in time order; at one sample, note-offs before note-ons.

The decoder loops over frames but is vectorised over stems and keys; decoding is
independent of how frames are split into calls.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

from bridge.metadata import ModelMetadata

START_FRAME_FRACTION = 0.75
SUSTAIN_FRACTION = 0.5
DRUM_NOTE_MS = 50.0
DRUM_STEM = "drums"


class NoteEvent(NamedTuple):
    """A note-on (``on``, velocity 1-127) or note-off (velocity 0) at a model-rate sample."""

    sample: int
    stem: int
    note: int
    velocity: int
    on: bool


def onset_velocity(onset_prob: float | np.ndarray) -> np.ndarray:
    """MIDI velocity from an onset probability: ``clip(round(127 * p), 1, 127)`` (int64 array)."""
    p = np.nan_to_num(np.asarray(onset_prob, dtype=np.float64), nan=0.0)
    return np.clip(np.rint(127.0 * p), 1, 127).astype(np.int64)


class NoteDecoder:
    """Stateful, causal decoder of ``note_frame`` / ``note_onset`` probabilities into events.

    Called by the inference worker, block by block; ``decode`` accepts any number of
    frames (including 0) and the result does not depend on the split.
    """

    def __init__(self, meta: ModelMetadata):
        self.meta = meta
        n_stems, n_keys = len(meta.stems), meta.n_keys
        self._shape = (n_stems, n_keys)
        self._active = np.zeros(self._shape, dtype=bool)
        for s, stem in enumerate(meta.stems):
            keys = np.asarray(meta.active_keys.get(stem, ()), dtype=np.int64) - meta.key_low
            keys = keys[(keys >= 0) & (keys < n_keys)]
            self._active[s, keys] = True
        self._drum = np.array([stem == DRUM_STEM for stem in meta.stems], dtype=bool)[:, None]
        self._onset_thr = np.array([meta.onset_threshold[s] for s in meta.stems], dtype=np.float32)[:, None]
        fo = np.array([meta.frame_onset_threshold.get(s, 0.0) for s in meta.stems], dtype=np.float32)[:, None]
        frame_onset_on = (fo > 0) & ~self._drum  # (n_stems, 1)
        frame_thr = np.array([meta.frame_threshold[s] for s in meta.stems], dtype=np.float32)[:, None]
        self._start_thr = START_FRAME_FRACTION * frame_thr
        # a frame onset must also pass the start test: never below the start threshold
        self._frame_onset_thr = np.where(frame_onset_on, np.maximum(fo, self._start_thr), np.float32(np.inf))
        self._frame_onsets = bool(frame_onset_on.any())  # off: the per-frame loop skips them
        self._sustain_thr = SUSTAIN_FRACTION * frame_thr
        min_frames = self._ms_to_frames(meta.min_note_ms)
        drum_frames = self._ms_to_frames(max(DRUM_NOTE_MS, meta.min_note_ms))
        self._min_frames = np.where(self._drum, drum_frames, min_frames).astype(np.int64)
        self.reset()

    def _ms_to_frames(self, ms: float) -> int:
        """Frames (hops) needed for ``ms`` to pass between two frame centres; >= 1 for ms > 0."""
        return max(0, math.ceil(ms * self.meta.sample_rate / 1000.0 / self.meta.hop - 1e-9))

    def reset(self) -> None:
        """Forget every held note and the onset history (call ``flush`` first to close notes)."""
        self._held = np.zeros(self._shape, dtype=bool)
        self._releasing = np.zeros(self._shape, dtype=bool)
        self._on_frame = np.zeros(self._shape, dtype=np.int64)
        self._prev_above = np.zeros(self._shape, dtype=bool)
        self._prev_frame_above = np.zeros(self._shape, dtype=bool)

    def _sample(self, frame: int) -> int:
        return (frame + 1) * self.meta.hop - self.meta.n_fft // 2

    def decode(self, first_frame: int, note_frame: np.ndarray, note_onset: np.ndarray) -> list[NoteEvent]:
        """Decode frames ``first_frame ..``; ``note_frame``, ``note_onset``: (n_frames, n_stems, n_keys)."""
        frame_p = np.asarray(note_frame)
        onset_p = np.asarray(note_onset)
        if frame_p.shape != onset_p.shape or frame_p.ndim != 3 or frame_p.shape[1:] != self._shape:
            raise ValueError(
                f"note_frame {frame_p.shape} and note_onset {onset_p.shape} must both be (n_frames, *{self._shape})"
            )
        frame_p = np.nan_to_num(frame_p, nan=0.0)  # once per block, not per frame
        onset_p = np.nan_to_num(onset_p, nan=0.0)
        events: list[NoteEvent] = []
        held, releasing, on_frame = self._held, self._releasing, self._on_frame
        drum, active, min_frames = self._drum, self._active, self._min_frames
        for i in range(frame_p.shape[0]):
            k = int(first_frame) + i
            f = frame_p[i]
            o = onset_p[i]
            above = o >= self._onset_thr
            onset = above & ~self._prev_above & active
            self._prev_above = above
            if self._frame_onsets:
                f_above = f >= self._frame_onset_thr
                frame_onset = f_above & ~self._prev_frame_above & active & ~held
                self._prev_frame_above = f_above
                if frame_onset.any():
                    onset = onset | frame_onset
                    o = np.where(frame_onset, np.maximum(o, f), o)
            if not (held.any() or onset.any()):
                continue
            aged = (k - on_frame) >= min_frames
            can_start = onset & (drum | (f >= self._start_thr))
            retrigger = held & can_start & np.where(drum, True, aged & ~releasing)
            drop = held & ~drum & ~releasing & ~retrigger & (f < self._sustain_thr)
            expire = held & aged & (drum | releasing)
            offs = retrigger | expire | (drop & aged)
            releasing |= drop & ~aged
            held &= ~offs
            releasing &= ~offs
            ons = can_start & ~held
            held |= ons
            on_frame[ons] = k
            if offs.any() or ons.any():
                t = self._sample(k)
                for s, j in zip(*np.nonzero(offs)):
                    events.append(NoteEvent(t, int(s), int(j) + self.meta.key_low, 0, False))
                if ons.any():
                    vel = onset_velocity(o[ons])
                    for (s, j), v in zip(zip(*np.nonzero(ons)), vel.tolist()):
                        events.append(NoteEvent(t, int(s), int(j) + self.meta.key_low, int(v), True))
        return events

    def flush(self, frame_index: int) -> list[NoteEvent]:
        """Close every held note at the centre of ``frame_index`` (not before its onset)."""
        events = []
        for s, j in zip(*np.nonzero(self._held)):
            t = self._sample(max(int(frame_index), int(self._on_frame[s, j])))
            events.append(NoteEvent(t, int(s), int(j) + self.meta.key_low, 0, False))
        self._held[...] = False
        self._releasing[...] = False
        events.sort(key=lambda e: e.sample)
        return events


def pair_events(events: Iterable[NoteEvent]) -> list[tuple[int, int, int, int, int]]:
    """Match note-ons with note-offs: ``(stem, note, on_sample, off_sample, velocity)`` per note.

    A note-off without a note-on is dropped; a note-on of a sounding note ends it there;
    notes left sounding end at the last event's sample. Sorted by onset.
    """
    held: dict[tuple[int, int], tuple[int, int]] = {}
    notes: list[tuple[int, int, int, int, int]] = []
    last = 0
    for ev in sorted(events, key=lambda e: (e.sample, e.on)):
        last = max(last, ev.sample)
        key = (ev.stem, ev.note)
        if key in held:
            on_sample, vel = held.pop(key)
            notes.append((ev.stem, ev.note, on_sample, ev.sample, vel))
        if ev.on and ev.velocity > 0:
            held[key] = (ev.sample, ev.velocity)
    for (stem, note), (on_sample, vel) in held.items():
        notes.append((stem, note, on_sample, max(last, on_sample), vel))
    notes.sort(key=lambda n: (n[2], n[0], n[1]))
    return notes


def events_to_notes(events: Sequence[NoteEvent], sample_rate: float, n_stems: int | None = None) -> list[np.ndarray]:
    """Notes per stem, (n_notes, 4) float64 ``[onset_s, offset_s, pitch, velocity]`` sorted by onset.

    ``n_stems`` defaults to one more than the largest stem index seen.
    """
    pairs = pair_events(events)
    if n_stems is None:
        n_stems = max((p[0] for p in pairs), default=-1) + 1
    out: list[list[tuple[float, float, int, int]]] = [[] for _ in range(n_stems)]
    for stem, note, on_s, off_s, vel in pairs:
        if 0 <= stem < n_stems:
            out[stem].append((on_s / sample_rate, off_s / sample_rate, note, vel))
    return [np.asarray(n, dtype=np.float64).reshape(-1, 4) for n in out]
