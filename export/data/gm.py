"""General MIDI names and Slakh2100 instrument classes of programs.

``inst_class(program, is_drum)`` gives Slakh's ``inst_class`` string, ``program_name(program)``
the GM name Slakh stores as ``midi_program_name``.
"""

from __future__ import annotations

import pretty_midi

# Slakh2100's class names, one per block of eight GM programs.
SLAKH_CLASSES = (
    "Piano",
    "Chromatic Percussion",
    "Organ",
    "Guitar",
    "Bass",
    "Strings",
    "Strings (continued)",
    "Brass",
    "Reed",
    "Pipe",
    "Synth Lead",
    "Synth Pad",
    "Synth Effects",
    "Ethnic",
    "Percussive",
    "Sound Effects",
)

PIANO = tuple(range(0, 8))
GUITAR = tuple(range(24, 32))
BASS = tuple(range(32, 40))
STRINGS = tuple(range(40, 52))
# Programs whose stem is ``other`` (bridge.instruments): every GM program outside the four families.
OTHER = tuple(p for p in range(128) if p not in PIANO + GUITAR + BASS + STRINGS)
# Distractors used by the generator: melodic "other" programs (sound effects 120-127 are rare).
OTHER_MELODIC = tuple(p for p in OTHER if p < 120)
PROGRAMS_OF_STEM = {"piano": PIANO, "guitar": GUITAR, "bass": BASS, "strings": STRINGS, "other": OTHER}


def inst_class(program: int, is_drum: bool = False) -> str:
    """Slakh2100 ``inst_class`` of a GM program (0-127), ``"Drums"`` when ``is_drum``."""
    if is_drum:
        return "Drums"
    return SLAKH_CLASSES[int(program) // 8]


def program_name(program: int, is_drum: bool = False) -> str:
    """GM program name as Slakh writes it in ``midi_program_name``."""
    if is_drum:
        return "Drums"
    return pretty_midi.program_to_instrument_name(int(program))
