"""MIDI score in -> piano-roll frames aligned to the audio (offline and live).

The score of the parts (the MIDI the DAW plays along with the bus) is turned into the
``score`` input of the model: a piano roll ``(n_frames, n_stems, n_keys)`` in {0, 1} on the
model's frame grid. Offline files and live MIDI go through the same note tracker and the
same frame rule, so both paths give the same rows.

Public API
----------
- ``ChannelMap``: type of a channel map, ``{channel_0_based: stem_name}``.
- ``parse_channel_map(raw, stems=DEFAULT_STEMS) -> ChannelMap``: validate a user mapping
  with 1-based channel keys (as in TOML ``{ "1" = "piano", "10" = "drums" }``); raises
  ``InputError`` naming the bad entry.
- ``frame_time_samples(frame, hop, n_fft)``: model-rate sample time of a frame's centre.
- ``notes_to_roll(notes_per_stem, n_frames, meta_like, first_frame=0)
  -> (n_frames, n_stems, n_keys) float32``: frame (sounding) targets.
- ``note_spans(notes_per_stem, meta_like)`` and ``spans_to_roll(spans, n_frames, meta_like,
  first_frame=0)``: ``notes_to_roll`` in two steps, for a score rolled many times.
- ``onsets_to_roll(notes_per_stem, n_frames, meta_like, first_frame=0)
  -> (n_frames, n_stems, n_keys) float32``: onset targets.
- ``open_midi_file(path) -> mido.MidiFile``: parsed, or one-line ``InputError``.
- ``tick_seconds(mid, ticks) -> seconds``: absolute ticks of a ``mido.MidiFile`` through its
  tempo map (every ``set_tempo`` of every track).
- ``meta_at_ticks(mid, kind) -> [(tick, MetaMessage)]``: every meta message of one type (e.g.
  ``time_signature``) in any track, at its absolute tick, in tick order.
- ``score_file_messages(path) -> list[(time_s, mido.Message)]``: channel messages of a
  MIDI file with the tempo map applied (all tracks merged).
- ``read_score_file(path, stems, channel_map=None, key_low=21, n_keys=88)
  -> list[(n_notes, 4) float64]``: notes per stem ``[onset_s, offset_s, pitch, velocity]``.
- ``LiveScore(meta, channel_map=None)``: real-time score; ``push(sample_index, message)``,
  ``roll(first_frame, n_frames, out=None)``, ``spans(first_frame)``, ``score_offset_ms``, ``reset()``.

Frame rule (shared by every function here)
------------------------------------------
Frame ``k`` has its centre at model-rate sample ``t_k = (k + 1) * hop - n_fft // 2``. Note
times are quantised to the nearest model-rate sample. A note's onset frame is the frame
whose centre is nearest its onset (ties go to the later frame). A key is on at frame ``k``
when a note with velocity > 0 sounds at ``t_k`` (``onset <= t_k < offset``) or ``k`` is that
note's onset frame. So a note shorter than a hop (a drum hit) still marks one frame and is
never lost, and the onset target frame is always a frame target too (a note starting just
after a centre also marks that frame, at most half a hop early). ``meta_like`` is a
``ModelMetadata`` or any object with ``sample_rate``, ``hop``, ``n_fft``, ``key_low``,
``n_keys`` and ``stems``.

Channels
--------
Channel 10 (0-based 9) is drums: notes are mapped onto the model's drum classes with
``instruments.DRUM_CLASS_OF`` (unmapped notes dropped). Other channels follow their current
program change (``instruments.stem_for_program``; program 0, piano, until one arrives). An
explicit channel map overrides both. Notes of stems the model does not predict (``other``)
and pitches outside ``[key_low, key_low + n_keys)`` are dropped. Note-on with velocity 0 is a
note-off; a note-off without a note-on is ignored; a second note-on of a held pitch on the
same channel ends the first note there; controllers 120 / 123 (all sound / notes off) end
every note of their channel; notes still on at the end of a file end at its last event.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from numbers import Integral
from typing import Any, Protocol

import mido
import numpy as np

from bridge.errors import InputError
from bridge.instruments import DEFAULT_STEMS, DRUM_CHANNEL, DRUM_CLASS_OF, KEY_LOW, N_KEYS, OTHER, stem_for_program

ChannelMap = dict[int, str]

_ALL_OFF_CONTROLLERS = (120, 123)
# Offset used for notes still held in the live score: later than any frame.
_HELD_OFFSET_SAMPLES = np.iinfo(np.int64).max // 4


class MetaLike(Protocol):
    """What the roll functions need of a ModelMetadata (read-only)."""

    @property
    def sample_rate(self) -> int: ...
    @property
    def hop(self) -> int: ...
    @property
    def n_fft(self) -> int: ...
    @property
    def key_low(self) -> int: ...
    @property
    def n_keys(self) -> int: ...
    @property
    def stems(self) -> tuple[str, ...]: ...


# --------------------------------------------------------------------------- channel map


def parse_channel_map(raw: Mapping[Any, Any], stems: Sequence[str] = DEFAULT_STEMS) -> ChannelMap:
    """Validate a user channel map with 1-based channels; return it with 0-based channels.

    ``raw`` maps channel numbers 1-16 (int or numeric string) to a stem of ``stems`` or
    ``"other"`` (notes dropped). Raises ``InputError`` naming the first bad entry.
    """
    if not isinstance(raw, Mapping):
        raise InputError(f"channel map must be a table of channel = stem, got {type(raw).__name__}")
    allowed = (*stems, OTHER)
    out: ChannelMap = {}
    for key, value in raw.items():
        try:
            if isinstance(key, bool) or isinstance(key, float):
                raise ValueError
            channel = int(str(key).strip())
        except ValueError:
            raise InputError(f"channel map entry {key!r}: channel must be a number 1-16") from None
        if not 1 <= channel <= 16:
            raise InputError(f"channel map entry {key!r}: channel must be 1-16, got {channel}")
        if not isinstance(value, str) or value not in allowed:
            raise InputError(f"channel map entry {key!r} = {value!r}: stem must be one of {', '.join(allowed)}")
        if channel - 1 in out:
            raise InputError(f"channel map entry {key!r}: channel {channel} is given twice")
        out[channel - 1] = value
    return out


# --------------------------------------------------------------------------- frame rule


def frame_time_samples(frame: Any, hop: int, n_fft: int) -> Any:
    """Model-rate sample time of the centre of ``frame`` (int or int array); may be negative."""
    return (frame + 1) * hop - n_fft // 2


def _frame_spans(
    on_samples: np.ndarray, off_samples: np.ndarray, hop: int, n_fft: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames ``[start, end)`` each note marks, and its onset frame; int64 arrays (n_notes,)."""
    c = n_fft // 2
    on = on_samples.astype(np.int64) + c
    off = off_samples.astype(np.int64) + c
    nearest = (2 * on + hop) // (2 * hop) - 1  # k with t_k nearest the onset (ties: later)
    end = -((-off) // hop) - 1  # first k with t_k >= offset
    # the onset frame is always marked (it is the first sounding frame or the one before it)
    return nearest, np.maximum(end, nearest + 1), nearest


def _flatten_notes(notes_per_stem: Sequence[Any], meta_like: MetaLike) -> tuple[np.ndarray, ...]:
    """Concatenate per-stem notes into (onset_samples, offset_samples, stem, key), in range only."""
    n_stems = len(meta_like.stems)
    if len(notes_per_stem) != n_stems:
        raise ValueError(f"notes_per_stem has {len(notes_per_stem)} entries, expected one per stem ({n_stems})")
    ons, offs, stem_idx, keys = [], [], [], []
    sr = float(meta_like.sample_rate)
    for s, notes in enumerate(notes_per_stem):
        a = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
        ok = np.isfinite(a[:, 0]) & (a[:, 3] > 0)
        key = np.rint(np.nan_to_num(a[:, 2], nan=-1.0)).astype(np.int64) - meta_like.key_low
        ok &= (key >= 0) & (key < meta_like.n_keys)
        a, key = a[ok], key[ok]
        on = np.rint(a[:, 0] * sr)
        off = np.where(np.isfinite(a[:, 1]), np.rint(np.nan_to_num(a[:, 1]) * sr), float(_HELD_OFFSET_SAMPLES))
        ons.append(on.astype(np.int64))
        offs.append(np.minimum(off, float(_HELD_OFFSET_SAMPLES)).astype(np.int64))
        stem_idx.append(np.full(len(a), s, dtype=np.int64))
        keys.append(key)
    return (np.concatenate(ons), np.concatenate(offs), np.concatenate(stem_idx), np.concatenate(keys))


def _fill_spans(
    start: np.ndarray,
    end: np.ndarray,
    stem_idx: np.ndarray,
    key_idx: np.ndarray,
    n_frames: int,
    n_stems: int,
    n_keys: int,
    first_frame: int,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Mark frames [start, end) (absolute) of each note in a (n_frames, n_stems, n_keys) roll."""
    if out is None:
        out = np.zeros((n_frames, n_stems, n_keys), dtype=np.float32)
    elif out.shape != (n_frames, n_stems, n_keys):
        raise ValueError(f"out has shape {out.shape}, expected {(n_frames, n_stems, n_keys)}")
    if n_frames == 0:
        return out
    lo = np.clip(start - first_frame, 0, n_frames)
    hi = np.clip(end - first_frame, 0, n_frames)
    keep = lo < hi
    if not keep.any():
        out[...] = 0.0
        return out
    cell = stem_idx[keep] * n_keys + key_idx[keep]
    n_cells = n_stems * n_keys
    size = (n_frames + 1) * n_cells
    diff = np.zeros(size, dtype=np.int32)
    np.add.at(diff, lo[keep] * n_cells + cell, 1)
    np.add.at(diff, hi[keep] * n_cells + cell, -1)
    counts = np.cumsum(diff.reshape(n_frames + 1, n_stems, n_keys)[:n_frames], axis=0, dtype=np.int32)
    np.greater(counts, 0, out=out, casting="unsafe")
    return out


def note_spans(notes_per_stem: Sequence[Any], meta_like: MetaLike) -> tuple[np.ndarray, ...]:
    """``(start_frame, end_frame, stem_index, key_index)`` int64 arrays (n_notes,): the frames
    ``[start, end)`` each note marks under the frame rule, for ``spans_to_roll``."""
    on, off, s, k = _flatten_notes(notes_per_stem, meta_like)
    start, end, _ = _frame_spans(on, off, meta_like.hop, meta_like.n_fft)
    return start, end, s, k


def spans_to_roll(
    spans: tuple[np.ndarray, ...], n_frames: int, meta_like: MetaLike, first_frame: int = 0
) -> np.ndarray:
    """``(n_frames, n_stems, n_keys)`` float32 roll of ``note_spans`` output for frames ``first_frame..``."""
    start, end, s, k = spans
    return _fill_spans(start, end, s, k, int(n_frames), len(meta_like.stems), meta_like.n_keys, int(first_frame))


def notes_to_roll(
    notes_per_stem: Sequence[Any], n_frames: int, meta_like: MetaLike, first_frame: int = 0
) -> np.ndarray:
    """Frame targets: ``(n_frames, n_stems, n_keys)`` float32 in {0, 1} for frames ``first_frame..``.

    ``notes_per_stem``: one array per stem of shape (n_notes, 4) ``[onset_s, offset_s,
    midi_pitch, velocity]``. See the module docstring for the frame rule. Pure numpy and
    vectorised over notes.
    """
    on, off, s, k = _flatten_notes(notes_per_stem, meta_like)
    start, end, _ = _frame_spans(on, off, meta_like.hop, meta_like.n_fft)
    return _fill_spans(start, end, s, k, int(n_frames), len(meta_like.stems), meta_like.n_keys, int(first_frame))


def onsets_to_roll(
    notes_per_stem: Sequence[Any], n_frames: int, meta_like: MetaLike, first_frame: int = 0
) -> np.ndarray:
    """Onset targets: ``(n_frames, n_stems, n_keys)`` float32, 1 at the frame whose centre is
    nearest each note's onset (ties: the later frame)."""
    on, off, s, k = _flatten_notes(notes_per_stem, meta_like)
    _, _, nearest = _frame_spans(on, off, meta_like.hop, meta_like.n_fft)
    return _fill_spans(
        nearest, nearest + 1, s, k, int(n_frames), len(meta_like.stems), meta_like.n_keys, int(first_frame)
    )


# --------------------------------------------------------------------------- note tracker


class _NoteTracker:
    """Channel messages -> notes per stem; time unit is the caller's (seconds or samples)."""

    def __init__(self, stems: Sequence[str], channel_map: Mapping[int, str] | None, key_low: int, n_keys: int):
        self.stems = tuple(stems)
        self.stem_index = {name: i for i, name in enumerate(self.stems)}
        self.channel_map = dict(channel_map or {})
        self.key_low = key_low
        self.key_high = key_low + n_keys  # exclusive
        self.reset()

    def reset(self) -> None:
        self.programs = [0] * 16
        # (channel, pitch) -> (stem index, mapped pitch, onset time, velocity)
        self.held: dict[tuple[int, int], tuple[int, int, float, int]] = {}
        # (stem index, onset, offset, mapped pitch, velocity)
        self.done: list[tuple[int, float, float, int, int]] = []

    def _stem_of(self, channel: int) -> str:
        if channel in self.channel_map:
            return self.channel_map[channel]
        if channel == DRUM_CHANNEL:
            return "drums"
        return stem_for_program(self.programs[channel])

    def note_off(self, t: float, channel: int, pitch: int) -> None:
        held = self.held.pop((channel, pitch), None)
        if held is not None:
            s, p, onset, vel = held
            self.done.append((s, onset, max(t, onset), p, vel))

    def note_on(self, t: float, channel: int, pitch: int, velocity: int) -> None:
        self.note_off(t, channel, pitch)
        if velocity == 0:
            return
        stem = self._stem_of(channel)
        s = self.stem_index.get(stem)
        if s is None:
            return
        mapped: int | None = DRUM_CLASS_OF.get(pitch) if stem == "drums" else pitch
        if mapped is None or not self.key_low <= mapped < self.key_high:
            return
        self.held[(channel, pitch)] = (s, mapped, t, velocity)

    def all_off(self, t: float, channel: int | None = None) -> None:
        for ch, pitch in [key for key in self.held if channel is None or key[0] == channel]:
            self.note_off(t, ch, pitch)

    def message(self, t: float, status: int, data1: int, data2: int) -> None:
        """Apply one channel message (status 0x80-0xEF, data bytes 0-127)."""
        kind, channel = status & 0xF0, status & 0x0F
        if kind == 0x90:
            self.note_on(t, channel, data1, data2)
        elif kind == 0x80:
            self.note_off(t, channel, data1)
        elif kind == 0xC0:
            self.programs[channel] = data1
        elif kind == 0xB0 and data1 in _ALL_OFF_CONTROLLERS:
            self.all_off(t, channel)


# --------------------------------------------------------------------------- files


def open_midi_file(path: str | os.PathLike[str]) -> mido.MidiFile:
    """A MIDI file parsed by mido, or ``InputError`` with one line naming the file when it is
    missing, empty, truncated, corrupt, not MIDI or SMPTE-timed."""
    name = os.fspath(path)
    try:
        if os.path.getsize(name) == 0:
            raise InputError(f"score file '{name}' is empty")
        mid = mido.MidiFile(name, clip=True)
        tpb = int(mid.ticks_per_beat)
        if tpb <= 0 or tpb >= 0x8000:
            raise InputError(
                f"score file '{name}' has an unsupported time division ({tpb}); SMPTE timing is not supported"
            )
        # decode every message now, so a corrupt event fails here with the file's name
        for track in mid.tracks:
            for _ in track:
                pass
        return mid
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"score file '{name}' does not exist") from None
    except IsADirectoryError:
        raise InputError(f"score file '{name}' is a directory") from None
    except MemoryError:
        raise InputError(f"score file '{name}' is not a readable MIDI file (too large)") from None
    except Exception as exc:  # mido raises many types (OSError, EOFError, ValueError, KeyError...)
        detail = str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__
        raise InputError(f"score file '{name}' is not a readable MIDI file: {detail}") from None


def meta_at_ticks(mid: mido.MidiFile, kind: str) -> list[tuple[int, mido.MetaMessage]]:
    """``(absolute tick, message)`` of every meta message of type ``kind`` in any track, by tick."""
    found: list[tuple[int, mido.MetaMessage]] = []
    for track in mid.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.is_meta and msg.type == kind:
                found.append((tick, msg))
    return sorted(found, key=lambda f: f[0])


def _tempo_changes(mid: mido.MidiFile) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ticks, tempo in us per beat, seconds at that tick) of every tempo segment."""
    changes = [(tick, int(msg.tempo)) for tick, msg in meta_at_ticks(mid, "set_tempo") if msg.tempo > 0]
    ticks, tempos, seconds = [0], [500000], [0.0]
    for tick, tempo in changes:
        if tick == ticks[-1]:
            tempos[-1] = tempo
            continue
        seconds.append(seconds[-1] + (tick - ticks[-1]) * tempos[-1] * 1e-6 / mid.ticks_per_beat)
        ticks.append(tick)
        tempos.append(tempo)
    return np.asarray(ticks, np.int64), np.asarray(tempos, np.float64), np.asarray(seconds)


def tick_seconds(mid: mido.MidiFile, ticks: np.ndarray) -> np.ndarray:
    """Absolute ticks -> seconds through the file's tempo map."""
    t, tempo, sec = _tempo_changes(mid)
    k = np.searchsorted(t, ticks, side="right") - 1
    return sec[k] + (ticks - t[k]) * tempo[k] * 1e-6 / mid.ticks_per_beat


