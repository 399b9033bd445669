"""Score alignment (bridge.align): real FluidSynth renders of a tempo-warped performance, the DTW
core against a brute-force one, a wrong piece refused, and the CLI (``align``, ``separate --align``)."""

from __future__ import annotations

from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf
from test_parts import SR, render, write_midi
from test_parts import pytestmark as needs_fluidsynth

from bridge.align.core import align_notes
from bridge.align.dtw import dtw_band
from bridge.align.follow import ScoreFollower
from bridge.cli import main
from bridge.parts.score_parts import read_parts

SECONDS = 16.0
pytestmark = needs_fluidsynth


def _line(rng: np.random.Generator, low: int, high: int, beat_s: float, chords: bool) -> list[tuple[float, float, int]]:
    """A seeded line on a C major scale: (onset_s, offset_s, pitch), sometimes with a chord."""
    scale = [p for p in range(low, high + 1) if p % 12 in (0, 2, 4, 5, 7, 9, 11)]
    t, k, notes = 0.0, len(scale) // 2, []
    while t < SECONDS - 1.0:
        dur = beat_s * float(rng.choice([0.5, 1.0, 1.0, 2.0]))
        k = int(np.clip(k + rng.integers(-3, 4), 0, len(scale) - 1))
        pitches = {scale[k]} | ({scale[min(k + 2, len(scale) - 1)]} if chords and rng.random() < 0.3 else set())
        notes += [(t, t + 0.9 * dur, p) for p in sorted(pitches)]
        t += dur
    return notes


def _performed(notes: list[tuple[float, float, int]], rng: np.random.Generator) -> list[tuple[float, float, int]]:
    """Tempo drifting by +-20 %, a 1.5 s late start, +-10 ms jitter per note."""
    grid = np.linspace(0.0, SECONDS + 2.0, 2000)
    rate = 1.0 + 0.2 * np.sin(2 * np.pi * grid / 7.0 + 0.5)
    perf = np.concatenate([[0.0], np.cumsum(rate[1:] * np.diff(grid))]) + 1.5

    def warp(t: float) -> float:
        return float(np.interp(t, grid, perf))

    return [(warp(a) + float(rng.normal(0, 0.01)), warp(b), p) for a, b, p in notes]


