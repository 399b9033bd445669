"""Keys, modes, chords and progressions for the arrangement generator.

Pitches are MIDI note numbers; a chord is a tuple of pitch classes relative to nothing
(absolute 0-11) with its root first.
"""

from __future__ import annotations

import numpy as np

MODES: dict[str, tuple[int, ...]] = {
    "ionian": (0, 2, 4, 5, 7, 9, 11),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "aeolian": (0, 2, 3, 5, 7, 8, 10),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
}
MODE_WEIGHTS = np.array([0.3, 0.12, 0.05, 0.05, 0.12, 0.26, 0.1])

# Progressions as scale degrees (0-based), one chord per slot.
PROGRESSIONS: tuple[tuple[int, ...], ...] = (
    (0, 4, 5, 3),
    (0, 5, 3, 4),
    (0, 3, 4, 4),
    (5, 3, 0, 4),
    (1, 4, 0, 0),
    (0, 3, 0, 4),
    (0, 6, 5, 6),
    (0, 0, 3, 3),
    (0, 5, 1, 4),
    (0, 2, 3, 4),
    (0, 4, 5, 2, 3, 0, 3, 4),
    (0, 1, 2, 3),
    (0, 6, 3, 0),
    (0, 3, 6, 2, 5, 1, 4, 0),
)


def scale_pcs(tonic_pc: int, mode: str) -> np.ndarray:
    """Pitch classes (7,) of a mode on ``tonic_pc``."""
    return (tonic_pc + np.array(MODES[mode])) % 12


def chord_on_degree(tonic_pc: int, mode: str, degree: int, seventh: bool = False) -> tuple[int, ...]:
    """Diatonic triad (or seventh chord) on a 0-based scale degree: pitch classes, root first."""
    pcs = scale_pcs(tonic_pc, mode)
    idx = [degree, degree + 2, degree + 4] + ([degree + 6] if seventh else [])
    return tuple(int(pcs[i % 7]) for i in idx)


def random_progression(rng: np.random.Generator, n_chords: int) -> list[int]:
    """Scale degrees for ``n_chords`` slots: a stock progression, repeated, or a random walk."""
    if rng.random() < 0.75:
        base = PROGRESSIONS[rng.integers(len(PROGRESSIONS))]
        return [base[i % len(base)] for i in range(n_chords)]
    out = [0]
    while len(out) < n_chords:
        out.append(int((out[-1] + rng.choice([1, 2, 3, 4, 5, 6, 3, 4])) % 7))
    return out


def fold(pitch: int, low: int, high: int) -> int:
    """Move ``pitch`` by octaves into ``[low, high]`` (as close as possible)."""
    while pitch < low:
        pitch += 12
    while pitch > high:
        pitch -= 12
    return max(low, pitch) if pitch < low else pitch


def voicing(chord_pcs: tuple[int, ...], center: int, n_voices: int, prev: list[int] | None = None) -> list[int]:
    """Close voicing of ``n_voices`` notes near ``center``, moving minimally from ``prev``."""
    candidates = []
    for inv in range(len(chord_pcs)):
        pcs = chord_pcs[inv:] + chord_pcs[:inv]
        notes: list[int] = []
        p = fold(pcs[0], center - 6, center + 5)
        for k in range(n_voices):
            pc = pcs[k % len(pcs)]
            q = p if k == 0 else notes[-1] + ((pc - notes[-1]) % 12 or 12)
            notes.append(q)
        candidates.append(notes)
    if prev:
        pm = float(np.mean(prev))
        return min(candidates, key=lambda v: abs(float(np.mean(v)) - pm))
    return min(candidates, key=lambda v: abs(float(np.mean(v)) - center))
