"""Tests for bridge.midi_io: note events -> MIDI files and messages."""

from __future__ import annotations

from pathlib import Path

import mido
import numpy as np
import pretty_midi
import pytest

from bridge.instruments import DRUM_CLASSES, stem_channel
from bridge.metadata import ModelMetadata, expected_latency_samples, validate_metadata
from bridge.midi_io import TICKS_PER_BEAT, MemoryPort, event_to_message, write_notes_midi
from bridge.notes import NoteDecoder, NoteEvent, events_to_notes
from bridge.score import notes_to_roll, onsets_to_roll, read_score_file

STEMS = ("drums", "bass", "piano", "guitar", "strings")
SR, N_FFT, HOP = 16000, 1024, 256


def make_meta() -> ModelMetadata:
    return validate_metadata(
        {
            "schema_version": 1,
            "name": "test",
            "version": "0",
            "sample_rate": SR,
            "n_fft": N_FFT,
            "hop": HOP,
            "window": "hann",
            "stems": list(STEMS),
            "key_low": 21,
            "n_keys": 88,
            "active_keys": {s: list(DRUM_CLASSES) if s == "drums" else list(range(21, 109)) for s in STEMS},
            "lookahead_frames": 0,
            "latency_samples": expected_latency_samples(N_FFT, HOP, 0),
            "state_size": 0,
            "score_conditioned": False,
            "decode": {"onset_threshold": 0.5, "frame_threshold": 0.5, "min_note_ms": 0},
        }
    )


def t(frame: int) -> int:
    return (frame + 1) * HOP - N_FFT // 2


def test_file_layout(tmp_path: Path) -> None:
    events = [
        NoteEvent(t(10), 2, 60, 100, True),
        NoteEvent(t(20), 2, 60, 0, False),
        NoteEvent(t(12), 0, 36, 90, True),
        NoteEvent(t(14), 0, 36, 0, False),
        NoteEvent(t(15), 4, 55, 50, True),  # never closed: ends at the last event
        NoteEvent(t(25), 1, 28, 0, False),  # off without on: dropped
    ]
    path = tmp_path / "out.mid"
    write_notes_midi(path, events, STEMS, SR)
    mid = mido.MidiFile(path)
    assert mid.type == 1 and mid.ticks_per_beat == TICKS_PER_BEAT
    names = [next(m.name for m in tr if m.type == "track_name") for tr in mid.tracks]
    assert names == ["stembridge", *STEMS]
    for stem, track in zip(STEMS, mid.tracks[1:]):
        chans = {m.channel for m in track if not m.is_meta}
        assert chans == {stem_channel(stem, STEMS)}
        programs = [m.program for m in track if m.type == "program_change"]
        assert programs == ([] if stem == "drums" else [{"bass": 33, "piano": 0, "guitar": 25, "strings": 48}[stem]])
    assert stem_channel("drums", STEMS) == 9
    pm = pretty_midi.PrettyMIDI(str(path))
    by_name = {inst.name: inst for inst in pm.instruments}
    assert by_name["drums"].is_drum
    (piano_note,) = by_name["piano"].notes
    assert (piano_note.pitch, piano_note.velocity) == (60, 100)
    assert piano_note.start == pytest.approx(t(10) / SR, abs=1e-3)
    assert piano_note.end == pytest.approx(t(20) / SR, abs=1e-3)
    (strings_note,) = by_name["strings"].notes
    assert strings_note.end == pytest.approx(t(25) / SR, abs=1e-3)
    assert "bass" not in by_name  # pretty_midi skips tracks without notes
    assert [p.name for p in tmp_path.iterdir()] == ["out.mid"]  # no temp file left


