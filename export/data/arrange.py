"""Random band arrangements: meter, tempo, key, chord progression and a random subset of stems.

``generate_arrangement(rng, duration_s) -> Arrangement`` is pure given ``rng``: the same
generator state gives the same parts and notes.
"""

from __future__ import annotations

import math

import numpy as np

from export.data import gm
from export.data.drums import drum_events
from export.data.parts import bass_events, guitar_events, keys_events, other_events, strings_events
from export.data.song import METER_WEIGHTS, METERS, Arrangement, Meter, Part, notes_to_seconds, trim_notes
from export.data.theory import MODE_WEIGHTS, MODES, chord_on_degree, random_progression, scale_pcs

CLASSES = ("drums", "bass", "piano", "guitar", "strings")
# How many of the five classes a track has (index = count): mostly 3-5.
N_CLASSES_P = np.array([0.0, 0.05, 0.12, 0.3, 0.33, 0.2])
N_OTHER_P = np.array([0.35, 0.45, 0.2])
PITCH_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")


def pick_meter(rng: np.random.Generator) -> Meter:
    """A meter drawn from ``METER_WEIGHTS`` (4/4 mostly, 5/4 occasionally)."""
    names = list(METER_WEIGHTS)
    p = np.array([METER_WEIGHTS[n] for n in names])
    return METERS[names[rng.choice(len(names), p=p / p.sum())]]


def make_chords(rng: np.random.Generator, meter: Meter, n_bars: int, tonic: int, mode: str):
    """Chord slots [(start_ql, dur_ql, chord_pcs)] covering ``n_bars`` bars, one or two per bar."""
    per_bar = 2 if meter.name == "4/4" and rng.random() < 0.25 else 1
    slot = meter.bar_ql / per_bar
    degrees = random_progression(rng, n_bars * per_bar)
    sevenths = rng.random() < 0.3
    return [(k * slot, slot, chord_on_degree(tonic, mode, d, sevenths)) for k, d in enumerate(degrees)]


def program_for(rng: np.random.Generator, stem: str) -> int:
    """A GM program of a stem's family, uniformly (``other``: melodic distractors, rarely effects)."""
    if stem == "other":
        pool = gm.OTHER if rng.random() < 0.05 else gm.OTHER_MELODIC
        return int(rng.choice(pool))
    return int(rng.choice(gm.PROGRAMS_OF_STEM[stem]))


def part_events(rng, stem: str, program: int, meter: Meter, chords, scale):
    """Events (onset_ql, dur_ql, pitch, velocity) of one part of a given stem class."""
    if stem == "bass":
        return bass_events(rng, meter, chords, scale, program)
    if stem == "piano":
        return keys_events(rng, meter, chords, program)
    if stem == "guitar":
        return guitar_events(rng, meter, chords, program)
    if stem == "strings":
        return strings_events(rng, meter, chords, scale, program)
    return other_events(rng, meter, chords, scale, program)


def generate_arrangement(rng: np.random.Generator, duration_s: float, extra_other: int = 0) -> Arrangement:
    """A random band arrangement lasting ``duration_s`` seconds (notes trimmed to it).

    ``extra_other``: that many more ``other`` parts (winds, brass, organ, synths, ...; one left
    without notes by ``duration_s`` is dropped) after the usual draw, for classifier corpora where
    the 84 ``other`` programs are otherwise spread thin; 0 (the default, and every held-out set)
    leaves the generator's stream exactly as it was."""
    if extra_other < 0 or int(extra_other) != extra_other:
        raise ValueError(f"extra_other must be a whole number >= 0, not {extra_other!r}")
    extra_other = int(extra_other)
    meter = pick_meter(rng)
    qpm = float(rng.uniform(60.0, 180.0))
    mode_names = list(MODES)
    mode = mode_names[rng.choice(len(mode_names), p=MODE_WEIGHTS / MODE_WEIGHTS.sum())]
    tonic = int(rng.integers(12))
    scale = scale_pcs(tonic, mode)
    n_bars = math.ceil(duration_s * qpm / 60.0 / meter.bar_ql) + 1
    chords = make_chords(rng, meter, n_bars, tonic, mode)

    n_classes = int(rng.choice(len(N_CLASSES_P), p=N_CLASSES_P))
    stems = [CLASSES[i] for i in sorted(rng.choice(len(CLASSES), size=n_classes, replace=False))]
    pitched = [s for s in stems if s != "drums"]
    if pitched and rng.random() < 0.2:
        stems.append(str(rng.choice(pitched)))  # a second instrument of one class
    stems += ["other"] * (int(rng.choice(len(N_OTHER_P), p=N_OTHER_P)) + extra_other)

    arr = Arrangement(qpm=qpm, meter=meter, duration_s=duration_s, key=f"{PITCH_NAMES[tonic]} {mode}")
    for stem in stems:
        if stem == "drums":
            program, is_drum = 0, True
            events = drum_events(rng, meter, n_bars)
        else:
            program, is_drum = program_for(rng, stem), False
            events = part_events(rng, stem, program, meter, chords, scale)
        notes = trim_notes(notes_to_seconds(events, qpm, rng), duration_s)
        if len(notes):
            arr.parts.append(Part(program=program, is_drum=is_drum, notes=notes, role=stem))
    return arr