def score_file_messages(path: str | os.PathLike[str]) -> list[tuple[float, mido.Message]]:
    """Channel messages of a MIDI file, tracks merged, as ``(time_s, message)`` in time order.

    The tempo map (``set_tempo`` in any track) is honoured. Raises ``InputError`` with one
    line naming the file when it is missing, empty, truncated, corrupt or not MIDI.
    """
    name = os.fspath(path)
    mid = open_midi_file(name)
    tpb = int(mid.ticks_per_beat)
    try:
        out: list[tuple[float, mido.Message]] = []
        tempo = 500000
        t_s = 0.0
        for msg in mido.merge_tracks(mid.tracks):
            if msg.time:
                t_s += mido.tick2second(msg.time, tpb, tempo)
            if msg.is_meta:
                if msg.type == "set_tempo" and msg.tempo > 0:
                    tempo = msg.tempo
                elif msg.type == "end_of_track":
                    out.append((t_s, msg))
                continue
            if msg.type in ("note_on", "note_off", "program_change", "control_change"):
                out.append((t_s, msg))
    except Exception as exc:
        detail = str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__
        raise InputError(f"score file '{name}' is not a readable MIDI file: {detail}") from None
    return out


def read_score_file(
    path: str | os.PathLike[str],
    stems: Sequence[str],
    channel_map: Mapping[int, str] | None = None,
    key_low: int = KEY_LOW,
    n_keys: int = N_KEYS,
) -> list[np.ndarray]:
    """Notes per stem of a MIDI file: a list (one per stem of ``stems``) of (n_notes, 4) float64
    arrays ``[onset_s, offset_s, midi_pitch, velocity]`` sorted by onset then pitch.

    ``channel_map`` ({channel_0_based: stem_name}, see ``parse_channel_map``) overrides the
    channel-10 and program-change rules. Raises ``InputError`` for an unreadable file.
    """
    messages = score_file_messages(path)
    tracker = _NoteTracker(stems, channel_map, key_low, n_keys)
    end_s = 0.0
    for t_s, msg in messages:
        end_s = max(end_s, t_s)
        if msg.is_meta:
            continue
        status, *data = msg.bytes()
        tracker.message(t_s, status, data[0], data[1] if len(data) > 1 else 0)
    tracker.all_off(end_s)
    per_stem: list[list[tuple[float, float, int, int]]] = [[] for _ in stems]
    for s, on, off, pitch, vel in tracker.done:
        per_stem[s].append((on, off, pitch, vel))
    out = []
    for notes in per_stem:
        a = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
        out.append(a[np.lexsort((a[:, 2], a[:, 0]))])
    return out