def test_latency_shift_and_clip(tmp_path: Path) -> None:
    events = [NoteEvent(100, 1, 40, 80, True), NoteEvent(16100, 1, 40, 0, False), NoteEvent(8000, 1, 41, 80, True)]
    write_notes_midi(tmp_path / "a.mid", events, STEMS, SR, latency_samples=8000)
    per = read_score_file(tmp_path / "a.mid", STEMS)
    np.testing.assert_allclose(per[1], [[0.0, 0.50625, 40, 80], [0.0, 0.50625, 41, 80]], atol=1e-3)


def test_every_note_on_gets_an_off_even_at_time_zero(tmp_path: Path) -> None:
    events = [NoteEvent(-500, 2, 60, 80, True), NoteEvent(-400, 2, 60, 0, False)]
    write_notes_midi(tmp_path / "z.mid", events, STEMS, SR)
    msgs = [m for m in mido.MidiFile(tmp_path / "z.mid") if m.type in ("note_on", "note_off")]
    assert [m.type for m in msgs] == ["note_on", "note_off"]


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "keep.mid"
    path.write_bytes(b"old")

    def boom(self: mido.MidiFile, filename: object = None, file: object = None) -> None:
        file.write(b"half")  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    monkeypatch.setattr(mido.MidiFile, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        write_notes_midi(path, [NoteEvent(0, 1, 40, 80, True)], STEMS, SR)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.mid"]


def test_round_trip_notes_roll_decode_write_read(tmp_path: Path) -> None:
    meta = make_meta()
    per = [np.zeros((0, 4)) for _ in STEMS]
    per[0] = np.array([[0.5, 0.51, 36, 100], [1.0, 1.01, 38, 100], [1.5, 1.52, 42, 100]])
    per[1] = np.array([[0.25, 1.0, 40, 100], [1.25, 2.0, 43, 100]])
    per[2] = np.array([[0.5, 1.5, 60, 100], [0.5, 1.0, 64, 100], [1.0, 1.75, 67, 100]])
    per[4] = np.array([[0.1, 2.2, 55, 100]])
    n_frames = int(2.5 * SR / HOP)
    frame = notes_to_roll(per, n_frames, meta) * 0.9
    onset = onsets_to_roll(per, n_frames, meta) * 0.9
    dec = NoteDecoder(meta)
    events = []
    for a in range(0, n_frames, 13):
        events += dec.decode(a, frame[a : a + 13], onset[a : a + 13])
    events += dec.flush(n_frames)
    path = tmp_path / "rt.mid"
    write_notes_midi(path, events, STEMS, SR)
    got = read_score_file(path, STEMS)
    decoded = events_to_notes(events, SR, n_stems=len(STEMS))
    frame_s = HOP / SR
    for s in range(len(STEMS)):
        assert got[s].shape == per[s].shape, STEMS[s]
        want, have = per[s][np.lexsort((per[s][:, 2], per[s][:, 0]))], got[s]
        np.testing.assert_array_equal(have[:, 2], want[:, 2])
        np.testing.assert_allclose(have[:, 0], want[:, 0], atol=frame_s / 2 + 1e-3)
        if STEMS[s] == "drums":
            np.testing.assert_allclose(have[:, 1] - have[:, 0], 0.05, atol=frame_s + 1e-3)
        else:
            np.testing.assert_allclose(have[:, 1], want[:, 1], atol=frame_s + 1e-3)
        assert np.all(have[:, 3] == 114)  # round(127 * 0.9)
        np.testing.assert_allclose(have, decoded[s], atol=1e-3)
    pm = pretty_midi.PrettyMIDI(str(path))
    assert [i.name for i in pm.instruments] == [s for s, notes in zip(STEMS, per) if len(notes)]


def test_event_to_message_and_memory_port() -> None:
    port = MemoryPort()
    port.send(event_to_message(NoteEvent(0, 0, 36, 100, True), STEMS))
    port.send(event_to_message(NoteEvent(10, 2, 60, 0, False), STEMS))
    assert [(m.type, m.channel, m.note) for m in port.messages] == [("note_on", 9, 36), ("note_off", 1, 60)]
