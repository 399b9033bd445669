"""Writing note events: MIDI files (offline) and mido messages (live MIDI out).

Public API
----------
- ``TICKS_PER_BEAT`` (960) and ``TEMPO_BPM`` (120): the file resolution, 1920 ticks per
  second, so times keep better than 1 ms accuracy.
- ``STEM_PROGRAMS``: the GM program written for each pitched stem (unknown stems: 0).
- ``write_notes_midi(path, events, stems, sample_rate, latency_samples=0)``: a type-1 MIDI
  file, written atomically.
- ``write_parts_midi(path, parts, end_s=None)``: the notes of score parts, one track per part.
- ``event_to_message(event, stems) -> mido.Message``: a ``NoteEvent`` as a channel message
  on the stem's channel (``instruments.stem_channel``; drums on channel 10).
- ``MemoryPort``: an in-memory mido output port that keeps what is sent (for tests).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import mido

from bridge.atomic import atomic_write
from bridge.instruments import stem_channel
from bridge.notes import NoteEvent, pair_events

TICKS_PER_BEAT = 960
TEMPO_BPM = 120
TICKS_PER_SECOND = TICKS_PER_BEAT * TEMPO_BPM // 60
STEM_PROGRAMS = {"piano": 0, "guitar": 25, "bass": 33, "strings": 48}
DRUM_STEM = "drums"


def event_to_message(event: NoteEvent, stems: Sequence[str]) -> mido.Message:
    """The live MIDI message of ``event`` on its stem's channel (note_off for note-offs)."""
    channel = stem_channel(stems[event.stem], tuple(stems))
    if event.on and event.velocity > 0:
        return mido.Message("note_on", channel=channel, note=event.note, velocity=event.velocity)
    return mido.Message("note_off", channel=channel, note=event.note, velocity=0)


def _track(name: str, timed: list[tuple[int, int, mido.Message]]) -> mido.MidiTrack:
    """A track from (tick, order, message) triples: sorted, delta times, end_of_track."""
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("track_name", name=name, time=0))
    now = 0
    for tick, _, msg in sorted(timed, key=lambda x: (x[0], x[1])):
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return track


def _conductor() -> mido.MidiTrack:
    conductor = mido.MidiTrack()
    conductor.append(mido.MetaMessage("track_name", name="stembridge", time=0))
    conductor.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(TEMPO_BPM), time=0))
    conductor.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    conductor.append(mido.MetaMessage("end_of_track", time=0))
    return conductor


def write_parts_midi(path: str | os.PathLike[str], parts: Sequence[Any], end_s: float | None = None) -> None:
    """Write the notes of score parts (``bridge.parts.ScorePart``: ``name``, ``channel``,
    ``program``, ``is_drum``, ``notes`` [onset_s, offset_s, pitch, velocity]) as a type-1 MIDI file:
    the conductor track, then one track per part named after it, on its channel, with its program.
    With ``end_s``, notes starting at or after it are left out and later offsets end there
    (what an interrupted run had reached). Written atomically."""
    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    mid.tracks.append(_conductor())
    for part in parts:
        ch = int(part.channel)
        timed: list[tuple[int, int, mido.Message]] = []
        if not part.is_drum:
            timed.append((0, -1, mido.Message("program_change", channel=ch, program=int(part.program))))
        for on_s, off_s, pitch, vel in part.notes.tolist():
            if end_s is not None:
                if on_s >= end_s:
                    continue
                off_s = min(off_s, end_s)
            on_tick = max(0, round(on_s * TICKS_PER_SECOND))
            off_tick = max(round(off_s * TICKS_PER_SECOND), on_tick + 1)
            velocity = min(max(int(vel), 1), 127)
            timed.append((on_tick, 1, mido.Message("note_on", channel=ch, note=int(pitch), velocity=velocity)))
            timed.append((off_tick, 0, mido.Message("note_off", channel=ch, note=int(pitch), velocity=0)))
        mid.tracks.append(_track(part.name, timed))
    _save_atomic(mid, os.fspath(path))


def write_notes_midi(
    path: str | os.PathLike[str],
    events: Iterable[NoteEvent],
    stems: Sequence[str],
    sample_rate: float,
    latency_samples: int = 0,
) -> None:
    """Write ``events`` as a type-1 MIDI file: a conductor track (120 bpm, 4/4), then one track
    per stem of ``stems`` (model order, no track for ``other``) named after it, on
    ``stem_channel(stem, stems)``, with a program change for pitched stems.

    Event times are ``(event.sample - latency_samples) / sample_rate`` seconds, clipped at 0.
    Every note-on gets a note-off (see ``notes.pair_events``). The file is written to a
    temporary file in the same directory, then renamed over ``path``.
    """
    stems = tuple(stems)
    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    mid.tracks.append(_conductor())

    def tick(sample: int) -> int:
        return max(0, round((sample - latency_samples) * TICKS_PER_SECOND / sample_rate))

    per_stem: list[list[tuple[int, int, mido.Message]]] = [[] for _ in stems]
    for s_idx, note, on_sample, off_sample, vel in pair_events(events):
        if not 0 <= s_idx < len(stems):
            continue
        ch = stem_channel(stems[s_idx], stems)
        on_tick = tick(on_sample)
        off_tick = max(tick(off_sample), on_tick + 1)  # a note never ends before it starts
        per_stem[s_idx].append((on_tick, 1, mido.Message("note_on", channel=ch, note=note, velocity=vel)))
        per_stem[s_idx].append((off_tick, 0, mido.Message("note_off", channel=ch, note=note, velocity=0)))
    for s, stem in enumerate(stems):
        timed = per_stem[s]
        if stem != DRUM_STEM:
            ch = stem_channel(stem, stems)
            timed.append((0, -1, mido.Message("program_change", channel=ch, program=STEM_PROGRAMS.get(stem, 0))))
        mid.tracks.append(_track(stem, timed))

    _save_atomic(mid, os.fspath(path))


def _save_atomic(mid: mido.MidiFile, path: str) -> None:
    with atomic_write(path, "wb") as f:
        mid.save(file=f)


class MemoryPort(mido.ports.BaseOutput):
    """An output port that appends every sent message to ``self.messages`` (for tests)."""

    def __init__(self, name: str = "memory", **kwargs: Any):
        self.messages: list[mido.Message] = []
        super().__init__(name, **kwargs)

    def _send(self, msg: mido.Message) -> None:
        self.messages.append(msg)