# --------------------------------------------------------------------------- live


_DATA_BYTES = {0x80: 2, 0x90: 2, 0xA0: 2, 0xB0: 2, 0xC0: 1, 0xD0: 1, 0xE0: 2}


class LiveScore:
    """Real-time score: raw MIDI messages in, piano-roll rows out, same rule as ``notes_to_roll``.

    Not thread-safe: call ``push`` and ``roll`` from one thread (e.g. the inference worker
    drains the MIDI queue, then asks for rows). Rows for frame ``k`` are final once every
    message up to sample ``t_k + hop // 2`` (half a hop after the frame centre, which the
    audio reaches before the frame is computed) has been pushed; a note still held is on at every
    later frame. ``first_frame`` should not go backwards between calls (``reset`` to restart):
    notes that end before the requested frames are forgotten.
    """

    def __init__(self, meta: MetaLike, channel_map: Mapping[int, str] | None = None):
        self.meta = meta
        self._n_stems = len(meta.stems)
        self._tracker = _NoteTracker(meta.stems, channel_map, meta.key_low, meta.n_keys)
        self._offset_samples = 0
        self._score_offset_ms = 0.0

    @property
    def score_offset_ms(self) -> float:
        """Shift applied to messages pushed from now on (ms; > 0 delays the score)."""
        return self._score_offset_ms

    @score_offset_ms.setter
    def score_offset_ms(self, value: float) -> None:
        value = float(value)
        if not math.isfinite(value):
            raise InputError(f"score offset must be a finite number of ms, got {value}")
        self._score_offset_ms = value
        self._offset_samples = round(value * self.meta.sample_rate / 1000.0)

    def reset(self) -> None:
        """Forget every held and finished note and every program change (keeps the offset)."""
        self._tracker.reset()

    def push(self, sample_index: int, message: bytes | bytearray | Sequence[int]) -> None:
        """Take one whole MIDI message stamped with its model-rate sample time.

        Note on/off, program change and all-notes-off are used; everything else (sysex,
        clock, other channel messages, malformed or out-of-range bytes) is ignored. Never raises.
        """
        try:
            n = len(message)
            if n < 2:
                return
            status = message[0]
            if not isinstance(status, Integral):
                return
            status = int(status)
            kind = status & 0xF0
            need = _DATA_BYTES.get(kind)
            if need is None or not 0x80 <= status <= 0xEF or n < 1 + need:
                return
            d1 = message[1]
            d2 = message[2] if need == 2 else 0
            if not (isinstance(d1, Integral) and isinstance(d2, Integral) and 0 <= d1 < 128 and 0 <= d2 < 128):
                return
            d1, d2 = int(d1), int(d2)
            t = int(sample_index) + self._offset_samples
            self._tracker.message(t, status, d1, d2)
        except (TypeError, ValueError, OverflowError, IndexError):
            return

    def roll(self, first_frame: int, n_frames: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows for frames ``first_frame .. first_frame + n_frames - 1``: (n_frames, n_stems, n_keys)
        float32, written into ``out`` when given (it must have that shape and dtype float32)."""
        start, end, s_idx, k_idx = self.spans(first_frame)
        meta = self.meta
        return _fill_spans(start, end, s_idx, k_idx, int(n_frames), self._n_stems, meta.n_keys, int(first_frame), out)

    def spans(self, first_frame: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``note_spans`` of every note that may still mark frame ``first_frame`` or later (held
        notes end far in the future); finished notes that end before it are forgotten."""
        meta, tracker = self.meta, self._tracker
        notes = tracker.done
        held = list(tracker.held.values())
        n = len(notes) + len(held)
        on = np.empty(n, dtype=np.int64)
        off = np.empty(n, dtype=np.int64)
        s_idx = np.empty(n, dtype=np.int64)
        k_idx = np.empty(n, dtype=np.int64)
        for i, (s, t_on, t_off, p, _) in enumerate(notes):
            on[i], off[i], s_idx[i], k_idx[i] = t_on, t_off, s, p
        for i, (s, p, t_on, _) in enumerate(held, start=len(notes)):
            on[i], off[i], s_idx[i], k_idx[i] = t_on, _HELD_OFFSET_SAMPLES, s, p
        k_idx -= meta.key_low
        start, end, _ = _frame_spans(on, off, meta.hop, meta.n_fft)
        if notes:
            # forget finished notes that end before the frames asked for
            keep = end[: len(notes)] > first_frame
            if not keep.all():
                tracker.done = [note for note, k in zip(notes, keep.tolist()) if k]
        return start, end, s_idx, k_idx
