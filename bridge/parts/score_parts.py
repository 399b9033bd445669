"""The parts of a score file: one per MIDI track with notes (per channel where a track mixes them).

A part is a MIDI track with notes; in a type-0 file, or a track holding several channels, each
channel with notes is a part. Its ``name`` (the stem's file name) is the track's name as written
in the file with every character outside ``A-Za-z0-9._-`` replaced by ``_`` (``Violin I`` ->
``Violin_I``); a track without a name (and every part of a type-0 file, whose one track name is
the song's) is ``ch<N>-<GM program name>`` (``ch1-Violin``, ``ch10-Drums``); repeated names get
``-2``, ``-3`` (a part called ``residual`` too: that is the residual's name). Channel 10
parts are drum parts. A part's program is its own track's program change on its channel, else
its channel's from any track (GM programs are per channel), else 0. Notes follow ``bridge.score``'s rules (note-on
with velocity 0 is a note-off, a repeated note-on ends the held one, controllers 120 / 123 end
every note, notes still on at the end end at the last event) and the tempo map of the whole file.

Public API
----------
- ``ScorePart``: ``name``, ``track_name``, ``track`` (index), ``channel`` (0-based), ``program``,
  ``is_drum``, ``notes`` (n_notes, 4) ``[onset_s, offset_s, pitch, velocity]`` sorted by onset.
- ``read_parts(path) -> list[ScorePart]``: in file order (track, then channel); raises
  ``InputError`` with one line for an unreadable file or a score without notes.
- ``part_file_name(raw) -> str``: the sanitising rule alone.
- ``gm_program_name(program, is_drum) -> str``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import mido
import numpy as np

from bridge.errors import InputError
from bridge.instruments import DRUM_CHANNEL
from bridge.parts.processor import RESIDUAL
from bridge.score import _NoteTracker, open_midi_file, tick_seconds

# fmt: off
_GM_NAMES = (
    "Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Grand Piano", "Honky-tonk Piano",
    "Electric Piano 1", "Electric Piano 2", "Harpsichord", "Clavinet", "Celesta", "Glockenspiel",
    "Music Box", "Vibraphone", "Marimba", "Xylophone", "Tubular Bells", "Dulcimer", "Drawbar Organ",
    "Percussive Organ", "Rock Organ", "Church Organ", "Reed Organ", "Accordion", "Harmonica",
    "Tango Accordion", "Acoustic Guitar (nylon)", "Acoustic Guitar (steel)", "Electric Guitar (jazz)",
    "Electric Guitar (clean)", "Electric Guitar (muted)", "Overdriven Guitar", "Distortion Guitar",
    "Guitar Harmonics", "Acoustic Bass", "Electric Bass (finger)", "Electric Bass (pick)",
    "Fretless Bass", "Slap Bass 1", "Slap Bass 2", "Synth Bass 1", "Synth Bass 2", "Violin", "Viola",
    "Cello", "Contrabass", "Tremolo Strings", "Pizzicato Strings", "Orchestral Harp", "Timpani",
    "String Ensemble 1", "String Ensemble 2", "Synth Strings 1", "Synth Strings 2", "Choir Aahs",
    "Voice Oohs", "Synth Choir", "Orchestra Hit", "Trumpet", "Trombone", "Tuba", "Muted Trumpet",
    "French Horn", "Brass Section", "Synth Brass 1", "Synth Brass 2", "Soprano Sax", "Alto Sax",
    "Tenor Sax", "Baritone Sax", "Oboe", "English Horn", "Bassoon", "Clarinet", "Piccolo", "Flute",
    "Recorder", "Pan Flute", "Blown Bottle", "Shakuhachi", "Whistle", "Ocarina", "Lead 1 (square)",
    "Lead 2 (sawtooth)", "Lead 3 (calliope)", "Lead 4 (chiff)", "Lead 5 (charang)", "Lead 6 (voice)",
    "Lead 7 (fifths)", "Lead 8 (bass + lead)", "Pad 1 (new age)", "Pad 2 (warm)", "Pad 3 (polysynth)",
    "Pad 4 (choir)", "Pad 5 (bowed)", "Pad 6 (metallic)", "Pad 7 (halo)", "Pad 8 (sweep)",
    "FX 1 (rain)", "FX 2 (soundtrack)", "FX 3 (crystal)", "FX 4 (atmosphere)", "FX 5 (brightness)",
    "FX 6 (goblins)", "FX 7 (echoes)", "FX 8 (sci-fi)", "Sitar", "Banjo", "Shamisen", "Koto", "Kalimba",
    "Bagpipe", "Fiddle", "Shanai", "Tinkle Bell", "Agogo", "Steel Drums", "Woodblock", "Taiko Drum",
    "Melodic Tom", "Synth Drum", "Reverse Cymbal", "Guitar Fret Noise", "Breath Noise", "Seashore",
    "Bird Tweet", "Telephone Ring", "Helicopter", "Applause", "Gunshot",
)
# fmt: on
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class ScorePart:
    """One part of a score file (see the module docstring)."""

    name: str
    track_name: str
    track: int
    channel: int
    program: int
    is_drum: bool
    notes: np.ndarray  # (n_notes, 4) [onset_s, offset_s, pitch, velocity]

    @property
    def n_notes(self) -> int:
        return int(self.notes.shape[0])


def gm_program_name(program: int, is_drum: bool = False) -> str:
    """General MIDI name of a program 0-127 (``Drums`` for a drum part)."""
    return "Drums" if is_drum else _GM_NAMES[int(program) % 128]


def part_file_name(raw: str) -> str:
    """``raw`` with every character outside ``A-Za-z0-9._-`` replaced by ``_``."""
    return _UNSAFE.sub("_", raw)


def _track_parts(
    mid: mido.MidiFile, track: mido.MidiTrack, changes: list[tuple[float, int, int]]
) -> tuple[str, dict[int, np.ndarray], dict[int, int]]:
    """The track's name, its notes per channel, and each channel's program at its first note in
    this track (-1: none); appends the track's ``(time_s, channel, program)`` changes to ``changes``."""
    channels = tuple(f"c{c}" for c in range(16))
    tracker = _NoteTracker(channels, {c: f"c{c}" for c in range(16)}, 0, 128)
    name = ""
    program = [-1] * 16
    program_at_first = [-1] * 16
    seconds = tick_seconds(mid, np.cumsum([msg.time for msg in track], dtype=np.int64)).tolist()
    t_s = 0.0
    for msg, t_s in zip(track, seconds):
        if msg.is_meta:
            if msg.type == "track_name" and not name:
                name = str(msg.name).strip()
            continue
        if msg.type not in ("note_on", "note_off", "program_change", "control_change"):
            continue
        if msg.type == "program_change":
            program[msg.channel] = msg.program
            changes.append((t_s, msg.channel, msg.program))
        if msg.type == "note_on" and msg.velocity > 0 and program_at_first[msg.channel] < 0:
            program_at_first[msg.channel] = program[msg.channel]
        status, *data = msg.bytes()
        tracker.message(t_s, status, data[0], data[1] if len(data) > 1 else 0)
    tracker.all_off(t_s)
    per_channel: dict[int, list[tuple[float, float, int, int]]] = {}
    for ch, on, off, pitch, vel in tracker.done:
        per_channel.setdefault(ch, []).append((on, off, pitch, vel))
    notes = {}
    for ch, rows in per_channel.items():
        a = np.asarray(rows, np.float64).reshape(-1, 4)
        notes[ch] = a[np.lexsort((a[:, 2], a[:, 0]))]
    return name, notes, {ch: program_at_first[ch] for ch in notes}


