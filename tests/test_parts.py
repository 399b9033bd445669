"""Score-informed parts (bridge.parts): real FluidSynth renders of two violins, the processor,
the score reader and the CLI (``separate --parts``, ``parts``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf

from bridge.cli import main
from bridge.parts.decompose import DecompositionSettings
from bridge.parts.processor import PartSpec, PartsProcessor, PartsSettings
from bridge.parts.score_parts import part_file_name, read_parts

SR = 44100
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
VIOLIN = 40
pytestmark = pytest.mark.skipif(
    not (shutil.which("fluidsynth") and SOUNDFONT.is_file()), reason="needs fluidsynth and FluidR3_GM"
)

# two violins: a high line and a low line that overlap in time (onset_s, offset_s, pitch)
HIGH = [(0.1 + 0.5 * i, 0.55 + 0.5 * i, p) for i, p in enumerate([79, 81, 83, 84, 83, 81, 79, 78])]
LOW = [(0.1 + 1.0 * i, 1.0 + 1.0 * i, p) for i, p in enumerate([55, 57, 59, 55])]


def write_midi(path: Path, parts: list[tuple[str, int, int, list[tuple[float, float, int]]]], mtype: int = 1) -> Path:
    """parts: (track name, channel 0-based, program, notes); 120 bpm, 480 ticks per beat."""
    mid = mido.MidiFile(type=mtype, ticks_per_beat=480)
    tracks = [mido.MidiTrack() for _ in range(1 if mtype == 0 else len(parts))]
    events: list[list[tuple[int, mido.Message]]] = [[] for _ in tracks]
    for i, (name, ch, program, notes) in enumerate(parts):
        t = 0 if mtype == 0 else i
        if name and mtype == 1:
            tracks[t].append(mido.MetaMessage("track_name", name=name, time=0))
        events[t].append((0, mido.Message("program_change", channel=ch, program=program)))
        for on, off, pitch in notes:
            events[t].append((round(on * 960), mido.Message("note_on", channel=ch, note=pitch, velocity=90)))
            events[t].append((round(off * 960), mido.Message("note_off", channel=ch, note=pitch, velocity=0)))
    for track, evs in zip(tracks, events):
        now = 0
        for tick, msg in sorted(evs, key=lambda e: (e[0], e[1].type == "note_on")):
            track.append(msg.copy(time=tick - now))
            now = tick
        mid.tracks.append(track)
    mid.save(str(path))
    return path


def render(path: Path, midi: Path, seconds: float, rate: int = SR, soundfont: Path = SOUNDFONT) -> np.ndarray:
    """FluidSynth render (n_samples,) mono float32 at ``rate``, cut or padded to ``seconds``."""
    wav = path.with_suffix(".wav")
    subprocess.run(
        ["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", str(rate), "-F", str(wav), str(soundfont), str(midi)],
        check=True,
        capture_output=True,
    )
    x, sr = sf.read(wav, dtype="float32", always_2d=True)
    assert sr == rate
    n = int(seconds * rate)
    x = x.mean(axis=1)[:n]
    return np.pad(x, (0, n - len(x)))


@pytest.fixture(scope="module")
def violins(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("violins")
    hi = render(d / "hi", write_midi(d / "hi.mid", [("Violin I", 0, VIOLIN, HIGH)]), 4.5)
    lo = render(d / "lo", write_midi(d / "lo.mid", [("Violin II", 1, VIOLIN, LOW)]), 4.5)
    mix = hi + lo
    sf.write(d / "mix.wav", np.stack([mix, mix], axis=1), SR, subtype="FLOAT")
    score = write_midi(d / "score.mid", [("Violin I", 0, VIOLIN, HIGH), ("Violin II", 1, VIOLIN, LOW)])
    return {"dir": d, "hi": hi, "lo": lo, "mix": mix, "score": score}


def notes_array(notes: list[tuple[float, float, int]]) -> np.ndarray:
    return np.asarray([(a, b, p, 90) for a, b, p in notes], np.float64).reshape(-1, 4)


def separate(
    mix: np.ndarray,
    notes: list[np.ndarray],
    block: int = 4096,
    n_channels: int = 1,
    settings: PartsSettings | None = None,
) -> np.ndarray:
    """Offline run of the processor, latency removed: (n_parts + 1, n_channels, n)."""
    proc = PartsProcessor([PartSpec(f"p{i}") for i in range(len(notes))], settings)
    proc.prepare(SR, block, n_channels)
    proc.set_part_notes(notes)
    x = np.tile(mix[None], (n_channels, 1)).astype(np.float32)
    lat = proc.latency_samples
    padded = np.concatenate([x, np.zeros((n_channels, lat), np.float32)], axis=1)
    out = np.concatenate([proc.process(padded[:, i : i + block]).stems for i in range(0, padded.shape[1], block)], 2)
    return out[:, :, lat : lat + x.shape[1]]


def own_over_other_db(est: np.ndarray, own: np.ndarray, other: np.ndarray) -> float:
    """Energy of ``est`` explained by ``own`` over that explained by ``other`` (least squares), dB."""
    basis = np.stack([own, other], axis=1).astype(np.float64)
    coef, *_ = np.linalg.lstsq(basis, est.astype(np.float64), rcond=None)
    e_own = coef[0] ** 2 * float(own @ own)
    e_other = coef[1] ** 2 * float(other @ other)
    return float(10 * np.log10(e_own / max(e_other, 1e-20)))


def test_each_violin_stem_holds_its_own_notes(violins: dict) -> None:
    out = separate(violins["mix"], [notes_array(HIGH), notes_array(LOW)])
    hi_db = own_over_other_db(out[0, 0], violins["hi"], violins["lo"])
    lo_db = own_over_other_db(out[1, 0], violins["lo"], violins["hi"])
    assert hi_db > 10.0, hi_db
    assert lo_db > 10.0, lo_db


def test_parts_and_residual_sum_to_the_input(violins: dict) -> None:
    out = separate(violins["mix"], [notes_array(HIGH), notes_array(LOW)], n_channels=2)
    np.testing.assert_allclose(out.sum(axis=0), np.tile(violins["mix"][None], (2, 1)), atol=1e-5)


def test_output_does_not_depend_on_block_size(violins: dict) -> None:
    notes = [notes_array(HIGH), notes_array(LOW)]
    a = separate(violins["mix"], notes, block=4096)
    b = separate(violins["mix"], notes, block=300)
    np.testing.assert_allclose(a, b, atol=1e-5)


def _run_blocks(
    mix: np.ndarray, notes: list[np.ndarray], sizes: list[int], settings: PartsSettings, change=None, max_block=None
):
    """The processor over ``mix`` (stereo) in blocks of ``sizes`` (cycled; prepared for ``max_block``, by
    default the largest), latency removed; ``change``: (call index, "midi" | "call"): part 1 turns to a
    percussive program within / before that call."""
    proc = PartsProcessor([PartSpec("p0"), PartSpec("p1")], settings)
    proc.prepare(SR, max_block or max(sizes), 2)
    proc.set_part_notes(notes)
    proc.set_live_channels({1: 1})
    x = np.tile(mix[None], (2, 1)).astype(np.float32)
    x = np.concatenate([x, np.zeros((2, proc.latency_samples + max(sizes)), np.float32)], axis=1)
    out, i, k = [], 0, 0
    while i < x.shape[1]:
        n = sizes[k % len(sizes)]
        midi = []
        if change is not None and k == change[0]:
            if change[1] == "midi":
                midi = [(0, bytes([0xC1, 115]))]
            else:
                proc.set_part_program(1, 115)
        out.append(proc.process(x[:, i : i + n], midi).stems)
        i, k = i + n, k + 1
    lat = proc.latency_samples
    return np.concatenate(out, axis=2)[:, :, lat : lat + mix.shape[0]], proc


@pytest.mark.parametrize(
    "sizes, change",
    [
        ([256], None),
        ([512], None),
        ([768], None),
        ([256, 0, 100, 0, 7, 256], None),
        ([256], (40, "midi")),
        ([256], (40, "call")),
        ([512], (20, "call")),
    ],
)
def test_frames_split_over_small_blocks_change_only_the_latency(violins: dict, sizes: list[int], change) -> None:
    """Blocks shorter than the hop: a frame's masks and synthesis, and a due template re-estimation,
    run in later calls than the one that decomposes it (``split_frames``): one block more latency,
    the same samples to the last bit once it is removed, whatever the block sizes, and with a part
    turned to drums by a program change in the call right after a frame (by MIDI or between calls)."""
    from dataclasses import replace

    notes = [notes_array(HIGH), notes_array(LOW)]
    fast = PartsSettings(decomposition=DecompositionSettings(update_every_frames=2))  # re-estimations in play
    split, proc = _run_blocks(violins["mix"], notes, sizes, fast, change)
    whole, _ = _run_blocks(violins["mix"], notes, sizes, replace(fast, split_frames=False), change)
    np.testing.assert_array_equal(split, whole)
    assert proc.latency_terms["synthesis_deferred"] == max(sizes) and proc.latency_samples == 4095 + max(sizes)
    if change is not None:
        assert proc.parts[1].is_drum


def test_a_decomposition_started_must_finish_first() -> None:
    """``start`` / ``finish`` come in pairs; a part's kind does not change between them."""
    from bridge.parts.decompose import DecompositionSettings, ScoreDecomposition

    decomp = ScoreDecomposition(SR, 4096, 1024, [False], DecompositionSettings())
    frame = (np.ones((1, 2049), np.float32), np.zeros((1, 1, 128), bool))
    with pytest.raises(RuntimeError, match="without start"):
        decomp.finish()
    decomp.start(*frame, 0, np.zeros((1, 1), bool))
    with pytest.raises(RuntimeError, match="finish"):
        decomp.start(*frame, 1, np.zeros((1, 1), bool))
    with pytest.raises(RuntimeError, match="finish"):
        decomp.set_drum(0, True)
    assert decomp.finish().shape == (1, 1, 2049)


