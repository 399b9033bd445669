"""Tests for bridge.notes: probabilities -> note events."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.instruments import DRUM_CLASSES
from bridge.metadata import ModelMetadata, expected_latency_samples, validate_metadata
from bridge.notes import (
    SUSTAIN_FRACTION,
    NoteDecoder,
    NoteEvent,
    events_to_notes,
    onset_velocity,
    pair_events,
)

STEMS = ("drums", "bass", "piano", "guitar", "strings")
SR, N_FFT, HOP = 16000, 1024, 256
DRUMS, BASS, PIANO = 0, 1, 2


def make_meta(min_note_ms: float = 0.0, **over: object) -> ModelMetadata:
    raw = {
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
        "active_keys": {s: list(DRUM_CLASSES) if s == "drums" else list(range(28, 109)) for s in STEMS},
        "lookahead_frames": 0,
        "latency_samples": expected_latency_samples(N_FFT, HOP, 0),
        "state_size": 0,
        "score_conditioned": False,
        "decode": {"onset_threshold": 0.5, "frame_threshold": 0.4, "min_note_ms": min_note_ms},
    }
    raw.update(over)
    return validate_metadata(raw)


def t(frame: int) -> int:
    return (frame + 1) * HOP - N_FFT // 2


def probs(n_frames: int, notes: list[tuple[int, int, int, int, float]]) -> tuple[np.ndarray, np.ndarray]:
    """(frame, onset) probabilities with notes (stem, pitch, on_frame, off_frame, onset_p)."""
    frame = np.zeros((n_frames, len(STEMS), 88), np.float32)
    onset = np.zeros_like(frame)
    for s, pitch, a, b, p in notes:
        frame[a:b, s, pitch - 21] = 0.9
        onset[a, s, pitch - 21] = p
    return frame, onset


def test_known_notes_decode_exactly() -> None:
    frame, onset = probs(40, [(PIANO, 60, 3, 10, 0.8), (BASS, 40, 5, 30, 1.0), (PIANO, 64, 20, 25, 0.6)])
    ev = NoteDecoder(make_meta()).decode(0, frame, onset)
    assert ev == [
        NoteEvent(t(3), PIANO, 60, 102, True),
        NoteEvent(t(5), BASS, 40, 127, True),
        NoteEvent(t(10), PIANO, 60, 0, False),
        NoteEvent(t(20), PIANO, 64, 76, True),
        NoteEvent(t(25), PIANO, 64, 0, False),
        NoteEvent(t(30), BASS, 40, 0, False),
    ]
    assert t(0) < 0  # first frame centres are before the stream starts


def test_first_frame_offsets_times() -> None:
    frame, onset = probs(10, [(PIANO, 60, 2, 5, 0.8)])
    ev = NoteDecoder(make_meta()).decode(100, frame, onset)
    assert [e.sample for e in ev] == [t(102), t(105)]


FRAME_ONSETS = {"drums": 0.5, "bass": 0.5, "piano": 0.0, "guitar": 0.6, "strings": 0.3}


def with_frame_onsets(meta_raw_decode: dict | None = None, **kw: object) -> ModelMetadata:
    dec = {"onset_threshold": 0.5, "frame_threshold": 0.4, "min_note_ms": 0.0, "frame_onset_threshold": FRAME_ONSETS}
    dec.update(meta_raw_decode or {})
    return make_meta(decode=dec, **kw)


@pytest.mark.parametrize("frame_onsets", [False, True])
def test_split_invariance(frame_onsets: bool) -> None:
    rng = np.random.default_rng(1)
    n = 300
    onset = (rng.random((n, 5, 88)) ** 8).astype(np.float32)
    frame = np.clip(onset + rng.random((n, 5, 88)) ** 3, 0, 1).astype(np.float32)
    frame[rng.random(frame.shape) < 0.01] = np.nan
    meta = with_frame_onsets({"min_note_ms": 60.0}) if frame_onsets else make_meta(min_note_ms=60.0)
    whole = NoteDecoder(meta).decode(7, frame, onset)
    assert len(whole) > 100
    for seed in range(3):
        cuts = np.sort(rng.integers(0, n, size=20))
        dec = NoteDecoder(meta)
        parts: list[NoteEvent] = []
        for a, b in zip([0, *cuts], [*cuts, n]):
            parts += dec.decode(7 + int(a), frame[a:b], onset[a:b])
        parts += dec.decode(7 + n, frame[:0], onset[:0])
        assert parts == whole, seed


def test_events_sorted_and_paired() -> None:
    rng = np.random.default_rng(2)
    onset = (rng.random((200, 5, 88)) ** 6).astype(np.float32)
    frame = rng.random((200, 5, 88)).astype(np.float32)
    dec = NoteDecoder(make_meta(min_note_ms=30.0))
    ev = dec.decode(0, frame, onset) + dec.flush(200)
    samples = [e.sample for e in ev]
    assert samples == sorted(samples)
    n_on = sum(e.on for e in ev)
    assert n_on == sum(not e.on for e in ev) > 0
    # no note-on of an already sounding note without an off before it
    sounding: set[tuple[int, int]] = set()
    for e in ev:
        if e.on:
            assert (e.stem, e.note) not in sounding
            sounding.add((e.stem, e.note))
        else:
            sounding.remove((e.stem, e.note))
    assert not sounding


def test_flush_closes_held_notes_and_reset() -> None:
    frame, onset = probs(10, [(PIANO, 60, 2, 10, 0.8), (BASS, 33, 4, 10, 0.7)])
    dec = NoteDecoder(make_meta())
    ev = dec.decode(0, frame, onset)
    assert [e.on for e in ev] == [True, True]
    closed = dec.flush(10)
    assert sorted((e.stem, e.note, e.sample, e.on) for e in closed) == [
        (BASS, 33, t(10), False),
        (PIANO, 60, t(10), False),
    ]
    assert dec.flush(11) == []
    # after flush + reset a held-over plateau does not resume
    dec.reset()
    assert dec.decode(10, frame[-1:], onset[-1:]) == []


def test_nan_probabilities_are_zero() -> None:
    dec = NoteDecoder(make_meta())
    nan = np.full((5, 5, 88), np.nan, np.float32)
    assert dec.decode(0, nan, nan) == []
    frame, onset = probs(12, [(PIANO, 60, 1, 12, 0.8)])
    frame[6, PIANO, 39] = np.nan
    onset[8, PIANO, 39] = np.nan
    ev = dec.decode(5, frame, onset)
    assert [(e.sample, e.on) for e in ev] == [(t(6), True), (t(11), False)]


def test_minimum_length_delays_note_off() -> None:
    # 100 ms = 1600 samples = 6.25 hops -> off at the 7th frame after the onset
    frame, onset = probs(20, [(PIANO, 60, 2, 4, 0.8)])
    ev = NoteDecoder(make_meta(min_note_ms=100.0)).decode(0, frame, onset)
    assert [(e.sample, e.on) for e in ev] == [(t(2), True), (t(9), False)]
    assert t(9) - t(2) >= 1600 > t(8) - t(2)
    # a long note is not affected
    frame, onset = probs(20, [(PIANO, 60, 2, 15, 0.8)])
    ev = NoteDecoder(make_meta(min_note_ms=100.0)).decode(0, frame, onset)
    assert [(e.sample, e.on) for e in ev] == [(t(2), True), (t(15), False)]


def test_hysteresis_holds_through_dips() -> None:
    frame, onset = probs(20, [(PIANO, 60, 2, 15, 0.8)])
    thr = 0.4
    frame[5:8, PIANO, 39] = thr * SUSTAIN_FRACTION + 0.01  # below the threshold, above sustain
    ev = NoteDecoder(make_meta()).decode(0, frame, onset)
    assert [(e.sample, e.on) for e in ev] == [(t(2), True), (t(15), False)]
    # no note starts without enough frame probability
    frame[2, PIANO, 39] = 0.1
    assert NoteDecoder(make_meta()).decode(0, frame, onset) == []


def test_onset_plateau_triggers_once_and_reonset_retriggers() -> None:
    frame, onset = probs(30, [(PIANO, 60, 2, 25, 0.8)])
    onset[2:6, PIANO, 39] = 0.9  # plateau: one onset
    onset[12, PIANO, 39] = 0.7  # new onset while held: retrigger
    ev = NoteDecoder(make_meta()).decode(0, frame, onset)
    assert [(e.sample, e.on, e.velocity) for e in ev] == [
        (t(2), True, 114),
        (t(12), False, 0),
        (t(12), True, 89),
        (t(25), False, 0),
    ]


def test_reonset_within_minimum_length_is_ignored() -> None:
    frame, onset = probs(30, [(PIANO, 60, 2, 25, 0.8)])
    onset[4, PIANO, 39] = 0.9
    ev = NoteDecoder(make_meta(min_note_ms=100.0)).decode(0, frame, onset)
    assert [(e.sample, e.on) for e in ev] == [(t(2), True), (t(25), False)]


def test_drums_are_onset_only_with_fixed_length() -> None:
    frame = np.zeros((30, 5, 88), np.float32)
    onset = np.zeros_like(frame)
    onset[3, DRUMS, 36 - 21] = 0.9  # kick, no frame probability
    onset[4, DRUMS, 38 - 21] = 0.6
    onset[5, DRUMS, 38 - 21] = 0.2
    onset[6, DRUMS, 38 - 21] = 0.7  # second snare hit before the first one's off: retrigger
    onset[10, DRUMS, 40 - 21] = 0.9  # not a drum class: ignored
    frame[:, DRUMS, :] = 1.0  # frame probabilities play no role for drums
    ev = NoteDecoder(make_meta()).decode(0, frame, onset)
    n50 = int(np.ceil(0.05 * SR / HOP))  # 50 ms in hops
    assert [(e.sample, e.note, e.on) for e in ev] == [
        (t(3), 36, True),
        (t(4), 38, True),
        (t(6), 38, False),
        (t(6), 38, True),
        (t(3 + n50), 36, False),
        (t(6 + n50), 38, False),
    ]
    # with a longer minimum length the drum notes last that long
    ev = NoteDecoder(make_meta(min_note_ms=200.0)).decode(0, frame, onset)
    assert ev[-1] == NoteEvent(t(6 + int(np.ceil(0.2 * SR / HOP))), DRUMS, 38, 0, False)


def test_inactive_keys_are_silent() -> None:
    frame, onset = probs(10, [(PIANO, 22, 2, 8, 0.9), (PIANO, 60, 2, 8, 0.9)])
    ev = NoteDecoder(make_meta()).decode(0, frame, onset)
    assert {e.note for e in ev} == {60}


def test_zero_frames_and_bad_shapes() -> None:
    dec = NoteDecoder(make_meta())
    empty = np.zeros((0, 5, 88), np.float32)
    assert dec.decode(0, empty, empty) == []
    with pytest.raises(ValueError):
        dec.decode(0, np.zeros((3, 4, 88)), np.zeros((3, 4, 88)))


def test_velocity_mapping() -> None:
    assert onset_velocity(np.array([0.0, 0.5, 1.0, np.nan, 2.0])).tolist() == [1, 64, 127, 1, 127]


def test_events_to_notes_and_pairing() -> None:
    ev = [
        NoteEvent(100, 1, 40, 90, True),
        NoteEvent(300, 1, 40, 0, False),
        NoteEvent(50, 2, 60, 0, False),  # off without on: dropped
        NoteEvent(400, 2, 60, 70, True),
        NoteEvent(500, 2, 60, 80, True),  # re-on ends the first
        NoteEvent(800, 0, 36, 100, True),  # never closed: ends at the last event
    ]
    notes = events_to_notes(ev, 100.0, n_stems=5)
    assert len(notes) == 5 and notes[3].shape == (0, 4)
    np.testing.assert_allclose(notes[1], [[1.0, 3.0, 40, 90]])
    np.testing.assert_allclose(notes[2], [[4.0, 5.0, 60, 70], [5.0, 8.0, 60, 80]])
    np.testing.assert_allclose(notes[0], [[8.0, 8.0, 36, 100]])
    assert len(events_to_notes(ev, 100.0)) == 3
    assert len(pair_events(ev)) == 4


def test_frame_onsets_start_notes_the_onset_head_missed() -> None:
    frame, onset = probs(30, [(BASS, 40, 3, 10, 0.0), (PIANO, 60, 3, 10, 0.0), (BASS, 45, 12, 20, 0.8)])
    frame[:, DRUMS, 36 - 21] = np.where(np.arange(30) >= 5, 1.0, 0.0)  # drums ignore frame onsets
    assert [e.note for e in NoteDecoder(make_meta()).decode(0, frame, onset)] == [45, 45]
    ev = NoteDecoder(with_frame_onsets()).decode(0, frame, onset)
    assert ev == [
        NoteEvent(t(3), BASS, 40, 114, True),  # velocity from the frame probability 0.9
        NoteEvent(t(10), BASS, 40, 0, False),
        NoteEvent(t(12), BASS, 45, 114, True),  # onset and frame rise at once: one note
        NoteEvent(t(20), BASS, 45, 0, False),
    ]


def test_frame_onsets_do_not_restrike_held_notes() -> None:
    frame, onset = probs(30, [(BASS, 40, 2, 25, 0.8)])
    frame[8:10, BASS, 40 - 21] = 0.3  # below the frame-onset threshold, above sustain
    ev = NoteDecoder(with_frame_onsets()).decode(0, frame, onset)
    assert [(e.sample, e.on) for e in ev] == [(t(2), True), (t(25), False)]
    frame[8:10, BASS, 40 - 21] = 0.0  # the note ends; the frame rise at 10 starts a new one
    ev = NoteDecoder(with_frame_onsets()).decode(0, frame, onset)
    assert [(e.sample, e.on) for e in ev] == [(t(2), True), (t(8), False), (t(10), True), (t(25), False)]


@pytest.mark.parametrize("bad", [1.0, -0.1, "0.5", {"bass": 0.5}, float("nan")])
def test_frame_onset_threshold_is_validated(bad: object) -> None:
    from bridge.errors import ModelError

    with pytest.raises(ModelError, match="frame_onset_threshold"):
        with_frame_onsets({"frame_onset_threshold": bad})


def test_frame_onset_threshold_round_trips_and_is_optional() -> None:
    meta = with_frame_onsets()
    assert meta.frame_onset_threshold == FRAME_ONSETS
    assert validate_metadata(meta.as_dict()).frame_onset_threshold == FRAME_ONSETS
    assert make_meta().frame_onset_threshold == {}
    assert "frame_onset_threshold" not in make_meta().as_dict()["decode"]


def test_frame_onsets_never_start_below_the_start_threshold() -> None:
    frame, onset = probs(30, [(BASS, 40, 3, 20, 0.0)])
    frame[3:6, BASS, 40 - 21] = 0.25  # above a 0.1 frame-onset threshold, below start (0.75 * 0.4)
    dec = {"frame_onset_threshold": {**FRAME_ONSETS, "bass": 0.1}}
    ev = NoteDecoder(with_frame_onsets(dec)).decode(0, frame, onset)
    assert [(e.sample, e.on) for e in ev] == [(t(6), True), (t(20), False)]  # starts once start passes


def test_reset_forgets_frame_onset_history() -> None:
    frame, onset = probs(20, [(BASS, 40, 0, 20, 0.0)])
    dec = NoteDecoder(with_frame_onsets())
    first = dec.decode(0, frame[:10], onset[:10])
    assert [e.on for e in first] == [True]
    dec.flush(10)
    dec.reset()
    again = dec.decode(10, frame[10:], onset[10:])  # probability already high: a new stream's first frame rises
    assert [(e.sample, e.on) for e in again] == [(t(10), True)]
