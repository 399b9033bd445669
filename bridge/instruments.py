"""General MIDI instrument classes: which stem a program or a drum note belongs to.

Public API
----------
- ``DEFAULT_STEMS``: the predicted stems of the default model, in output order.
- ``DRUM_CHANNEL``: 0-based MIDI channel of drums (channel 10 to a musician).
- ``DRUM_CLASSES``: GM drum notes the models transcribe, and ``DRUM_CLASS_OF``, mapping every
  GM percussion note (35-81) onto one of them.
- ``stem_for_program(program, is_drum) -> str``: the stem of a GM program (0-127).
- ``stem_channel(stem, stems) -> int``: the 0-based MIDI channel a stem's notes go out on.
"""

from __future__ import annotations

DEFAULT_STEMS = ("drums", "bass", "piano", "guitar", "strings")
OTHER = "other"
DRUM_CHANNEL = 9
KEY_LOW = 21
N_KEYS = 88

# kick, snare, closed hat, low tom, open hat, mid tom, crash, high tom, ride
DRUM_CLASSES = (36, 38, 42, 45, 46, 47, 49, 50, 51)

# fmt: off
DRUM_CLASS_OF: dict[int, int] = {
    35: 36, 36: 36,                      # kicks
    37: 38, 38: 38, 39: 38, 40: 38,      # snares, side stick, clap
    42: 42, 44: 42, 54: 42, 69: 42, 70: 42, 82: 42,  # closed / pedal hat, tambourine, shakers
    46: 46,                              # open hat
    41: 45, 43: 45, 45: 45,              # low toms
    47: 47, 48: 47,                      # mid toms
    50: 50,                              # high tom
    49: 49, 52: 49, 55: 49, 57: 49,      # crashes, china, splash
    51: 51, 53: 51, 59: 51, 56: 51,      # rides, ride bell, cowbell
}
# fmt: on

_PROGRAM_FAMILIES = (
    (range(0, 8), "piano"),
    (range(24, 32), "guitar"),
    (range(32, 40), "bass"),
    (range(40, 52), "strings"),
)


def stem_for_program(program: int, is_drum: bool = False) -> str:
    """Stem of a General MIDI program (0-127); drums when ``is_drum``; ``other`` otherwise."""
    if is_drum:
        return "drums"
    for family, stem in _PROGRAM_FAMILIES:
        if program in family:
            return stem
    return OTHER


def stem_channel(stem: str, stems: tuple[str, ...]) -> int:
    """0-based MIDI channel for a stem's notes: drums on 9, the others 0, 1, ... skipping 9."""
    if stem == "drums":
        return DRUM_CHANNEL
    pitched = [s for s in (*stems, OTHER) if s != "drums"]
    ch = pitched.index(stem)
    return ch if ch < DRUM_CHANNEL else ch + 1