def test_a_block_longer_than_announced_still_comes_out_in_time(violins: dict) -> None:
    """A block over ``max_block_size`` is synthesised at once (the latency has room for one announced
    block of split frames): fed 256-sample blocks with a 1000-sample one now and then, the parts
    equal the unsplit run's on the same blocks."""

    notes = [notes_array(HIGH), notes_array(LOW)]
    sizes = [256, 256, 256, 256, 1000]
    a, proc = _run_blocks(violins["mix"], notes, sizes, PartsSettings(), max_block=256)
    b, _ = _run_blocks(violins["mix"], notes, sizes, PartsSettings(split_frames=False), max_block=256)
    assert proc.latency_samples == 4095 + 256
    np.testing.assert_array_equal(a, b)


def test_forgetting_kept_apart_equals_forgetting_folded_in(violins: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """The template statistics' forgetting is kept as one factor and folded into them only once it
    falls below ``FOLD_BELOW``: with a 50 ms memory that happens about every 6 s, so these 4.5 s
    are decomposed with the factor kept apart; folded in at every segment instead (the statistics
    forgotten frame by frame, as before stop 27) the parts come out the same. A 15 ms memory folds
    about every 2 s and still keeps the violins apart; a memory so short that the factor
    underflows within one block forgets everything instead of failing."""
    import bridge.parts.decompose as decompose

    notes = [notes_array(HIGH), notes_array(LOW)]
    settings = PartsSettings(decomposition=DecompositionSettings(memory_s=0.05))
    apart = separate(violins["mix"], notes, settings=settings)
    monkeypatch.setattr(decompose, "FOLD_BELOW", 2.0)  # fold at every segment
    folded = separate(violins["mix"], notes, settings=settings)
    np.testing.assert_allclose(apart, folded, atol=1e-5)
    assert np.abs(apart - separate(violins["mix"], notes)).max() > 1e-3  # the memory matters here
    monkeypatch.undo()
    short = PartsSettings(decomposition=DecompositionSettings(memory_s=0.015))
    a = separate(violins["mix"], notes, block=4096, settings=short)
    np.testing.assert_allclose(a, separate(violins["mix"], notes, block=300, settings=short), atol=1e-5)
    assert own_over_other_db(a[0, 0], violins["hi"], violins["lo"]) > 10.0
    assert own_over_other_db(a[1, 0], violins["lo"], violins["hi"]) > 10.0
    tiny = separate(violins["mix"], notes, settings=PartsSettings(decomposition=DecompositionSettings(memory_s=1e-4)))
    assert np.isfinite(tiny).all()
    np.testing.assert_allclose(tiny.sum(axis=0)[0], violins["mix"], atol=1e-5)


def test_moving_a_phrase_moves_its_energy(violins: dict) -> None:
    """The high line's bar 2 (1.1-2.1 s) given to the low part in the score: the energy follows."""
    moved = [n for n in HIGH if 1.0 < n[0] < 2.0]
    kept = [n for n in HIGH if n not in moved]
    a = separate(violins["mix"], [notes_array(HIGH), notes_array(LOW)])
    b = separate(violins["mix"], [notes_array(kept), notes_array(LOW + moved)])
    window = slice(int(1.25 * SR), int(1.95 * SR))
    hi_truth = violins["hi"][window]

    def share(est: np.ndarray) -> float:  # how much of the high line's phrase this stem holds
        return float(est[window] @ hi_truth / (hi_truth @ hi_truth))

    assert share(a[0, 0]) > 0.7 and share(a[1, 0]) < 0.2
    assert share(b[1, 0]) > 0.7 and share(b[0, 0]) < 0.2


def test_a_part_without_notes_is_silent_there(violins: dict) -> None:
    """The low violin rests from 2.0 s on (score and audio): its stem is silent once the release
    tail ended, though the high line goes on playing pitches whose partials its old notes share.
    What keeps it silent is the part's level: without that test its old pitches' fundamentals
    find enough of the frame unexplained there (``unscored_f0_share`` alone is loose)."""
    d = violins["dir"]
    low_early = [n for n in LOW if n[1] <= 2.0]
    lo = render(d / "lo_early", write_midi(d / "lo_early.mid", [("Violin II", 1, VIOLIN, low_early)]), 4.5)
    mix = violins["hi"] + lo
    rest = slice(int(2.4 * SR), int(4.0 * SR))
    assert np.sqrt(np.mean(mix[rest] ** 2)) > 1e-3
    out = separate(mix, [notes_array(HIGH), notes_array(low_early)])
    assert np.max(np.abs(out[1, 0, rest])) == 0.0
    no_level = PartsSettings(decomposition=DecompositionSettings(unscored_level_share=0.0))
    out = separate(mix, [notes_array(HIGH), notes_array(low_early)], settings=no_level)
    assert np.max(np.abs(out[1, 0, rest])) > 0.0


def test_a_note_missing_from_the_score_stays_in_its_part(violins: dict) -> None:
    """Violin I's fifth note is left out of the score: in that rest its part may sound a pitch it
    played before, so the note lands in Violin I and not in Violin II (with the recovery off
    the note is lost to Violin I)."""
    gap = HIGH[4]
    score = [notes_array([n for n in HIGH if n != gap]), notes_array(LOW)]
    a, b = int((gap[0] + 0.05) * SR), int(gap[1] * SR)

    def energy_db(x: np.ndarray, ref: np.ndarray) -> float:
        return float(10 * np.log10(np.sum(x[a:b] ** 2) / np.sum(ref[a:b] ** 2)))

    for memory_s, want_low in ((10.0, True), (0.0, False)):
        settings = PartsSettings(decomposition=DecompositionSettings(unscored_memory_s=memory_s))
        out = separate(violins["mix"], score, settings=settings)
        held = energy_db(out[0, 0], violins["hi"])  # Violin I stem against Violin I's audio
        leak = energy_db(out[1, 0] - violins["lo"], violins["lo"])  # Violin II's error there
        if want_low:
            assert held > -6.0 and leak < -6.0, (held, leak)
        else:
            assert held < -15.0 and leak > -3.0, (held, leak)


def test_a_missing_new_pitch_a_step_from_the_line_stays_in_its_part(violins: dict) -> None:
    """Violin I's fourth note (84, a pitch it had not played, a semitone over the note before) is
    left out of the score: it is a candidate as a neighbour of the line's pitches, so it lands in
    Violin I (with ``unscored_semitones=0`` it does not)."""
    gap = HIGH[3]
    assert gap[2] not in [n[2] for n in HIGH[:3]]
    score = [notes_array([n for n in HIGH if n != gap]), notes_array(LOW)]
    a, b = int((gap[0] + 0.05) * SR), int(gap[1] * SR)

    def held_db(semitones: int) -> float:
        settings = PartsSettings(decomposition=DecompositionSettings(unscored_semitones=semitones))
        out = separate(violins["mix"], score, settings=settings)
        return float(10 * np.log10(np.sum(out[0, 0, a:b] ** 2) / np.sum(violins["hi"][a:b] ** 2)))

    with_neighbours, without = held_db(2), held_db(0)
    assert with_neighbours > -6.0 and without < with_neighbours - 6.0, (with_neighbours, without)


def test_a_missing_note_in_the_previous_notes_tail_stays_in_its_part(violins: dict) -> None:
    """Violin I's second note (81) is left out of the score: its first 0.1 s lies in the release
    tail of the note before (gates open for 79 only), where the part counts as resting for the
    candidates too, so the note's start lands in Violin I (without tail candidates, most of it
    does not: measured -2.1 against -8.1 dB)."""
    gap = HIGH[1]
    score = [notes_array([n for n in HIGH if n != gap]), notes_array(LOW)]
    a, b = int(gap[0] * SR), int((gap[0] + 0.1) * SR)

    def held_db(tail_f0_share: float) -> float:
        settings = PartsSettings(decomposition=DecompositionSettings(unscored_tail_f0_share=tail_f0_share))
        out = separate(violins["mix"], score, settings=settings)
        return float(10 * np.log10(np.sum(out[0, 0, a:b] ** 2) / np.sum(violins["hi"][a:b] ** 2)))

    with_tails, without = held_db(DecompositionSettings().unscored_tail_f0_share), held_db(float("inf"))
    assert with_tails > -4.0 and without < with_tails - 3.0, (with_tails, without)


def test_live_midi_gives_the_offline_stems(violins: dict) -> None:
    """The same score pushed as live MIDI (channel 1 -> part 0, channel 2 -> part 1) gives the same output."""
    notes = [notes_array(HIGH), notes_array(LOW)]
    offline = separate(violins["mix"], notes, block=512)
    proc = PartsProcessor([PartSpec("a"), PartSpec("b")])
    proc.prepare(SR, 512, 1)
    proc.set_live_channels({0: 0, 1: 1})
    events = []
    for ch, part in enumerate((HIGH, LOW)):
        for on, off, pitch in part:
            events.append((round(on * SR), bytes([0x90 | ch, pitch, 90])))
            events.append((round(off * SR), bytes([0x80 | ch, pitch, 0])))
    lat = proc.latency_samples
    x = np.concatenate([violins["mix"], np.zeros(lat, np.float32)])[None].astype(np.float32)
    blocks = []
    for i in range(0, x.shape[1], 512):
        due = [(t - i, m) for t, m in events if i <= t < i + 512]
        blocks.append(proc.process(x[:, i : i + 512], due).stems)
    live = np.concatenate(blocks, axis=2)[:, :, lat : lat + len(violins["mix"])]
    np.testing.assert_allclose(live, offline, atol=1e-5)


def test_release_tails_follow_the_parts_gm_family() -> None:
    """A pitched part's release tail is its GM family's (``FAMILY_RELEASE_S``), ``release_s`` where
    the program is not known or the table is off; a drum part keeps the drum table's."""
    from bridge.parts.processor import DRUM_RELEASE_S, FAMILY_RELEASE_S, release_frames, spec_of
    from bridge.parts.score_parts import ScorePart

    fps = SR / 1024
    specs = [
        PartSpec("bass", program=33),
        PartSpec("pad", program=89),
        PartSpec("unknown"),
        PartSpec("kit", True, True),
    ]
    rel = release_frames(specs, PartsSettings(), fps)
    assert FAMILY_RELEASE_S[4] != FAMILY_RELEASE_S[11]
    assert (rel[0] == round(FAMILY_RELEASE_S[4] * fps)).all() and (rel[1] == round(FAMILY_RELEASE_S[11] * fps)).all()
    assert (rel[2] == round(0.15 * fps)).all() and rel[3, 46] == round(DRUM_RELEASE_S[46] * fps)
    flat = release_frames(specs, PartsSettings(family_release_s=None), fps)
    assert (flat[:3] == round(0.15 * fps)).all() and (flat[3] == rel[3]).all()
    with pytest.raises(ValueError, match="16 tail lengths"):
        PartsSettings(family_release_s=(0.1, 0.2))
    empty = np.zeros((0, 4))
    assert spec_of(ScorePart("b", "b", 0, 0, 33, False, empty)) == PartSpec("b", program=33)
    assert spec_of(ScorePart("k", "k", 1, 9, 0, True, empty)) == PartSpec("k", True, True, None)
    assert spec_of(ScorePart("a", "a", 2, 2, 113, False, empty)) == PartSpec("a", True, False, 113)


def test_live_program_changes_set_the_parts_release_as_the_score_file_does(violins: dict) -> None:
    """Live MIDI: a program change on a part's channel gives the part that program's release tail
    (and a percussive program makes it a drum part), so the output equals the offline run of parts
    whose programs come from the score file; without the program changes it does not."""
    notes = [notes_array(HIGH), notes_array(LOW)]
    programs = (89, 0)  # a pad (0.3 s tails) and a piano (0.04 s)
    offline = PartsProcessor([PartSpec("a", program=programs[0]), PartSpec("b", program=programs[1])])
    offline.prepare(SR, 512, 1)
    offline.set_part_notes(notes)
    lat = offline.latency_samples
    x = np.concatenate([violins["mix"], np.zeros(lat, np.float32)])[None].astype(np.float32)

    def run(proc: PartsProcessor, events: list[tuple[int, bytes]]) -> np.ndarray:
        blocks = []
        for i in range(0, x.shape[1], 512):
            blocks.append(proc.process(x[:, i : i + 512], [(t - i, m) for t, m in events if i <= t < i + 512]).stems)
        return np.concatenate(blocks, axis=2)

    def live(with_programs: bool) -> np.ndarray:
        proc = PartsProcessor([PartSpec("a"), PartSpec("b")])
        proc.prepare(SR, 512, 1)
        proc.set_live_channels({0: 0, 1: 1})
        events = [(0, bytes([0xC0 | ch, prog])) for ch, prog in enumerate(programs)] if with_programs else []
        for ch, part in enumerate((HIGH, LOW)):
            for on, off, pitch in part:
                events += [
                    (round(on * SR), bytes([0x90 | ch, pitch, 90])),
                    (round(off * SR), bytes([0x80 | ch, pitch, 0])),
                ]
        out = run(proc, sorted(events, key=lambda e: e[0]))
        if with_programs:
            assert [p.program for p in proc.parts] == list(programs)
        return out

    want = run(offline, [])
    np.testing.assert_allclose(live(True), want, atol=1e-5)
    assert np.abs(live(False) - want).max() > 1e-3
    drum = PartsProcessor([PartSpec("a"), PartSpec("b")])
    drum.prepare(SR, 512, 1)
    drum.set_live_channels({0: 0, 1: 1})
    drum.process(x[:, :512], [(0, bytes([0xC1, 113]))])
    assert drum.parts[1].is_drum and drum.parts[1].program == 113 and not drum.parts[0].is_drum


# ---------------------------------------------------------------------- the score's parts


def test_part_names_follow_the_track_names(tmp_path: Path) -> None:
    path = write_midi(
        tmp_path / "s.mid",
        [
            ("Violin I", 0, 40, HIGH),
            ("Violin I", 1, 40, LOW),
            ("", 2, 71, LOW),
            ("residual", 3, 0, LOW),
            ("Kit", 9, 0, [(0.0, 0.1, 36)]),
        ],
    )
    parts = read_parts(path)
    assert [p.name for p in parts] == ["Violin_I", "Violin_I-2", "ch3-Clarinet", "residual-2", "Kit"]
    assert [p.channel for p in parts] == [0, 1, 2, 3, 9]
    assert [p.is_drum for p in parts] == [False, False, False, False, True]
    assert [p.n_notes for p in parts] == [len(HIGH), len(LOW), len(LOW), len(LOW), 1]
    np.testing.assert_allclose(parts[0].notes[:, :3], notes_array(HIGH)[:, :3], atol=1e-3)
    assert part_file_name("Flûte 1/2") == "Fl_te_1_2"


def test_type0_file_has_one_part_per_channel(tmp_path: Path) -> None:
    path = write_midi(tmp_path / "t0.mid", [("", 0, 40, HIGH), ("", 1, 42, LOW), ("", 9, 0, [(0.0, 0.1, 38)])], 0)
    parts = read_parts(path)
    assert [p.name for p in parts] == ["ch1-Violin", "ch2-Cello", "ch10-Drums"]
    assert [p.program for p in parts[:2]] == [40, 42]


# ---------------------------------------------------------------------- CLI


def test_separate_parts_writes_one_file_per_part(violins: dict, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert (
        main(
            [
                "separate",
                str(violins["dir"] / "mix.wav"),
                "--score",
                str(violins["score"]),
                "--parts",
                "-o",
                str(out),
                "-q",
            ]
        )
        == 0
    )
    folder = out / "mix"
    assert sorted(p.name for p in folder.iterdir()) == ["Violin_I.wav", "Violin_II.wav", "notes.mid", "residual.wav"]
    stems = [
        sf.read(folder / f"{n}.wav", dtype="float32", always_2d=True)[0] for n in ("Violin_I", "Violin_II", "residual")
    ]
    mix = sf.read(violins["dir"] / "mix.wav", dtype="float32", always_2d=True)[0]
    assert all(s.shape == mix.shape for s in stems)
    np.testing.assert_allclose(sum(stems), mix, atol=1e-5)
    mid = mido.MidiFile(str(folder / "notes.mid"))
    names = [next(m.name for m in t if m.type == "track_name") for t in mid.tracks[1:]]
    assert names == ["Violin_I", "Violin_II"]
    assert [sum(1 for m in t if m.type == "note_on") for t in mid.tracks[1:]] == [len(HIGH), len(LOW)]
    main(["parts", str(violins["score"])])
    listing = capsys.readouterr().out
    assert "Violin_I " in listing and "Violin_II" in listing and " 40 Violin" in listing


@pytest.mark.parametrize(
    ("score", "message"),
    [("empty", "has no notes"), ("garbage", "not a readable MIDI file"), (None, "--parts needs --score")],
)
def test_bad_scores_fail_in_one_line_and_write_nothing(
    violins: dict, tmp_path: Path, capsys, score: str | None, message: str
) -> None:
    args = ["separate", str(violins["dir"] / "mix.wav"), "--parts", "-o", str(tmp_path / "out"), "-q"]
    if score == "empty":
        args += ["--score", str(write_midi(tmp_path / "empty.mid", [("Violin", 0, 40, [])]))]
    elif score == "garbage":
        (tmp_path / "bad.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
        args += ["--score", str(tmp_path / "bad.mid")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("stembridge: error:") and message in err[0]
    assert not (tmp_path / "out").exists()


def test_class_stems_with_a_score_come_from_the_parts(violins: dict, tmp_path: Path) -> None:
    """Both violins are GM strings: with the score, ``strings`` holds both (the untrained test model
    alone could not); the class stems still sum to the input."""
    out = tmp_path / "out"
    args = ["separate", str(violins["dir"] / "mix.wav"), "--model", "test-tiny", "-o", str(out), "-q"]
    assert main([*args, "--score", str(violins["score"])]) == 0
    stems = {p.stem: sf.read(p, dtype="float32", always_2d=True)[0] for p in (out / "mix").glob("*.wav")}
    mix = sf.read(violins["dir"] / "mix.wav", dtype="float32", always_2d=True)[0]
    np.testing.assert_allclose(sum(stems.values()), mix, atol=1e-5)
    resid = mix - stems["strings"]
    assert 10 * np.log10(np.sum(mix**2) / np.sum(resid**2)) > 15.0
    assert main([*args, "--score", str(violins["score"]), "--class-stems-from", "network"]) == 0
    network = sf.read(out / "mix" / "strings.wav", dtype="float32", always_2d=True)[0]
    assert not np.allclose(network, stems["strings"], atol=1e-3)


def test_live_parts_config(tmp_path: Path) -> None:
    """``[parts]``: channels -> names (file-safe), low_latency, gains by part name; bad entries in one line."""
    from bridge.errors import InputError
    from bridge.live.config import load_config, parse_parts_option

    cfg = tmp_path / "p.toml"
    cfg.write_text('[parts]\nchannels = { "1" = "Violin I", "10" = "kit" }\nlow_latency = true\n[gain_db]\nkit = -6\n')
    c = load_config(cfg, (), parts_option="")
    assert c.parts == {0: "Violin_I", 9: "kit"} and c.parts_low_latency and c.gain_db == {"kit": -6.0}
    assert c.parts_kit_from == "network"  # the default
    cfg.write_text('[parts]\nkit_from = "score"\n')
    assert load_config(cfg, (), parts_option="").parts_kit_from == "score"
    assert parse_parts_option("1,2,10") == {0: "ch1", 1: "ch2", 9: "ch10"}
    proc = PartsProcessor([PartSpec("a")], PartsSettings(low_latency=True))
    proc.prepare(SR, 256, 2)
    assert proc.latency_samples == 2047 + 256  # the window, and a block: each frame is synthesised a block later
    assert proc.latency_terms["synthesis_deferred"] == 256
    proc.prepare(SR, 512, 2)  # a block as long as the hop: no deferral
    assert proc.latency_samples == 2047 and "synthesis_deferred" not in proc.latency_terms
    for bad, words in (
        ('[parts]\nchannels = { "17" = "x" }\n', "channel must be a number 1-16"),
        ('[parts]\nchannels = { "1" = "residual" }\n', "is taken"),
        ("[parts]\nlow_latency = 1\n", "low_latency must be true or false"),
        ('[parts]\nkit_from = "model"\n', 'kit_from must be "network" or "score"'),
        ('[parts]\nchannels = { "1" = "a" }\n[gain_db]\ndrums = 1\n', "unknown stem 'drums'"),
    ):
        cfg.write_text(bad)
        with pytest.raises(InputError, match=words):
            load_config(cfg, (), parts_option="")
    with pytest.raises(InputError, match="not a MIDI channel"):
        parse_parts_option("1,x")


# a bass over a drum kit (onset_s, offset_s, pitch), 6 s
BASS = [(0.25 * i, 0.25 * i + 0.22, (36, 43, 41, 38)[i // 4 % 4]) for i in range(24)]
KIT = [(0.5 * i, 0.5 * i + 0.1, 36 if i % 2 == 0 else 38) for i in range(12)]
KIT += [(0.25 * i, 0.25 * i + 0.05, 42) for i in range(24)]


@pytest.fixture(scope="module")
def bass_and_kit(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("bass_kit")
    score = write_midi(tmp / "score.mid", [("Bass", 0, 33, BASS), ("Drums", 9, 0, KIT)])
    b = render(tmp / "bass", write_midi(tmp / "b.mid", [("Bass", 0, 33, BASS)]), 6.0)
    d = render(tmp / "kit", write_midi(tmp / "d.mid", [("Drums", 9, 0, KIT)]), 6.0)
    mix = np.stack([b + d, b + d])
    sf.write(tmp / "mix.wav", mix.T, SR, subtype="FLOAT")
    return {"score": score, "bass": b, "kit": d, "mix": mix, "wav": tmp / "mix.wav"}


def test_class_stems_take_the_network_drums_out_before_the_parts(bass_and_kit: dict) -> None:
    """With the drums from the network alone (``model_stems``, as a transcription's parts take
    them), the network's drum stem is subtracted from the input the parts decompose
    (``ScoredClasses``' ``subtracted_stems``): the latencies add up, the stems still sum to the
    input, and the bass played over a drum kit comes out with far less of the kit in it than when
    the parts see the whole mix (at about the same SI-SDR: the network's drums keep a little of
    the bass)."""
    from bench.metrics import si_sdr
    from bridge.engine import Processor
    from bridge.model import OnnxModel
    from bridge.parts.classes import ScoredClasses, transcribed_parts_settings
    from bridge.parts.score_parts import read_parts

    b, d, mix = bass_and_kit["bass"], bass_and_kit["kit"], bass_and_kit["mix"]
    parts = read_parts(bass_and_kit["score"])

    def run(subtracted: tuple[str, ...]) -> tuple[np.ndarray, ScoredClasses]:
        settings = transcribed_parts_settings()
        sc = ScoredClasses(Processor(OnnxModel("band")), parts, ("drums",), settings, subtracted_stems=subtracted)
        sc.prepare(SR, 1024, 2)
        lat = sc.latency_samples
        x = np.concatenate([mix, np.zeros((2, lat + 1024), np.float32)], axis=1)
        out = np.concatenate([sc.process(x[:, i : i + 1024]).stems for i in range(0, x.shape[1], 1024)], axis=2)
        out = out[:, :, lat : lat + mix.shape[1]]
        np.testing.assert_allclose(out.sum(axis=0), mix, atol=1e-4)  # stems + other = input
        return out, sc

    cascade, sc = run(("drums",))
    side, sc0 = run(())
    assert sc.latency_samples == sc0.model.latency_samples + sc0._parts.latency_samples
    assert sc0.latency_samples == max(sc0.model.latency_samples, sc0._parts.latency_samples)
    bass_k = list(sc.stems).index("bass")
    sdr_cascade, sdr_side = (si_sdr(o[bass_k].mean(axis=0), b) for o in (cascade, side))
    leak_cascade, leak_side = (own_over_other_db(o[bass_k].mean(axis=0), b, d) for o in (cascade, side))
    # measured: the kit 25.3 dB under the bass in its stem against 17.4 dB; SI-SDR 11.6 against 12.0 dB
    assert leak_cascade > leak_side + 4.0, (leak_cascade, leak_side)
    assert sdr_cascade > sdr_side - 1.0, (sdr_cascade, sdr_side)


def test_separate_parts_takes_the_kit_from_the_network(bass_and_kit: dict, tmp_path: Path) -> None:
    """``separate --parts``: the channel-10 part is half the network's drums stem (``--kit-from
    network``, the default), the bass the score decomposition's; the files still sum to the input,
    and the kit comes out closer to the true kit than from the decomposition (``--kit-from score``)."""
    from bench.metrics import si_sdr

    mix, kit = bass_and_kit["mix"], bass_and_kit["kit"]
    args = ["separate", str(bass_and_kit["wav"]), "--score", str(bass_and_kit["score"]), "--parts", "-q"]
    got = {}
    for source in ("network", "score"):
        assert main([*args, "-o", str(tmp_path / source), "--kit-from", source]) == 0
        stems = {
            n: sf.read(tmp_path / source / "mix" / f"{n}.wav", dtype="float32")[0].T
            for n in ("Bass", "Drums", "residual")
        }
        np.testing.assert_allclose(sum(stems.values()), mix, atol=1e-4)
        got[source] = {
            n: si_sdr(v.mean(axis=0), kit if n == "Drums" else bass_and_kit["bass"])
            for n, v in stems.items()
            if n != "residual"
        }
    # measured: kit SI-SDR 3.79 dB (mean of both) against 2.72 (decomposition), 2.04 (network alone)
    assert got["network"]["Drums"] > got["score"]["Drums"] + 0.5, got
    assert abs(got["network"]["Bass"] - got["score"]["Bass"]) < 0.1, got  # the bass is the decomposition's either way


def test_network_kit_parts_follow_live_midi_and_any_block_size(bass_and_kit: dict) -> None:
    """``NetworkDrumParts`` gives the same output at any block size, and live (the score as MIDI on
    channels 1 and 10) the offline output; at 44.1 kHz its latency is the parts' (the network's is
    lower)."""
    from bridge.engine import Processor
    from bridge.parts.network_drums import NetworkDrumParts

    specs = [PartSpec("Bass"), PartSpec("Drums", is_drum=True, kit=True)]
    mix = bass_and_kit["mix"]

    def run(block: int, live: bool) -> np.ndarray:
        proc = NetworkDrumParts(specs, None, Processor("band"))
        proc.prepare(SR, block, 2)
        events: list[tuple[int, bytes]] = []
        if live:
            proc.set_live_channels({0: 0, 9: 1})
            for ch, part in ((0, BASS), (9, KIT)):
                for on, off, pitch in part:
                    events.append((round(on * SR), bytes([0x90 | ch, pitch, 90])))
                    events.append((round(off * SR), bytes([0x80 | ch, pitch, 0])))
        else:
            proc.set_part_notes([notes_array(BASS), notes_array(KIT)])
        lat = proc.latency_samples
        assert lat == proc._parts.latency_samples > proc.model.latency_samples
        x = np.concatenate([mix, np.zeros((2, lat), np.float32)], axis=1)
        out = []
        for i in range(0, x.shape[1], block):
            out.append(proc.process(x[:, i : i + block], [(t - i, m) for t, m in events if i <= t < i + block]).stems)
        return np.concatenate(out, axis=2)[:, :, lat : lat + mix.shape[1]]

    offline, blocks, live = run(4096, False), run(512, False), run(512, True)
    np.testing.assert_allclose(offline.sum(axis=0), mix, atol=1e-4)
    np.testing.assert_allclose(blocks, offline, atol=1e-4)
    np.testing.assert_allclose(live, offline, atol=1e-4)  # the network hears the kit's channel only, as offline


def test_class_stems_from_a_transcription_keep_neighbouring_pitches_and_family_tails_out() -> None:
    """Class stems from a score decompose with the settings of a user's parts (a part's neighbouring
    pitches as candidates for notes the score missed, release tails by GM family), offline and live;
    a transcription's parts (``separate`` without a score) with neither."""
    from bridge.engine import Processor
    from bridge.parts.classes import ScoredClasses, class_parts_settings, transcribed_parts_settings
    from bridge.parts.score_parts import ScorePart

    part = ScorePart("bass", "bass", 0, 0, 33, False, np.zeros((0, 4)))
    assert ScoredClasses(Processor("band"), [part]).settings == PartsSettings()
    assert ScoredClasses.live(Processor("band")).settings == PartsSettings()
    assert class_parts_settings(low_latency=True) == PartsSettings(low_latency=True)
    transcribed = transcribed_parts_settings(low_latency=True)
    assert transcribed.low_latency and transcribed.decomposition.unscored_semitones == 0
    assert transcribed.family_release_s is None and PartsSettings().decomposition.unscored_semitones == 2


def test_class_stems_from_the_parts_take_a_share_of_the_network(bass_and_kit: dict) -> None:
    """``ScoredClasses``' ``network_share``: a class stem from the parts is that blend of the
    parts' stem and the network's own (aligned: share 0.25 is exactly a quarter of the way from
    share 0 to share 1), and the stems still sum to the input (``other`` takes the rest)."""
    from bridge.engine import Processor
    from bridge.parts.classes import NETWORK_SHARE, ScoredClasses
    from bridge.parts.score_parts import read_parts

    assert set(NETWORK_SHARE) <= {"drums", "bass", "piano", "guitar", "strings"}
    mix = bass_and_kit["mix"]
    parts = read_parts(bass_and_kit["score"])

    def run(share: float) -> np.ndarray:
        sc = ScoredClasses(Processor("band"), parts, network_share={"bass": share})
        sc.prepare(SR, 2048, 2)
        lat = sc.latency_samples
        x = np.concatenate([mix, np.zeros((2, lat), np.float32)], axis=1)
        out = np.concatenate([sc.process(x[:, i : i + 2048]).stems for i in range(0, x.shape[1], 2048)], axis=2)
        out = out[:, :, lat : lat + mix.shape[1]]
        np.testing.assert_allclose(out.sum(axis=0), mix, atol=1e-4)
        return out

    bass_k = list(Processor("band").meta.stems).index("bass")
    none, quarter, whole = run(0.0), run(0.25), run(1.0)
    np.testing.assert_allclose(quarter[bass_k], 0.75 * none[bass_k] + 0.25 * whole[bass_k], atol=1e-5)
    assert not np.allclose(none[bass_k], whole[bass_k], atol=1e-3)


def prepared_classes(score: Path, block: int, **kwargs):
    """``ScoredClasses`` of the score file's parts on the band model, prepared at SR for ``block``-sample
    stereo blocks, the network given the same score; ``kwargs`` as ``ScoredClasses``'."""
    from bridge.engine import Processor
    from bridge.parts.classes import ScoredClasses
    from bridge.parts.score_parts import read_parts
    from bridge.score import read_score_file

    sc = ScoredClasses(Processor("band"), read_parts(score), **kwargs)
    sc.prepare(SR, block, 2)
    sc.set_score_notes(read_score_file(score, sc.meta.stems))
    return sc


def stream_classes(sc, mix: np.ndarray, block: int) -> tuple[np.ndarray, list[int]]:
    """``mix`` (2, n) through a prepared ``ScoredClasses`` in blocks (its latency in zeros after it):
    the stems with the latency cut off (n_stems, 2, n) and the note-on times in input samples."""
    lat = sc.latency_samples
    x = np.concatenate([mix, np.zeros((2, lat), np.float32)], axis=1)
    out, onsets = [], []
    for i in range(0, x.shape[1], block):
        r = sc.process(x[:, i : i + block])
        out.append(r.stems)
        onsets += [i + e.sample - lat for e in r.notes if e.velocity > 0]
    return np.concatenate(out, axis=2)[:, :, lat : lat + mix.shape[1]], onsets


def test_fused_class_stems_sum_to_the_input_at_any_block_size(bass_and_kit: dict) -> None:
    """``ScoredClasses``' ``fusion`` (what ``separate --score`` runs): the fused stems come a fusion
    window later (the parts' 4095 samples twice at 44.1 kHz), still sum to the input, do not depend
    on the block size (1e-4), and differ from the linear blend's; the notes come as late as the stems."""
    from bridge.engine import Processor
    from bridge.parts.fusion import FUSION_EXPONENT

    mix = bass_and_kit["mix"]

    def run(block: int, fusion: dict | None) -> tuple[np.ndarray, list[int]]:
        sc = prepared_classes(bass_and_kit["score"], block, fusion=fusion)
        lat = sc.latency_samples
        # blocks under the parts' hop: their synthesis a block later, but not before the fusion (its grid)
        assert lat == (8190 if fusion else 4095 + (block if block < 1024 else 0))
        assert sc.latency_terms.get("stem_fusion", 0) == (4095 if fusion else 0)
        stems, onsets = stream_classes(sc, mix, block)
        np.testing.assert_allclose(stems.sum(axis=0), mix, atol=1e-4)
        return stems, onsets

    fused, fused_onsets = run(2048, FUSION_EXPONENT)
    small, _ = run(512, FUSION_EXPONENT)
    linear, linear_onsets = run(2048, None)
    np.testing.assert_allclose(small, fused, atol=1e-4)
    bass_k = list(Processor("band").meta.stems).index("bass")
    assert not np.allclose(fused[bass_k], linear[bass_k], atol=1e-3)
    assert fused_onsets == linear_onsets and fused_onsets  # the same notes at the same output time


def test_remasked_class_stems_come_a_remask_window_later_and_still_sum_to_the_input(bass_and_kit: dict) -> None:
    """``ScoredClasses``' ``remask`` (the blind path's last stage): the stems come 16383 samples later at
    44.1 kHz, still sum to the input, do not depend on the block size, differ from the plain blend's, and
    the notes come as late as the stems; live parts refuse it, and a stem the model lacks is refused."""
    from bridge.engine import Processor
    from bridge.parts.classes import ScoredClasses
    from bridge.parts.score_parts import read_parts
    from bridge.transcribe import TRANSCRIBED_REMASK

    mix = bass_and_kit["mix"]
    parts = read_parts(bass_and_kit["score"])

    def run(block: int, remask: dict | None) -> tuple[np.ndarray, list[int]]:
        sc = prepared_classes(bass_and_kit["score"], block, remask=remask)
        lat = sc.latency_samples
        # blocks under the parts' hop delay the plain blend a block, never the re-masked stems (their grid)
        assert lat == (4095 + 16383 if remask else 4095 + (block if block < 1024 else 0))
        assert sc.latency_terms.get("stem_remask", 0) == (16383 if remask else 0)
        first, _ = stream_classes(sc, mix, block)
        sc.reset()  # a second stream after reset gives the same
        stems, onsets = stream_classes(sc, mix, block)
        np.testing.assert_allclose(stems, first, atol=1e-6)
        np.testing.assert_allclose(stems.sum(axis=0), mix, atol=1e-4)
        return stems, onsets

    remasked, remasked_onsets = run(2048, TRANSCRIBED_REMASK)
    small, _ = run(512, TRANSCRIBED_REMASK)  # under the parts' hop
    plain, plain_onsets = run(2048, None)
    np.testing.assert_allclose(small, remasked, atol=1e-4)
    bass_k = list(Processor("band").meta.stems).index("bass")
    assert not np.allclose(remasked[bass_k], plain[bass_k], atol=1e-3)
    assert remasked_onsets == plain_onsets and remasked_onsets
    with pytest.raises(ValueError, match="for files"):
        ScoredClasses.live(Processor("band"), remask=TRANSCRIBED_REMASK)
    with pytest.raises(ValueError, match="remask names stems"):
        ScoredClasses(Processor("band"), parts, remask={"violin": 0.5})


def test_the_network_alone_remasked_is_its_stems_through_the_remask_a_window_later(bass_and_kit: dict) -> None:
    """``RemaskedNetwork`` (``separate --class-stems-from network``'s last stage): exactly the plain
    network's stems through ``StemRemask``, 16383 samples later at 44.1 kHz, still summing to the input,
    independent of the block size and the same after reset; the notes come as late as the stems (the same
    note-ons as the plain network's); a stem the model lacks is refused."""
    from bridge.engine import Processor
    from bridge.parts.fusion import StemRemask, remask_size_for
    from bridge.remasked import RemaskedNetwork

    remask = {"bass": 0.75, "strings": 0.5}

    mix = bass_and_kit["mix"]
    plain = Processor("band")
    plain.prepare(SR, 2048, 2)
    net, net_onsets = stream_classes(plain, mix, 2048)

    def run(block: int) -> tuple[np.ndarray, list[int]]:
        rm = RemaskedNetwork(Processor("band"), remask)
        rm.prepare(SR, block, 2)
        assert rm.latency_samples == plain.latency_samples + 16383 and rm.latency_terms["stem_remask"] == 16383
        first, _ = stream_classes(rm, mix, block)
        rm.reset()
        stems, onsets = stream_classes(rm, mix, block)
        np.testing.assert_allclose(stems, first, atol=1e-6)
        np.testing.assert_allclose(stems.sum(axis=0), mix, atol=1e-4)
        return stems, onsets

    stems, onsets = run(2048)
    small, _ = run(512)
    np.testing.assert_allclose(small, stems, atol=1e-4)
    assert onsets == net_onsets and onsets
    powers = [remask.get(s, 1.0) for s in plain.stems]
    lat = plain.latency_samples + 16383  # the stage sees the network's output as it comes: its latency first
    stage = StemRemask(powers, *remask_size_for(SR), 2, mix.shape[1] + lat)
    late = np.zeros((len(powers), 2, mix.shape[1] + lat), np.float32)
    late[:, :, plain.latency_samples : plain.latency_samples + mix.shape[1]] = net
    expected = stage.process(late)[:, :, lat:]
    # but the last window, which the network's own output past the mix's end (cut from ``net``) reaches
    np.testing.assert_allclose(stems[:, :, :-16384], expected[:, :, :-16384], atol=1e-4)
    assert not np.allclose(stems, net, atol=1e-3)
    with pytest.raises(ValueError, match="remask names stems"):
        RemaskedNetwork(Processor("band"), {"violin": 0.5})


def test_the_kit_runner_survives_the_worker_spec_and_hears_only_the_kit() -> None:
    """``run --parts``' child process rebuilds ``NetworkDrumParts`` (same parts, kit and model)
    from ``worker_spec``; the network hears only the kit's channel live, and offline the kit's
    GM percussion keys mapped as a live score maps them (pedal hat 44 -> 42, side stick 37 -> 38;
    unmapped keys dropped)."""
    from bridge.engine import Processor
    from bridge.live.worker import build_processor, worker_spec
    from bridge.parts.network_drums import DRUMS, NetworkDrumParts, drum_classes

    proc = NetworkDrumParts([PartSpec("bass"), PartSpec("kit", True, True)], None, Processor("band"))
    proc.set_live_channels({0: 0, 9: 1})
    proc.prepare(SR, 256, 2)
    channel_map = proc.model.live_score_settings[0]
    assert channel_map is not None and channel_map[9] == DRUMS and set(channel_map) == set(range(16))
    assert not set(channel_map.values()) & (set(proc.model.meta.stems) - {DRUMS})
    child = build_processor(worker_spec(proc))
    assert isinstance(child, NetworkDrumParts) and child.drum_part == 1 and child.stems == proc.stems
    assert child.model.model.path == proc.model.model.path and child.part_of_channel == {0: 0, 9: 1}
    notes = np.array([[0.0, 0.1, 44, 90], [0.5, 0.6, 37, 90], [1.0, 1.1, 34, 90], [1.5, 1.6, 36, 90]])
    np.testing.assert_array_equal(drum_classes(notes)[:, 2], [42, 38, 36])


@pytest.mark.parametrize("fused", [False, True])
def test_class_stems_from_live_midi_parts_equal_the_offline_score(bass_and_kit: dict, fused: bool) -> None:
    """``ScoredClasses.live`` (``run --classes-from parts`` / ``fused``): one part per MIDI channel, its
    class from the channel's program change (bass) or channel 10 (drums), its notes from the MIDI
    pushed block by block, at score time as offline; the stems equal ``ScoredClasses`` given the
    score file (1e-4), and the worker spec rebuilds the live runner in the child, fusion included."""
    from bridge.engine import Processor
    from bridge.live.loopback import score_file_events
    from bridge.live.worker import build_processor, worker_spec
    from bridge.parts.classes import ScoredClasses
    from bridge.parts.fusion import FUSION_EXPONENT
    from bridge.parts.score_parts import read_parts
    from bridge.score import read_score_file

    mix, block = bass_and_kit["mix"], 1024
    fusion = FUSION_EXPONENT if fused else None
    offline = ScoredClasses(Processor("band"), read_parts(bass_and_kit["score"]), fusion=fusion)
    offline.prepare(SR, block, 2)
    offline.set_score_notes(read_score_file(bass_and_kit["score"], offline.meta.stems))
    live = ScoredClasses.live(Processor("band"), fusion=fusion)
    live.prepare(SR, block, 2)
    # side by side: the parts' latency (and the fusion's window after them)
    assert live.latency_samples == offline.latency_samples == (8190 if fused else 4095)
    lat = live.latency_samples
    x = np.concatenate([mix, np.zeros((2, lat + block), np.float32)], axis=1)
    events = score_file_events(bass_and_kit["score"], SR)
    a = np.concatenate([offline.process(x[:, i : i + block]).stems for i in range(0, x.shape[1], block)], axis=2)
    b = np.concatenate(
        [
            live.process(x[:, i : i + block], [(t - i, m) for t, m in events if i <= t < i + block]).stems
            for i in range(0, x.shape[1], block)
        ],
        axis=2,
    )
    bass_k = list(live.stems).index("bass")
    assert np.sqrt(np.mean(b[bass_k] ** 2)) > 0.01  # the bass part is heard, in the bass stem
    np.testing.assert_allclose(b, a, atol=1e-4)
    np.testing.assert_allclose(b[:, :, lat : lat + mix.shape[1]].sum(axis=0), mix, atol=1e-4)
    spec = worker_spec(live)
    child = build_processor(spec)
    assert isinstance(child, ScoredClasses) and child.is_live and child.latency_samples == lat
    assert child.fusion == fusion


def test_live_midi_parts_take_a_percussive_program_as_a_drum_part(tmp_path: Path) -> None:
    """A program change to a percussive GM program (Agogo, 113) makes that channel's live part a
    drum part, as ``spec_of`` files the score file's part: live equals offline (1e-4)."""
    from bridge.engine import Processor
    from bridge.live.loopback import score_file_events
    from bridge.parts.classes import ScoredClasses
    from bridge.parts.score_parts import read_parts
    from bridge.score import read_score_file

    agogo = [(0.5 * i + 0.1, 0.5 * i + 0.3, (67, 68)[i % 2]) for i in range(8)]
    score = write_midi(tmp_path / "score.mid", [("Bass", 0, 33, BASS[:16]), ("Agogo", 2, 113, agogo)])
    x = render(tmp_path / "mix", score, 4.5)
    x = np.stack([x, x])
    offline = ScoredClasses(Processor("band"), read_parts(score))
    offline.prepare(SR, 2048, 2)
    offline.set_score_notes(read_score_file(score, offline.meta.stems))
    live = ScoredClasses.live(Processor("band"))
    live.prepare(SR, 2048, 2)
    x = np.concatenate([x, np.zeros((2, live.latency_samples), np.float32)], axis=1)
    events = score_file_events(score, SR)
    a = np.concatenate([offline.process(x[:, i : i + 2048]).stems for i in range(0, x.shape[1], 2048)], axis=2)
    b = np.concatenate(
        [
            live.process(x[:, i : i + 2048], [(t - i, m) for t, m in events if i <= t < i + 2048]).stems
            for i in range(0, x.shape[1], 2048)
        ],
        axis=2,
    )
    assert live._parts.parts[2].is_drum and not live._parts.parts[0].is_drum
    np.testing.assert_allclose(b, a, atol=1e-4)
