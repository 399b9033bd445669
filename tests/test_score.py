"""Tests for bridge.score: MIDI score -> piano roll, offline and live."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import mido
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.errors import InputError
from bridge.score import (
    LiveScore,
    frame_time_samples,
    notes_to_roll,
    onsets_to_roll,
    parse_channel_map,
    read_score_file,
    score_file_messages,
)

STEMS = ("drums", "bass", "piano", "guitar", "strings")
SR, N_FFT, HOP = 16000, 1024, 256
META = SimpleNamespace(sample_rate=SR, n_fft=N_FFT, hop=HOP, key_low=21, n_keys=88, stems=STEMS)
DRUMS, BASS, PIANO, GUITAR, STRINGS = range(5)


def t_s(frame: int) -> float:
    return float(frame_time_samples(frame, HOP, N_FFT)) / SR


def notes(**per_stem: list[tuple[float, float, int, int]]) -> list[np.ndarray]:
    return [np.asarray(per_stem.get(s, []), dtype=np.float64).reshape(-1, 4) for s in STEMS]


# --------------------------------------------------------------------------- rolls


def test_frame_rule_held_and_short_notes() -> None:
    half = 0.5 * HOP / SR
    n = notes(
        piano=[
            (t_s(3), t_s(7), 60, 80),
            (t_s(3) + 2 / SR, t_s(7) + 2 / SR, 62, 80),  # onset frame 3, sounds at centres 4-7
            (t_s(3) + 0.6 * HOP / SR, t_s(7) + 0.6 * HOP / SR, 64, 80),  # onset frame 4, centres 4-7
        ],
        drums=[(t_s(10) + 0.4 * half * 2, t_s(10) + 0.45 * half * 2, 38, 100)],  # short, nearer frame 10
        bass=[(t_s(12) + 0.6 * half * 2, t_s(12) + 0.7 * half * 2, 40, 90)],  # short, nearer frame 13
        guitar=[(t_s(2), t_s(4), 50, 0)],  # velocity 0: ignored
        strings=[(t_s(1), t_s(5), 10, 90), (t_s(1), t_s(5), 120, 90)],  # out of range
    )
    roll = notes_to_roll(n, 20, META)
    assert roll.shape == (20, 5, 88) and roll.dtype == np.float32
    assert np.flatnonzero(roll[:, PIANO, 60 - 21]).tolist() == [3, 4, 5, 6]
    assert np.flatnonzero(roll[:, PIANO, 62 - 21]).tolist() == [3, 4, 5, 6, 7]
    assert np.flatnonzero(roll[:, PIANO, 64 - 21]).tolist() == [4, 5, 6, 7]
    assert np.flatnonzero(roll[:, DRUMS, 38 - 21]).tolist() == [10]
    assert np.flatnonzero(roll[:, BASS, 40 - 21]).tolist() == [13]
    assert roll.sum() == 4 + 5 + 4 + 1 + 1
    on = onsets_to_roll(n, 20, META)
    assert np.argwhere(on).tolist() == [[3, PIANO, 39], [3, PIANO, 41], [4, PIANO, 43], [10, DRUMS, 17], [13, BASS, 19]]


def test_roll_window_first_frame() -> None:
    n = notes(piano=[(t_s(3), t_s(30), 60, 80)])
    full = notes_to_roll(n, 40, META)
    np.testing.assert_array_equal(notes_to_roll(n, 10, META, first_frame=25), full[25:35])
    assert notes_to_roll(n, 0, META).shape == (0, 5, 88)
    with pytest.raises(ValueError):
        notes_to_roll(n[:2], 10, META)


def brute_force_roll(per: list[np.ndarray], n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    roll = np.zeros((n_frames, 5, 88), np.float32)
    onsets = np.zeros_like(roll)
    centres = frame_time_samples(np.arange(n_frames), HOP, N_FFT)
    for s, arr in enumerate(per):
        for on_s, off_s, pitch, vel in arr:
            on, off, j = round(on_s * SR), round(off_s * SR), int(pitch) - 21
            if vel <= 0 or not 0 <= j < 88:
                continue
            nearest = int(np.argmin(np.abs(centres - on) - 1e-3 * (centres >= on)))  # ties: later
            onsets[nearest, s, j] = 1
            roll[(centres >= on) & (centres < off), s, j] = 1
            roll[nearest, s, j] = 1
    return roll, onsets


def test_roll_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    n = 600
    on = rng.uniform(0, 3, n)
    dur = np.where(rng.random(n) < 0.3, rng.uniform(0, 0.02, n), rng.uniform(0, 0.5, n))
    arr = np.stack([on, on + dur, rng.integers(15, 115, n), rng.integers(-5, 128, n)], 1)
    per = [arr[i::5] for i in range(5)]
    n_frames = int(3.6 * SR / HOP)
    roll, onsets = brute_force_roll(per, n_frames)
    np.testing.assert_array_equal(notes_to_roll(per, n_frames, META), roll)
    np.testing.assert_array_equal(onsets_to_roll(per, n_frames, META), onsets)


def test_roll_many_notes() -> None:
    rng = np.random.default_rng(1)
    on = rng.uniform(0, 100, 10000)
    arr = np.stack([on, on + rng.uniform(0, 1, on.size), rng.integers(21, 109, on.size), np.full(on.size, 90)], 1)
    per = [arr[i::5] for i in range(5)]
    roll = notes_to_roll(per, 6300, META)
    onsets = onsets_to_roll(per, 6300, META)
    assert np.all(roll[onsets > 0] == 1)  # every onset frame is also a sounding frame


# --------------------------------------------------------------------------- files


def write_mid(path: Path, tracks: list[list[mido.Message | mido.MetaMessage]], tpb: int = 480) -> Path:
    mid = mido.MidiFile(type=1, ticks_per_beat=tpb)
    for msgs in tracks:
        tr = mido.MidiTrack()
        tr.extend(msgs)
        mid.tracks.append(tr)
    mid.save(path)
    return path


def example_file(path: Path) -> Path:
    M, Meta = mido.Message, mido.MetaMessage
    conductor = [Meta("set_tempo", tempo=500000, time=0), Meta("set_tempo", tempo=250000, time=960)]
    piano = [
        M("note_on", channel=0, note=60, velocity=80, time=0),
        M("note_off", channel=0, note=60, velocity=0, time=480),  # 0.5 s
        M("note_off", channel=0, note=61, velocity=0, time=0),  # off without on
        M("note_on", channel=0, note=64, velocity=70, time=0),
        M("note_on", channel=0, note=64, velocity=0, time=480),  # vel 0 = off at 1.0 s
        M("note_on", channel=0, note=67, velocity=60, time=0),  # 1.0 s
        M("note_on", channel=0, note=67, velocity=65, time=480),  # overlap: 1.25 s (fast tempo)
        M("note_off", channel=0, note=67, velocity=0, time=480),  # 1.5 s
        M("note_on", channel=0, note=10, velocity=65, time=0),  # out of range
        M("note_on", channel=0, note=72, velocity=50, time=0),  # never closed -> end
    ]
    bass_then_other = [
        M("program_change", channel=1, program=33, time=0),
        M("note_on", channel=1, note=40, velocity=90, time=0),
        M("program_change", channel=1, program=80, time=240),  # lead synth: other
        M("note_off", channel=1, note=40, time=240),  # still the bass note (0.5 s)
        M("note_on", channel=1, note=41, velocity=90, time=0),  # other: dropped
        M("note_off", channel=1, note=41, time=240),
    ]
    drums = [
        M("note_on", channel=9, note=35, velocity=100, time=0),  # -> kick 36
        M("note_off", channel=9, note=35, time=10),
        M("note_on", channel=9, note=81, velocity=100, time=0),  # unmapped: dropped
        M("note_off", channel=9, note=81, time=10),
    ]
    strings = [
        M("program_change", channel=3, program=48, time=0),
        M("note_on", channel=3, note=55, velocity=40, time=480),
        M("control_change", channel=3, control=123, value=0, time=480),  # all notes off at 1.0 s
        M("note_off", channel=3, note=55, time=480),  # 1.25 s: already off
        Meta("end_of_track", time=960),  # last event: 1.25 + 0.5 = 1.75 s
    ]
    return write_mid(path, [conductor, piano, bass_then_other, drums, strings])


def test_read_score_file(tmp_path: Path) -> None:
    per = read_score_file(example_file(tmp_path / "song.mid"), STEMS)
    assert len(per) == 5
    np.testing.assert_allclose(
        per[PIANO],
        [[0, 0.5, 60, 80], [0.5, 1.0, 64, 70], [1.0, 1.25, 67, 60], [1.25, 1.5, 67, 65], [1.5, 1.75, 72, 50]],
    )
    np.testing.assert_allclose(per[BASS], [[0, 0.5, 40, 90]])
    np.testing.assert_allclose(per[DRUMS], [[0, 10 / 960, 36, 100]])
    np.testing.assert_allclose(per[STRINGS], [[0.5, 1.0, 55, 40]])
    assert per[GUITAR].shape == (0, 4)


def test_read_score_file_channel_map_and_missing_stems(tmp_path: Path) -> None:
    path = example_file(tmp_path / "song.mid")
    per = read_score_file(path, STEMS, channel_map={0: "guitar", 9: "other", 1: "bass"})
    assert per[PIANO].shape == (0, 4) and per[DRUMS].shape == (0, 4)
    assert per[GUITAR].shape == (5, 4)
    assert per[BASS].shape == (2, 4)  # the whole channel is bass now
    per = read_score_file(path, ("piano", "bass"))
    assert [p.shape[0] for p in per] == [5, 1]


def test_parse_channel_map() -> None:
    assert parse_channel_map({"1": "piano", "10": "drums", 3: "other"}) == {0: "piano", 9: "drums", 2: "other"}
    for bad in ({"0": "piano"}, {"17": "piano"}, {"x": "piano"}, {"1": "vocals"}, {"1": 3}, {1.0: "piano"}):
        with pytest.raises(InputError):
            parse_channel_map(bad)
    with pytest.raises(InputError):
        parse_channel_map(["piano"])  # type: ignore[arg-type]
    with pytest.raises(InputError):
        parse_channel_map({"1": "piano", " 1": "bass"})


def test_bad_files_raise_input_error(tmp_path: Path) -> None:
    good = example_file(tmp_path / "good.mid").read_bytes()
    cases = {
        "empty.mid": b"",
        "text.mid": b"this is not a midi file\n" * 10,
        "truncated.mid": good[: len(good) // 2],
        "header_only.mid": good[:14],
        "bad_chunk.mid": good[:14] + b"MTrk\xff\xff\xff\xff",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(InputError) as err:
            read_score_file(tmp_path / name, STEMS)
        msg = str(err.value)
        assert name in msg and "\n" not in msg, msg
    with pytest.raises(InputError, match="does not exist"):
        read_score_file(tmp_path / "missing.mid", STEMS)
    with pytest.raises(InputError):
        read_score_file(tmp_path, STEMS)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_files_only_raise_input_error(tmp_path: Path, data: st.DataObject) -> None:
    path = tmp_path / "m.mid"
    if not (tmp_path / "good.mid").exists():
        example_file(tmp_path / "good.mid")
    buf = bytearray((tmp_path / "good.mid").read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        op = data.draw(st.sampled_from(["set", "del", "ins", "cut"]))
        i = data.draw(st.integers(0, max(0, len(buf) - 1)))
        if op == "set" and buf:
            buf[i] = data.draw(st.integers(0, 255))
        elif op == "del" and buf:
            del buf[i]
        elif op == "ins":
            buf[i:i] = data.draw(st.binary(min_size=1, max_size=4))
        else:
            buf = buf[:i]
    path.write_bytes(bytes(buf))
    try:
        per = read_score_file(path, STEMS)
    except InputError:
        return
    assert len(per) == 5
    for a in per:
        assert a.shape[1] == 4 and np.all(a[:, 1] >= a[:, 0])


# --------------------------------------------------------------------------- live


def live_roll_of_file(path: Path, n_frames: int, block: int, offset_ms: float = 0.0) -> np.ndarray:
    """Feed a file's messages into LiveScore as the engine would: block by block."""
    live = LiveScore(META)  # type: ignore[arg-type]
    live.score_offset_ms = offset_ms
    msgs = [(round(t * SR), m) for t, m in score_file_messages(path) if not m.is_meta]
    rows = []
    i = 0
    out = np.empty((block, 5, 88), np.float32)
    for first in range(0, n_frames, block):
        # what the engine knows: every message up to the end of the block's last frame
        end_sample = (first + block) * HOP
        while i < len(msgs) and msgs[i][0] + live._offset_samples < end_sample:
            live.push(msgs[i][0], msgs[i][1].bytes())
            i += 1
        rows.append(live.roll(first, block, out=out).copy())
    return np.concatenate(rows)[:n_frames]


