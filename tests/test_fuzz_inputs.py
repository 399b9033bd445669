"""Property-based fuzzing of everything a user (or a crafted file) feeds stembridge.

Targets, each a strategy plus a ``check_*`` property that ``bench/fuzz.py`` reuses with many
more examples:

- ``audio``: ``open_audio`` + ``blocks`` on mutated WAV (PCM_16, FLOAT) and FLAC bytes (header
  fields overwritten with extreme values, truncation, byte edits, random bytes). Only
  ``InputError`` escapes; blocks have the announced shape; what the Processor makes of the
  decoded samples is finite.
- ``score_file``: ``read_score_file`` on MIDI files built byte by byte (running status, sysex,
  meta events, out-of-range data bytes, SMPTE division, note-off without note-on, 0-length
  notes), then mutated. Only ``InputError``; notes are in range with offset >= onset.
  (tests/test_score.py mutates a valid mido-written file; this covers the raw syntax.)
- ``live_stream``: a live MIDI byte stream (running status, sysex, real-time bytes inside
  messages, junk) split into messages three ways: ``split_stream`` (running status expanded,
  as ALSA / rtmidi deliver it), ``mido.Parser`` (which drops running-status data bytes) and
  raw chunks cut anywhere, each pushed into ``LiveScore.push``. Never raises; rows are 0/1; after all-notes-off
  on every channel no key stays on (no stuck notes).
- ``metadata``: ``validate_metadata`` on mutated and random dicts (as ONNX props strings or
  decoded). Only ``ModelError``; what passes round-trips.

And the converse, so a reader that refuses everything fails: valid WAV/FLAC files of every
subtype are accepted and decode to the samples written; type-0 and type-1 scores, with and
without running status, decode to the same notes per stem at the right times.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mido
import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.errors import InputError, ModelError
from bridge.metadata import ModelMetadata, metadata_to_props, validate_metadata
from bridge.model import MODELS_DIR
from bridge.score import LiveScore, read_score_file

STEMS = ("drums", "bass", "piano", "guitar", "strings")
_TMP = Path(tempfile.mkdtemp(prefix="stembridge-fuzz-"))
_MAX_BLOCKS = 8  # blocks read per fuzzed audio file


# --------------------------------------------------------------------------- audio


def _encode(x: np.ndarray, fmt: str, subtype: str, rate: int = 44100) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def _base_audio() -> list[bytes]:
    rng = np.random.default_rng(1)
    stereo = (0.4 * rng.standard_normal((300, 2))).astype(np.float32)
    return [
        _encode(stereo, "WAV", "PCM_16"),
        _encode(stereo[:, :1], "WAV", "FLOAT", 48000),
        _encode(stereo, "FLAC", "PCM_16"),
    ]


BASE_AUDIO = _base_audio()
_EXTREMES = [0, 1, 2, 3, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]

_audio_op = st.one_of(
    # a header field (the first 64 bytes hold RIFF/fmt/data sizes, FLAC STREAMINFO)
    st.tuples(
        st.just("field"),
        st.integers(0, 63),
        st.sampled_from([1, 2, 4]),
        st.one_of(st.sampled_from(_EXTREMES), st.integers(0, 2**32 - 1)),
    ),
    st.tuples(st.just("set"), st.integers(0, 2**16), st.integers(0, 255)),
    st.tuples(st.just("ins"), st.integers(0, 2**16), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("del"), st.integers(0, 2**16), st.integers(1, 64)),
    st.tuples(st.just("cut"), st.integers(0, 2**16)),
)
audio_bytes = st.one_of(
    st.tuples(st.integers(0, len(BASE_AUDIO) - 1), st.lists(_audio_op, min_size=1, max_size=6)).map(
        lambda t: _mutate_audio(BASE_AUDIO[t[0]], t[1])
    ),
    st.binary(max_size=512),
    # a valid header followed by random bytes
    st.tuples(st.integers(0, len(BASE_AUDIO) - 1), st.binary(max_size=256)).map(lambda t: BASE_AUDIO[t[0]][:44] + t[1]),
)


def _mutate_audio(data: bytes, ops: list[tuple]) -> bytes:
    buf = bytearray(data)
    for op in ops:
        n = max(len(buf), 1)
        if op[0] == "field":
            _, pos, width, value = op
            buf[pos : pos + width] = (value % (1 << (8 * width))).to_bytes(width, "little")
        elif op[0] == "set" and buf:
            buf[op[1] % n] = op[2]
        elif op[0] == "ins":
            i = op[1] % n
            buf[i:i] = op[2]
        elif op[0] == "del":
            i = op[1] % n
            del buf[i : i + op[2]]
        elif op[0] == "cut":
            buf = buf[: op[1] % n]
    return bytes(buf)


_processors: dict[int, Any] = {}


def _processor(n_channels: int) -> Any:
    """One prepared Processor per channel count (44.1 kHz), reused across examples."""
    if n_channels not in _processors:
        from bridge.engine import Processor
        from bridge.model import OnnxModel

        proc = Processor(OnnxModel("test-tiny"))
        proc.prepare(44100, 256, n_channels)
        _processors[n_channels] = proc
    return _processors[n_channels]


def check_audio(data: bytes) -> str:
    from bridge.audio_io import open_audio

    path = _TMP / "fuzz.audio"
    path.write_bytes(data)
    try:
        reader = open_audio(path)
    except InputError as e:
        assert "\n" not in str(e)
        return "rejected"
    try:
        assert 1000 <= reader.sample_rate <= 768000 and 1 <= reader.n_channels <= 64 and reader.n_samples > 0
        proc = _processor(reader.n_channels) if reader.n_channels <= 2 else None
        if proc is not None:
            proc.reset()
        for i, block in enumerate(reader.blocks(256)):
            assert block.dtype == np.float32 and block.shape[0] == reader.n_channels
            assert 0 < block.shape[1] <= 256
            if proc is not None:
                assert np.isfinite(proc.process(block).stems).all()
            if i + 1 >= _MAX_BLOCKS:
                break
    except InputError as e:
        assert "\n" not in str(e)
        return "rejected"
    finally:
        reader.close()
    return "accepted"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(audio_bytes)
def test_fuzz_audio_reader(data: bytes) -> None:
    check_audio(data)


def test_audio_corner_cases() -> None:
    """Directed cases the fuzzer might take long to find."""
    wav = bytearray(BASE_AUDIO[0])
    for pos, width, value in ((22, 2, 0), (22, 2, 65535), (24, 4, 0), (24, 4, 0xFFFFFFFF), (40, 4, 0xFFFFFFFF)):
        check_audio(_mutate_audio(bytes(wav), [("field", pos, width, value)]))
    check_audio(b"")
    check_audio(b"RIFF")
    check_audio(BASE_AUDIO[2][:42])  # FLAC STREAMINFO cut short


# The converse of the fuzzing: valid files of every WAV/FLAC subtype libsndfile writes are
# accepted and decoded to the samples written (within the subtype's quantisation step).
_BITS = {"PCM_U8": 8, "PCM_S8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "FLOAT": 24, "DOUBLE": 24}


@pytest.mark.parametrize(
    ("fmt", "subtype", "n_channels", "rate"),
    [
        ("WAV", "PCM_U8", 1, 8000),
        ("WAV", "PCM_16", 2, 44100),
        ("WAV", "PCM_24", 2, 48000),
        ("WAV", "PCM_32", 1, 96000),
        ("WAV", "FLOAT", 6, 44100),
        ("WAV", "DOUBLE", 2, 22050),
        ("FLAC", "PCM_S8", 1, 32000),
        ("FLAC", "PCM_16", 2, 44100),
        ("FLAC", "PCM_24", 2, 192000),
    ],
)
def test_valid_audio_of_every_subtype_is_accepted_and_decoded(fmt: str, subtype: str, n_channels: int, rate: int):
    from bridge.audio_io import open_audio

    n = 1500
    t = np.arange(n) / rate
    x = np.stack([0.8 * np.sin(2 * np.pi * (200 + 50 * c) * t + c) for c in range(n_channels)], axis=1)
    data = _encode(x.astype(np.float32), fmt, subtype, rate)
    assert check_audio(data) == "accepted"
    path = _TMP / f"valid.{fmt.lower()}"
    path.write_bytes(data)
    reader = open_audio(path)
    try:
        assert (reader.sample_rate, reader.n_channels, reader.n_samples) == (rate, n_channels, n)
        blocks = list(reader.blocks(256))
    finally:
        reader.close()
    assert [b.shape[1] for b in blocks] == [256] * (n // 256) + [n % 256]
    y = np.concatenate(blocks, axis=1)
    step = 2.0 ** -(_BITS[subtype] - 1)
    np.testing.assert_allclose(y, x.T, atol=step)


# --------------------------------------------------------------------------- score files


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


_data = st.one_of(st.integers(0, 127), st.integers(0, 255))  # mostly valid, sometimes not
_channel_event = st.tuples(
    st.sampled_from([0x80, 0x90, 0xB0, 0xC0, 0xE0, 0xA0, 0xD0]), st.integers(0, 15), _data, _data
)
_track_event = st.one_of(
    st.tuples(st.just("ch"), st.integers(0, 500), _channel_event, st.booleans()),  # bool: running status
    st.tuples(st.just("sysex"), st.integers(0, 500), st.binary(max_size=12), st.booleans()),
    st.tuples(
        st.just("meta"), st.integers(0, 500), st.sampled_from([0x2F, 0x51, 0x03, 0x58, 0x7F]), st.binary(max_size=6)
    ),
    st.tuples(st.just("raw"), st.integers(0, 500), st.binary(min_size=1, max_size=6), st.just(False)),
)


def _build_midi(division: int, fmt: int, tracks: list[list[tuple]]) -> bytes:
    out = bytearray(b"MThd" + (6).to_bytes(4, "big") + fmt.to_bytes(2, "big"))
    out += len(tracks).to_bytes(2, "big") + (division & 0xFFFF).to_bytes(2, "big")
    for events in tracks:
        body = bytearray()
        status = None
        for ev in events:
            body += _vlq(ev[1])
            if ev[0] == "ch":
                kind, ch, d1, d2 = ev[2]
                s = kind | ch
                if not (ev[3] and status == s):
                    body.append(s)
                body.append(d1)
                if kind not in (0xC0, 0xD0):
                    body.append(d2)
                status = s
            elif ev[0] == "sysex":
                payload = ev[2] + (b"\xf7" if ev[3] else b"")
                body += b"\xf0" + _vlq(len(payload)) + payload
                status = None
            elif ev[0] == "meta":
                body += bytes([0xFF, ev[2]]) + _vlq(len(ev[3])) + ev[3]
            else:
                body += ev[2]
        body += b"\x00\xff\x2f\x00"
        out += b"MTrk" + len(body).to_bytes(4, "big") + body
    return bytes(out)


score_bytes = st.tuples(
    st.one_of(st.sampled_from([96, 480, 960, 1, 0x7FFF]), st.integers(0, 0xFFFF)),
    st.sampled_from([0, 1, 2]),
    st.lists(st.lists(_track_event, max_size=40), min_size=1, max_size=3),
    st.lists(_audio_op, max_size=2),
).map(lambda t: _mutate_audio(_build_midi(t[0], t[1], t[2]), t[3]))


def check_score_file(data: bytes) -> str:
    path = _TMP / "fuzz.mid"
    path.write_bytes(data)
    try:
        per_stem = read_score_file(path, STEMS)
    except InputError as e:
        assert "\n" not in str(e)
        return "rejected"
    assert len(per_stem) == len(STEMS)
    for a in per_stem:
        assert a.ndim == 2 and a.shape[1] == 4 and np.isfinite(a).all()
        assert np.all(a[:, 0] >= 0) and np.all(a[:, 1] >= a[:, 0])
        assert np.all((a[:, 2] >= 21) & (a[:, 2] <= 108))
        assert np.all((a[:, 3] >= 1) & (a[:, 3] <= 127))
    return "accepted"


@settings(max_examples=200, deadline=None)
@given(score_bytes)
def test_fuzz_score_file(data: bytes) -> None:
    check_score_file(data)


def test_score_file_odd_but_valid_syntax() -> None:
    """Running status, a note-off without note-on, a 0-length note, out-of-range notes, sysex."""
    events = [
        ("ch", 0, (0x90, 0, 60, 100), False),
        ("ch", 0, (0x90, 0, 64, 100), True),  # running status
        ("sysex", 0, b"\x7e\x7f\x09\x01", True),
        ("ch", 0, (0x80, 0, 50, 0), False),  # off without on
        ("ch", 0, (0x90, 0, 70, 90), False),
        ("ch", 0, (0x80, 0, 70, 0), False),  # 0-length
        ("ch", 0, (0x90, 0, 127, 90), False),  # above the 88 keys: dropped
        ("ch", 0, (0x90, 0, 5, 90), False),  # below: dropped
        ("ch", 480, (0x80, 0, 60, 0), False),
        ("ch", 0, (0x90, 0, 64, 0), False),  # velocity-0 note-on as note-off
    ]
    path = _TMP / "odd.mid"
    path.write_bytes(_build_midi(480, 0, [events]))
    piano = read_score_file(path, STEMS)[STEMS.index("piano")]
    assert piano[:, 2].tolist() == [60, 64, 70]
    assert piano[2, 0] == piano[2, 1] == 0.0  # the 0-length note is kept, 0 long
    np.testing.assert_allclose(piano[:2, 1], 0.5)


def _notes(per_stem: list[np.ndarray], stem: str) -> list[tuple[float, float, int, int]]:
    return [(float(a), float(b), int(c), int(d)) for a, b, c, d in per_stem[STEMS.index(stem)]]


@pytest.mark.parametrize("running_status", [False, True])
def test_valid_type0_and_type1_scores_are_decoded(running_status: bool) -> None:
    """The same music as a type-0 file (one track) and a type-1 file (tempo track + one track
    per part), with and without running status: the same notes per stem, at the right times.
    Tempo 120 bpm at 480 ticks per beat: 480 ticks = 0.5 s."""
    rs = running_status
    tempo = ("meta", 0, 0x51, (500000).to_bytes(3, "big"))
    bass = [
        ("ch", 0, (0xC0, 1, 33, 0), False),  # channel 2: a bass program
        ("ch", 0, (0x90, 1, 40, 90), False),
        ("ch", 480, (0x90, 1, 40, 0), rs),  # note-on velocity 0 = note-off
        ("ch", 0, (0x90, 1, 43, 80), rs),
        ("ch", 240, (0x80, 1, 43, 0), False),
    ]
    drums = [("ch", 0, (0x99, 9, 36, 100), False), ("ch", 240, (0x89, 9, 36, 0), False)]
    piano = [("ch", 960, (0x90, 0, 60, 70), False), ("ch", 480, (0x90, 0, 60, 0), rs)]  # channel 1, no program: piano
    expected = {
        "bass": [(0.0, 0.5, 40, 90), (0.5, 0.75, 43, 80)],
        "drums": [(0.0, 0.25, 36, 100)],
        "piano": [(1.0, 1.5, 60, 70)],
        "guitar": [],
        "strings": [],
    }
    type1 = _build_midi(480, 1, [[tempo], bass, drums, piano])
    # type 0: the three parts merged in time order in one track (delta times recomputed)
    merged: list[tuple] = []
    for track in (bass, drums, piano):
        t = 0
        for ev in track:
            t += ev[1]
            merged.append((t, ev))
    merged.sort(key=lambda e: e[0])
    events, last = [tempo], 0
    for t, ev in merged:
        events.append((ev[0], t - last, ev[2], False))
        last = t
    type0 = _build_midi(480, 0, [events])
    for name, data in (("type0.mid", type0), ("type1.mid", type1)):
        assert check_score_file(data) == "accepted"
        path = _TMP / name
        path.write_bytes(data)
        per_stem = read_score_file(path, STEMS)
        for stem, notes in expected.items():
            got = _notes(per_stem, stem)
            assert len(got) == len(notes), (name, stem, got)
            np.testing.assert_allclose(np.array(got, float).reshape(-1, 4), np.array(notes, float).reshape(-1, 4))


# --------------------------------------------------------------------------- live streams


class _Meta:
    sample_rate, hop, n_fft, key_low, n_keys, stems = 44100, 512, 2048, 21, 88, STEMS


_N_DATA = {0x80: 2, 0x90: 2, 0xA0: 2, 0xB0: 2, 0xC0: 1, 0xD0: 1, 0xE0: 2}


def split_stream(data: bytes) -> list[bytes]:
    """A MIDI byte stream -> whole messages, running status expanded (what a driver hands on).

    Real-time bytes (0xF8-0xFF) may sit inside a message and leave it intact; sysex and system
    common messages cancel running status; data bytes without a status are dropped.
    """
    out: list[bytes] = []
    status: int | None = None
    msg: list[int] = []
    sysex: list[int] | None = None
    for b in data:
        if b >= 0xF8:
            out.append(bytes([b]))
        elif sysex is not None and b < 0x80:
            sysex.append(b)
        elif b == 0xF7:
            if sysex is not None:
                out.append(bytes([*sysex, b]))
            sysex, status, msg = None, None, []
        elif b >= 0x80:
            sysex = [b] if b == 0xF0 else None
            status = b if b < 0xF0 else None
            msg = []
        elif status is not None:
            msg = msg or [status]
            msg.append(b)
            if len(msg) == 1 + _N_DATA[status & 0xF0]:
                out.append(bytes(msg))
                msg = []
    return out


_stream_piece = st.one_of(
    st.tuples(st.sampled_from([0x80, 0x90, 0xB0, 0xC0, 0xE0]), st.integers(0, 15), _data, _data).map(
        lambda t: bytes([t[0] | t[1], t[2] & 0xFF, t[3] & 0xFF][: 2 if t[0] == 0xC0 else 3])
    ),
    st.tuples(st.integers(0, 127), st.integers(0, 127)).map(bytes),  # running-status data
    st.binary(max_size=10).map(lambda b: b"\xf0" + bytes(x & 0x7F for x in b) + b"\xf7"),  # sysex
    st.sampled_from([b"\xf8", b"\xfe", b"\xfa", b"\xfc", b"\xf7", b"\xf0"]),  # real-time / stray
    st.binary(min_size=1, max_size=4),
)
live_stream = st.tuples(
    st.lists(st.tuples(st.integers(0, 3000), _stream_piece), max_size=60),
    st.lists(st.integers(1, 7), min_size=1, max_size=8),
)


def check_live_stream(arg: tuple[list[tuple[int, bytes]], list[int]]) -> str:
    pieces, cuts = arg
    split, parsed, raw = (LiveScore(_Meta()) for _ in range(3))  # type: ignore[arg-type]
    parser = mido.Parser()
    t = 0
    stream = bytearray()
    pending = bytearray()
    for dt, piece in pieces:
        t += dt
        parser.feed(piece)
        for msg in parser:
            parsed.push(t, msg.bytes())
        pending += piece
        for m in split_stream(bytes(pending)):
            split.push(t, m)
        pending.clear()
        stream += piece
        # a naive backend: raw chunks of the stream as they come, cut anywhere
        i = 0
        while i < len(stream):
            n = cuts[i % len(cuts)]
            raw.push(t, bytes(stream[i : i + n]))
            i += n
        stream.clear()
    n_frames = t // _Meta.hop + 4
    for live in (split, parsed, raw):
        rows = live.roll(0, n_frames)
        assert rows.shape == (n_frames, 5, 88) and set(np.unique(rows)) <= {0.0, 1.0}
        end = t + 10 * _Meta.hop
        for ch in range(16):
            live.push(end, bytes([0xB0 | ch, 123, 0]))  # all notes off
        last = (end + _Meta.n_fft) // _Meta.hop + 2
        assert live.roll(last, 4).sum() == 0, "a note stayed on after all-notes-off"
    return "accepted"


@settings(max_examples=200, deadline=None)
@given(live_stream)
def test_fuzz_live_stream(arg: tuple[list[tuple[int, bytes]], list[int]]) -> None:
    check_live_stream(arg)


def test_live_zero_length_and_orphan_note_off() -> None:
    live = LiveScore(_Meta())  # type: ignore[arg-type]
    live.push(5000, b"\x80\x3c\x00")  # note-off without note-on: nothing
    assert live.roll(0, 20).sum() == 0
    live.push(5000, b"\x90\x3c\x64")
    live.push(5000, b"\x80\x3c\x00")  # 0-length: marks its onset frame only
    assert live.roll(0, 20).sum() == 1
    # running status across a clock byte; a sysex cancels it (0x42 then has no status)
    msgs = split_stream(b"\x91\x40\x64\xf8\x41\x64\xf0\x01\x02\xf7\x42\x64\x92\x43\x64\x44\x00")
    assert msgs == [b"\x91\x40\x64", b"\xf8", b"\x91\x41\x64", b"\xf0\x01\x02\xf7", b"\x92\x43\x64", b"\x92\x44\x00"]
    live.reset()
    for m in msgs:
        live.push(20000, m)
    rows = live.roll(0, 60)
    assert rows[:, STEMS.index("piano"), [0x40 - 21, 0x41 - 21]].all(axis=1).sum() > 10  # held notes
    assert rows[:, STEMS.index("piano"), 0x44 - 21].sum() == 0  # velocity 0 = note-off


# --------------------------------------------------------------------------- metadata


GOOD_META: dict[str, Any] = json.loads((MODELS_DIR / "test-tiny.json").read_text())
_json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
_meta_keys = st.sampled_from(sorted(GOOD_META) + ["decode.onset_threshold", "decode.min_note_ms", "active_keys.drums"])
_meta_op = st.one_of(
    st.tuples(st.just("del"), _meta_keys, st.none()),
    st.tuples(st.just("set"), _meta_keys, _json_value),
    st.tuples(st.just("str"), _meta_keys, st.text(max_size=12)),  # as a props string: often not JSON
    st.tuples(st.just("nudge"), _meta_keys, st.integers(-3, 3)),
)
metadata_dicts = st.one_of(
    st.tuples(st.lists(_meta_op, min_size=1, max_size=4), st.booleans()),
    st.dictionaries(st.text(max_size=10), _json_value, max_size=6).map(lambda d: ([("replace", "", d)], False)),
)


def _mutate_meta(ops: list[tuple], as_props: bool) -> Any:
    d = json.loads(json.dumps(GOOD_META))
    for op, key, value in ops:
        if op == "replace":
            return value
        parent, name = (d.get(key.split(".")[0]), key.split(".")[1]) if "." in key else (d, key)
        if not isinstance(parent, dict):
            continue
        if op == "del":
            parent.pop(name, None)
        elif op == "nudge" and isinstance(parent.get(name), (int, float)) and not isinstance(parent[name], bool):
            parent[name] = parent[name] + value
        elif op in ("set", "str"):
            parent[name] = value
    if as_props:
        try:
            return metadata_to_props(d)
        except (TypeError, ValueError):
            return d
    return d


def check_metadata(arg: tuple[list[tuple], bool]) -> str:
    raw = _mutate_meta(*arg)
    try:
        meta = validate_metadata(raw)
    except ModelError as e:
        assert "\n" not in str(e)
        return "rejected"
    assert isinstance(meta, ModelMetadata)
    props = metadata_to_props(meta.as_dict())
    assert metadata_to_props(validate_metadata(props).as_dict()) == props  # what is written reads back
    return "accepted"


@settings(max_examples=300, deadline=None)
@given(metadata_dicts)
def test_fuzz_metadata(arg: tuple[list[tuple], bool]) -> None:
    check_metadata(arg)


def test_metadata_deep_nesting_is_a_model_error() -> None:
    props = metadata_to_props(GOOD_META)
    props["stems"] = "[" * 100_000
    try:
        validate_metadata(props)
    except ModelError as e:
        assert "stems" in str(e)
    else:
        raise AssertionError("accepted")


# the bench (bench/fuzz.py) runs these with many more examples
TARGETS: dict[str, tuple[st.SearchStrategy[Any], Callable[[Any], str]]] = {
    "audio": (audio_bytes, check_audio),
    "score_file": (score_bytes, check_score_file),
    "live_stream": (live_stream, check_live_stream),
    "metadata": (metadata_dicts, check_metadata),
}
