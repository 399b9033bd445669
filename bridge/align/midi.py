"""The score file moved onto the recording's timeline: every event kept, the tempo map replaced.

``write_aligned_midi(score_path, warp, out_path)``: reads the score with mido, computes every
event's time in seconds through the file's own tempo map, maps it through ``warp`` (score
seconds -> recording seconds, nondecreasing) and writes the same tracks, in the same order,
with the same channels, programs, controllers, names and other meta events, at the warped
times, under one fixed tempo (``TEMPO_BPM`` at ``TICKS_PER_BEAT``): a single ``set_tempo``
at the start of the first track (the conductor track of a type-1 file; the only track of a
type-0 file, which stays type 0). Every other ``set_tempo`` is dropped. Written atomically.
Type-2 files (independent sequences) are refused with ``InputError``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import mido
import numpy as np

from bridge.errors import InputError
from bridge.midi_io import TEMPO_BPM, TICKS_PER_BEAT, TICKS_PER_SECOND
from bridge.score import open_midi_file, tick_seconds


def write_aligned_midi(
    score_path: str | os.PathLike[str], warp: Callable[[np.ndarray], np.ndarray], out_path: str | os.PathLike[str]
) -> None:
    """Write ``score_path`` with every event at ``warp(its time in seconds)`` (see the module docstring)."""
    from bridge.atomic import atomic_write

    mid = open_midi_file(score_path)
    if mid.type == 2:
        raise InputError(f"score file '{os.fspath(score_path)}' is a type-2 MIDI file; align needs type 0 or 1")
    out = mido.MidiFile(type=mid.type, ticks_per_beat=TICKS_PER_BEAT)
    for k, track in enumerate(mid.tracks):
        abs_ticks = np.cumsum([msg.time for msg in track], dtype=np.int64) if len(track) else np.zeros(0, np.int64)
        seconds = np.asarray(warp(tick_seconds(mid, abs_ticks)), np.float64) if len(track) else abs_ticks
        new_ticks = np.maximum.accumulate(np.maximum(np.round(seconds * TICKS_PER_SECOND), 0)).astype(np.int64)
        new = mido.MidiTrack()
        if k == 0:
            new.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(TEMPO_BPM), time=0))
        now = 0
        for msg, tick in zip(track, new_ticks.tolist()):
            if msg.is_meta and msg.type == "set_tempo":
                continue
            new.append(msg.copy(time=tick - now))
            now = tick
        out.tracks.append(new)
    tmp_name = os.fspath(out_path)
    try:
        with atomic_write(tmp_name, "wb") as f:
            out.save(file=f)
    except OSError as e:
        raise InputError(f"cannot write {tmp_name}: {e.strerror or e}") from None