@pytest.mark.parametrize("block", [1, 3, 16, 200])
def test_live_matches_offline(tmp_path: Path, block: int) -> None:
    path = example_file(tmp_path / "song.mid")
    n_frames = int(1.75 * SR / HOP)  # up to the last event (notes are closed there offline)
    offline = notes_to_roll(read_score_file(path, STEMS), n_frames, META)
    live = live_roll_of_file(path, n_frames, block)
    np.testing.assert_array_equal(live, offline)
    assert offline.sum() > 50


def test_live_matches_offline_random_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    msgs: list[mido.Message] = []
    for _ in range(400):
        ch = int(rng.choice([0, 1, 9, 4]))
        kind = rng.random()
        dt = int(rng.integers(0, 40))
        if kind < 0.05:
            msgs.append(mido.Message("program_change", channel=ch, program=int(rng.integers(0, 60)), time=dt))
        elif kind < 0.55:
            msgs.append(
                mido.Message(
                    "note_on", channel=ch, note=int(rng.integers(30, 90)), velocity=int(rng.integers(0, 128)), time=dt
                )
            )
        else:
            msgs.append(mido.Message("note_off", channel=ch, note=int(rng.integers(30, 90)), time=dt))
    path = write_mid(tmp_path / "r.mid", [[mido.MetaMessage("set_tempo", tempo=400000, time=0), *msgs]], tpb=96)
    last_s = score_file_messages(path)[-1][0]
    n_frames = int(last_s * SR / HOP)
    offline = notes_to_roll(read_score_file(path, STEMS), n_frames, META)
    assert offline.sum() > 100
    for block in (1, 7, 64):
        np.testing.assert_array_equal(live_roll_of_file(path, n_frames, block), offline)