@pytest.fixture(scope="module")
def piece(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A straight score (two named tracks) and a render of it played with expressive timing."""
    d = tmp_path_factory.mktemp("align")
    rng = np.random.default_rng(5)
    top, low = _line(rng, 67, 84, 0.5, False), _line(rng, 48, 64, 0.5, True)
    score = write_midi(d / "score.mid", [("Flute", 0, 73, top), ("Piano LH", 1, 0, low)])
    perf = [_performed(top, rng), _performed(low, rng)]
    perf_mid = write_midi(d / "perf.mid", [("Flute", 0, 73, perf[0]), ("Piano LH", 1, 0, perf[1])])
    mix = render(d / "perf", perf_mid, 1.5 * SECONDS)
    sf.write(d / "mix.wav", mix, SR, subtype="FLOAT")
    other_rng = np.random.default_rng(77)
    other = write_midi(
        d / "other.mid",
        [
            ("Flute", 0, 73, _line(other_rng, 67, 84, 0.4, False)),
            ("Piano LH", 1, 0, _line(other_rng, 48, 64, 0.4, True)),
        ],
    )
    return {"dir": d, "score": score, "other": other, "mix": mix, "top": top, "low": low, "perf": perf}


def test_dtw_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    for _ in range(10):
        n, m = (int(v) for v in rng.integers(2, 25, 2))
        cost = rng.random((n, m))
        best = np.full((n + 1, m + 1), np.inf)
        best[0, 0] = 0.0
        for i in range(1, n + 1):
            for j in range(1, m + 1):
                prev = 0.0 if i == j == 1 else min(best[i - 1, j], best[i, j - 1], best[i - 1, j - 1])
                best[i, j] = prev + cost[i - 1, j - 1]
        path, total = dtw_band(lambda i, a, b, c=cost: c[i, a:b], n, m, np.zeros(n, int), np.full(n, m))
        assert total == pytest.approx(best[n, m])
        assert cost[path[:, 0], path[:, 1]].sum() == pytest.approx(total)
        assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (n - 1, m - 1)


def test_a_tempo_warped_render_aligns_back_to_its_warp(piece: dict) -> None:
    notes = np.asarray([(a, b, p, 90) for a, b, p in piece["top"] + piece["low"]], np.float64)
    truth = np.asarray([a for a, _, _ in piece["perf"][0] + piece["perf"][1]])
    alignment = align_notes(piece["mix"], SR, notes)
    err = np.abs(alignment.warp(notes[:, 0]) - truth)
    assert alignment.reliable, alignment.confidence
    print(f"onset error median {1000 * np.median(err):.1f} ms, within 50 ms {np.mean(err < 0.05):.3f}")
    assert np.mean(err < 0.05) >= 0.9, (np.median(err), np.mean(err < 0.05))


def test_a_score_of_another_piece_is_refused_in_one_line(piece: dict, tmp_path: Path, capsys) -> None:
    out = tmp_path / "aligned.mid"
    assert main(["align", str(piece["dir"] / "mix.wav"), str(piece["other"]), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("stembridge: error:") and "does not match" in err[0], err
    assert not out.exists()


def test_cli_round_trip_keeps_tracks_names_and_programs(piece: dict, tmp_path: Path) -> None:
    out, plot = tmp_path / "aligned.mid", tmp_path / "path.png"
    assert main(["align", str(piece["dir"] / "mix.wav"), str(piece["score"]), "-o", str(out), "--plot", str(plot)]) == 0
    assert plot.stat().st_size > 10_000
    before, after = mido.MidiFile(str(piece["score"])), mido.MidiFile(str(out))
    assert len(after.tracks) == len(before.tracks)
    for a, b in zip(before.tracks, after.tracks):
        kept = [m.dict() | {"time": 0} for m in a if m.type != "set_tempo"]
        assert [m.dict() | {"time": 0} for m in b if m.type != "set_tempo"] == kept
    assert [m.tempo for t in after.tracks for m in t if m.type == "set_tempo"] == [mido.bpm2tempo(120)]
    parts, straight = read_parts(out), read_parts(piece["score"])
    assert [(p.name, p.channel, p.program) for p in parts] == [(p.name, p.channel, p.program) for p in straight]
    performed = np.sort([a for a, _, _ in piece["perf"][0]])
    assert np.mean(np.abs(parts[0].notes[:, 0] - performed) < 0.05) >= 0.85


def test_separate_align_writes_the_aligned_score_beside_the_stems(piece: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["separate", str(piece["dir"] / "mix.wav"), "--score", str(piece["score"]), "--parts", "--align"]
    assert main([*args, "-o", str(out), "-q"]) == 0
    folder = out / "mix"
    assert sorted(p.name for p in folder.iterdir()) == [
        "Flute.wav",
        "Piano_LH.wav",
        "aligned.mid",
        "notes.mid",
        "residual.wav",
    ]
    onsets = read_parts(folder / "notes.mid")[0].notes[:, 0]
    assert abs(onsets[0] - piece["perf"][0][0][0]) < 0.05


def test_separate_align_with_another_piece_falls_back_to_blind_stems(piece: dict, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    args = ["separate", str(piece["dir"] / "mix.wav"), "--score", str(piece["other"]), "--parts", "--align"]
    assert main([*args, "--model", "test-tiny", "-o", str(out), "-q"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("stembridge: warning:") and "blind class stems" in err[0]
    names = sorted(p.name for p in (out / "mix").iterdir())
    assert "aligned.mid" not in names and "other.wav" in names and "residual.wav" not in names


def _follow(score: Path, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, ScoreFollower]:
    """The live follower over ``x`` in 1000-sample blocks: (recording times, followed score
    positions) after each block, and the follower."""
    from bridge.align.core import score_notes

    follower = ScoreFollower(score_notes(read_parts(score)))
    follower.prepare(SR)
    times, positions = [], []
    for i in range(0, len(x), 1000):
        follower.process(x[i : i + 1000])
        times.append(follower.recording_s)
        positions.append(follower.position_s)
    return np.asarray(times), np.asarray(positions), follower


def test_the_live_follower_holds_through_a_stop_and_follows_after_it(piece: dict) -> None:
    """The render with 2 s of silence inserted at 8 s: the followed position does not move during
    the silence and is back on the performance a few seconds after it."""
    cut = int(8.0 * SR)
    x = np.concatenate([piece["mix"][:cut], np.zeros(2 * SR, np.float32), piece["mix"][cut:]])
    times_a, pos_a, _ = _follow(piece["score"], x)
    silent = (times_a > 8.3) & (times_a < 9.9)
    assert np.ptp(pos_a[silent]) < 0.05
    # after the stop: the score position each performed onset maps to, against the notated onset
    notes = np.asarray([(a, b, p, 90) for a, b, p in piece["top"] + piece["low"]], np.float64)
    performed = np.asarray([a for a, _, _ in piece["perf"][0] + piece["perf"][1]])
    performed = np.where(performed >= 8.0, performed + 2.0, performed)
    late = performed > 13.0
    err = np.abs(np.interp(performed[late], times_a, pos_a) - notes[late, 0])
    assert np.median(err) < 0.15, np.median(err)


def test_the_live_follower_moves_through_a_general_pause(piece: dict, tmp_path: Path) -> None:
    """Both parts rest for 2 s at score time 6 s: the follower moves through the silence with the
    score's rest instead of waiting there, and is on the performance right after it."""

    def with_pause(notes: list[tuple[float, float, int]]) -> list[tuple[float, float, int]]:
        out = [(a, min(b, 6.0), p) for a, b, p in notes if a < 5.9]
        return out + [(a + 2.0, b + 2.0, p) for a, b, p in notes if a >= 6.0]

    top, low = with_pause(piece["top"]), with_pause(piece["low"])
    rng = np.random.default_rng(9)
    perf = [_performed(top, rng), _performed(low, rng)]
    score = write_midi(tmp_path / "score.mid", [("Flute", 0, 73, top), ("Piano LH", 1, 0, low)])
    perf_mid = write_midi(tmp_path / "perf.mid", [("Flute", 0, 73, perf[0]), ("Piano LH", 1, 0, perf[1])])
    x = render(tmp_path / "perf", perf_mid, 1.5 * SECONDS)
    times, positions, _ = _follow(score, x)
    notated = np.asarray([a for a, _, _ in top + low])
    performed = np.asarray([a for a, _, _ in perf[0] + perf[1]])
    after = notated >= 8.0
    err = np.abs(np.interp(performed[after], times, positions) - notated[after])
    first = notated[after] < 10.0  # the first two seconds after the pause
    assert np.median(err[first]) < 0.1, np.median(err[first])
    assert np.median(err) < 0.1, np.median(err)


@pytest.mark.parametrize(
    ("name", "cut_s", "resume_s", "settle_s"), [("restart", 12.0, 0.0, 8.0), ("skip", 7.0, 11.0, 2.0)]
)
def test_the_live_follower_finds_the_player_after_a_restart_or_a_skip(
    piece: dict, name: str, cut_s: float, resume_s: float, settle_s: float
) -> None:
    """The performance cut at ``cut_s`` and resumed from its ``resume_s`` (back to the top, or 4 s
    further on): ``settle_s`` after the cut the follower is back on the performance."""
    mix = piece["mix"]
    x = np.concatenate([mix[: int(cut_s * SR)], mix[int(resume_s * SR) :]])
    times, positions, follower = _follow(piece["score"], x)
    notated = np.asarray([a for a, _, _ in piece["top"] + piece["low"]])
    performed = np.asarray([a for a, _, _ in piece["perf"][0] + piece["perf"][1]])
    heard = performed - resume_s + cut_s  # when each onset of the resumed part is heard
    late = (performed >= resume_s) & (heard >= cut_s + settle_s)
    err = np.abs(np.interp(heard[late], times, positions) - notated[late])
    assert follower.n_relocations >= 1
    assert late.sum() > 10 and np.median(err) < 0.15, (name, np.median(err))


def test_the_score_meter_reads_bars_and_beats_through_tempo_and_signature_changes(tmp_path: Path) -> None:
    """3/4 at 60 bpm for two bars (6 s), then 6/8 (a bar of six eighths = 3 s)."""
    from bridge.align.meter import ScoreMeter

    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("time_signature", numerator=3, denominator=4, time=0))
    track.append(mido.MetaMessage("set_tempo", tempo=1_000_000, time=0))
    track.append(mido.Message("note_on", note=60, velocity=90, time=0))
    track.append(mido.MetaMessage("time_signature", numerator=6, denominator=8, time=480 * 6))
    track.append(mido.Message("note_off", note=60, velocity=0, time=480 * 6))
    mid.save(tmp_path / "m.mid")
    meter = ScoreMeter.from_midi(tmp_path / "m.mid")
    expected = {
        -1.0: (1, 1.0),
        1.0: (1, 2.0),
        2.5: (1, 3.5),
        3.0: (2, 1.0),
        6.0: (3, 1.0),
        6.5: (3, 2.0),
        9.25: (4, 1.5),
    }
    for t_s, (bar, beat) in expected.items():
        got = meter.bar_beat(t_s)
        assert got[0] == bar and got[1] == pytest.approx(beat), (t_s, got)