def _program_at(changes: list[tuple[float, int, int]], channel: int, time_s: float) -> int:
    """The channel's program at ``time_s`` from every track's program changes (GM programs are
    per channel, file-wide); 0 (piano) before any."""
    before = [(t, p) for t, ch, p in changes if ch == channel and t <= time_s + 1e-9]
    return max(before, key=lambda c: c[0])[1] if before else 0


def read_parts(path: str | os.PathLike[str]) -> list[ScorePart]:
    """The parts of a MIDI file, in track then channel order (see the module docstring)."""
    name = os.fspath(path)
    mid = open_midi_file(name)
    raw: list[tuple[str, int, int, int, np.ndarray]] = []
    changes: list[tuple[float, int, int]] = []
    for t, track in enumerate(mid.tracks):
        track_name, per_channel, programs = _track_parts(mid, track, changes)
        for ch in sorted(per_channel):
            raw.append((track_name if mid.type != 0 else "", t, ch, programs[ch], per_channel[ch]))
    # a part without a program change of its own takes its channel's, from any track
    raw = [
        (n, t, ch, p if p >= 0 else _program_at(changes, ch, float(notes[0, 0])), notes) for n, t, ch, p, notes in raw
    ]
    if not raw:
        raise InputError(f"score file '{name}' has no notes")
    parts: list[ScorePart] = []
    seen: dict[str, int] = {RESIDUAL: 1}  # the residual stem's file name is taken
    for track_name, t, ch, program, notes in raw:
        is_drum = ch == DRUM_CHANNEL
        program_name = part_file_name(gm_program_name(program, is_drum))
        base = part_file_name(track_name) if track_name else f"ch{ch + 1}-{program_name}"
        n = seen.get(base, 0) + 1
        seen[base] = n
        unique = base if n == 1 else f"{base}-{n}"
        while unique in seen and n > 1:  # "X-2" may itself be a track's name
            n += 1
            unique = f"{base}-{n}"
        seen.setdefault(unique, 1)
        parts.append(ScorePart(unique, track_name, t, ch, program, is_drum, notes))
    return parts