def test_live_score_offset_and_reset() -> None:
    live = LiveScore(META)  # type: ignore[arg-type]
    live.score_offset_ms = 16.0  # one hop
    assert live.score_offset_ms == 16.0
    start = frame_time_samples(5, HOP, N_FFT)
    live.push(start, [0x90, 60, 100])
    live.push(start + 3 * HOP, bytes([0x80, 60, 0]))
    roll = live.roll(0, 12)
    assert np.flatnonzero(roll[:, PIANO, 39]).tolist() == [6, 7, 8]
    live.push(start, [0x99, 36, 100])  # drum held: on for every later frame
    assert np.flatnonzero(live.roll(0, 12)[:, DRUMS, 15]).tolist() == list(range(6, 12))
    live.reset()
    assert live.roll(0, 12).sum() == 0
    live.push(np.int64(start), np.array([0x92, 60, 100], dtype=np.uint8))  # numpy input works too
    live.push(start, [np.uint8(0xC2), np.uint8(33)])
    live.push(start, (0x92, 40, 100))
    assert live.roll(6, 1)[0, PIANO, 39] == 1 and live.roll(6, 1)[0, BASS, 19] == 1
    with pytest.raises(InputError):
        live.score_offset_ms = float("nan")


def test_live_ignores_garbage() -> None:
    live = LiveScore(META)  # type: ignore[arg-type]
    for msg in (
        [],
        [0xF0, 1, 2, 0xF7],
        [0xF8],
        [0x90, 200, 100],
        [0x90, 60],
        [60, 100, 100],
        [0xB0, 7, 100],
        [0x90, -1, 5],
        ["a", 1, 2],
        b"\x90",
        [0xE0, 0, 64],
        [0x90, 60, 100.0],
    ):
        live.push(100, msg)  # type: ignore[arg-type]
    assert live.roll(0, 10).sum() == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(-(2**40), 2**40), st.lists(st.integers(-300, 300), max_size=5)), max_size=30))
def test_live_push_never_raises(pushes: list[tuple[int, list[int]]]) -> None:
    live = LiveScore(META)  # type: ignore[arg-type]
    for sample, msg in pushes:
        live.push(sample, msg)
        live.push(sample, bytes(b & 0xFF for b in msg))
    roll = live.roll(0, 8)
    assert roll.shape == (8, 5, 88) and set(np.unique(roll)) <= {0.0, 1.0}
