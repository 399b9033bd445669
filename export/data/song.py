"""Song containers shared by the generators: meters, parts and arrangements.

Times inside generators are in quarter notes (``*_ql``); ``Part.notes`` is in seconds:
an array (n_notes, 4) of onset_s, offset_s, midi_pitch, velocity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Meter:
    """A time signature: bar length, pulse onsets and the finest subdivision, in quarter notes."""

    name: str
    numerator: int
    denominator: int
    bar_ql: float
    pulses_ql: tuple[float, ...]
    sub_ql: float


METERS = {
    "4/4": Meter("4/4", 4, 4, 4.0, (0.0, 1.0, 2.0, 3.0), 0.5),
    "3/4": Meter("3/4", 3, 4, 3.0, (0.0, 1.0, 2.0), 0.5),
    "6/8": Meter("6/8", 6, 8, 3.0, (0.0, 1.5), 0.5),
    "5/4": Meter("5/4", 5, 4, 5.0, (0.0, 1.0, 2.0, 3.0, 4.0), 0.5),
}
METER_WEIGHTS = {"4/4": 0.62, "3/4": 0.14, "6/8": 0.16, "5/4": 0.08}


@dataclass
class Part:
    """One stem: a GM program (or drums) and its notes (n_notes, 4): onset_s, offset_s, pitch, velocity."""

    program: int
    is_drum: bool
    notes: np.ndarray
    role: str = ""


@dataclass
class Arrangement:
    """A whole track: tempo (quarter notes per minute), meter, duration and parts."""

    qpm: float
    meter: Meter
    duration_s: float
    parts: list[Part] = field(default_factory=list)
    source: str = "generated"
    key: str = ""


def notes_to_seconds(
    events_ql: list[tuple[float, float, int, int]],
    qpm: float,
    rng: np.random.Generator,
    timing_jitter_s: float = 0.008,
    velocity_jitter: float = 6.0,
) -> np.ndarray:
    """Convert (onset_ql, dur_ql, pitch, velocity) events to humanised seconds: (n_notes, 4) float64."""
    if not events_ql:
        return np.zeros((0, 4))
    ev = np.asarray(events_ql, dtype=np.float64)
    spq = 60.0 / qpm
    onset = ev[:, 0] * spq + rng.normal(0.0, timing_jitter_s, len(ev))
    dur = np.maximum(ev[:, 1] * spq * rng.uniform(0.9, 1.0, len(ev)), 0.03)
    onset = np.maximum(onset, 0.0)
    vel = np.clip(np.round(ev[:, 3] + rng.normal(0.0, velocity_jitter, len(ev))), 1, 127)
    out = np.stack([onset, onset + dur, ev[:, 2], vel], axis=1)
    return out[np.argsort(out[:, 0], kind="stable")]


def trim_notes(notes: np.ndarray, duration_s: float, min_dur_s: float = 0.02) -> np.ndarray:
    """Drop notes starting after ``duration_s - min_dur_s`` and clip offsets to ``duration_s``."""
    if len(notes) == 0:
        return notes
    keep = notes[:, 0] < duration_s - min_dur_s
    out = notes[keep].copy()
    out[:, 1] = np.minimum(out[:, 1], duration_s)
    return out
