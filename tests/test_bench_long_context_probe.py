"""bench/long_context_probe.py: the long-context inputs of a note, and the run over two feature files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import long_context_probe as lcp  # noqa: E402

from bridge.transcribe.note_classes import PATCH  # noqa: E402
from export.note_classes import N_BINS, NoteClassNet  # noqa: E402

ONSET_FRAME, LENGTH_FRAMES, PITCH = 40, 50, 60


def _one_note_map() -> tuple[np.ndarray, np.ndarray]:
    """A log map (400, n_log) at -100 dB but for harmonics 1-8 of MIDI 60 (3 bins each, 0 dB) over 50
    frames from frame 40, and that note."""
    b = PATCH["bins_per_semitone"]
    n_log = b * (PATCH["midi_high"] - PATCH["midi_low"] + 1)
    log_map = np.full((400, n_log), -100.0, np.float32)
    for h in range(1, 9):
        k = b * (PITCH - PATCH["midi_low"]) + round(b * 12 * np.log2(h))
        log_map[ONSET_FRAME : ONSET_FRAME + LENGTH_FRAMES, k - 1 : k + 2] = 0.0
    hop_s = PATCH["hop"] / PATCH["sample_rate"]
    note = np.array([[ONSET_FRAME * hop_s, (ONSET_FRAME + LENGTH_FRAMES) * hop_s, PITCH, 80]])
    return log_map, note


def test_summary_features_follow_the_note() -> None:
    log_map, note = _one_note_map()
    f = lcp.summary_features(log_map, note)
    assert f.shape == (1, lcp.SUMMARY_DIM)
    env = f[0, : 8 * 32].reshape(8, 32)  # steps of 4 frames from 12 frames before the onset
    assert np.all(env[:, :3] == -4.0)  # before the onset: the floor
    assert np.all(env[:, 3:15] == 0.0)  # while the note sounds: its harmonics at the window's top
    assert np.all(env[:, 16:] == -4.0)  # after it
    spec = f[0, 8 * 32 : 8 * 32 + lcp.N_BINS]
    fundamental = lcp.HARMONICS[0]
    assert spec[fundamental] == 0.0 and spec[fundamental + 6] == -4.0
    assert np.allclose(f[0, -lcp.WOBBLE_FRAMES :], 0.0, atol=1e-5)  # a steady pitch does not wobble


def test_wobble_follows_vibrato() -> None:
    """Upper harmonics one bin up on odd frames: the wobble alternates, positive on odd frames."""
    log_map, note = _one_note_map()
    b = PATCH["bins_per_semitone"]
    for t in range(ONSET_FRAME + 1, ONSET_FRAME + LENGTH_FRAMES, 2):
        for h in range(2, 9):
            k = b * (PITCH - PATCH["midi_low"]) + round(b * 12 * np.log2(h))
            log_map[t, k - 1 : k + 3] = [-100.0, 0.0, 0.0, 0.0]
    wobble = lcp.summary_features(log_map, note)[0, -lcp.WOBBLE_FRAMES :]
    inside = wobble[:48]  # frames 0-47 of the note
    assert np.all(inside[1::2] > inside[0::2] + 1.0)  # odd frames (moved up) above even ones


def test_long_patches_are_pitch_aligned() -> None:
    log_map, note = _one_note_map()
    p = lcp.long_patches(log_map, note)
    assert p.shape == (1, *lcp.PATCH_SHAPE) and p.dtype == np.float16
    row = lcp.HARMONICS[0] // 2  # the fundamental, 12 semitones above the patch's bottom
    assert p[0, row, 5] == 0.0 and p[0, row, 1] == -4.0 and p[0, row, 25] == -4.0
    assert p[0, row - 6, 5] == -4.0  # two semitones below it: nothing


def _feats(tracks: int, seed: int) -> dict[str, np.ndarray]:
    """Per track 6 bass notes (part 0) and 6 strings notes (part 1) at 0.1-s steps."""
    rng = np.random.default_rng(seed)
    n = 12 * tracks
    y = np.zeros((n, 10), np.uint8)
    y[np.arange(n) % 12 < 6, 0] = 1
    y[np.arange(n) % 12 >= 6, 3] = 1
    on = 0.1 * (np.arange(n) % 12)
    return {
        "P": rng.uniform(-4, 0.5, (n, N_BINS, PATCH["frames"])).astype(np.float16),
        "S": rng.normal(size=(n, 2)).astype(np.float32),
        "Y": y,
        "Q": (np.arange(n) % 12 >= 6).astype(np.int16),
        "K": np.repeat(np.arange(tracks), 12).astype(np.int32),
        "N": np.stack([on, on + 0.3, np.where(y[:, 0] > 0, 40, 72), np.full(n, 80)], 1),
    }


def _track(folder: Path, rng: np.random.Generator) -> None:
    folder.mkdir(parents=True)
    (folder / "metadata.yaml").write_text("stems: {}\n")
    sf.write(folder / "mix.flac", 0.1 * rng.standard_normal((44100 * 2, 2)), 44100)


def test_run_over_two_feature_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    corpora = [tmp_path / "c1", tmp_path / "c2"]  # training notes from two corpora, as the real runs
    train_names = [f"{c.name}/Track0000{i}" for c in corpora for i in (1, 2, 3)]
    for name in train_names:
        _track(tmp_path / name, rng)
    corpus = tmp_path / "valid_tracks"
    for name in ("Track00001", "Track00002"):
        _track(corpus / name, rng)
    np.savez(tmp_path / "features.npz", key=json.dumps({"tracks": train_names}), **_feats(6, 1))
    np.savez(tmp_path / "valid.npz", key=json.dumps({"tracks": ["Track00001", "Track00002"]}), **_feats(2, 2))
    torch.manual_seed(0)
    torch.save({"model": NoteClassNet(width=4, hidden=8).state_dict(), "args": {}}, tmp_path / "c.pt")
    args = ["--features", str(tmp_path / "features.npz"), "--corpus", *map(str, corpora)]
    args += ["--valid", str(tmp_path / "valid.npz")]
    args += ["--valid-tracks", str(corpus), "--checkpoint", str(tmp_path / "c.pt"), "--epochs", "2"]
    args += ["--train-notes", "20", "--holdout", "0.34", "--threads", "1", "--json", str(tmp_path / "out.json")]
    assert lcp.main(args) == 0
    run = json.loads((tmp_path / "out.json").read_text())
    res = run["results"]
    assert run["argv"] == args and run["sizes"]["fitted_tracks"] == 4 and run["sizes"]["held_out_tracks"] == 2
    assert res["checkpoint"]["valid"]["notes"] == 24 and res["checkpoint"]["valid"]["parts"] == 4
    assert res["checkpoint"]["corpus_holdout"]["notes"] == 24 and res["checkpoint"]["corpus_holdout"]["parts"] == 4
    assert res["checkpoint"]["fit"]["notes"] == 12 and res["checkpoint"]["fit"]["parts"] == 2  # one whole track
    for kind in ("control", "summary", "patch"):
        assert [r["epoch"] for r in res[kind]] == [1, 2]
        assert all(0.0 <= r["valid"]["note_accuracy"] <= 1.0 for r in res[kind])
    assert lcp.main([*args, "--holdout", "0", "--epochs", "1"]) == 0  # nothing held out: that set is left out
    assert "corpus_holdout" not in json.loads((tmp_path / "out.json").read_text())["results"]["checkpoint"]
    (corpus / "Track00002" / "mix.flac").unlink()  # the folder no longer holds the features' tracks
    assert lcp.main(args) == 2


def test_split_tracks_holds_out_whole_tracks() -> None:
    track = np.repeat(np.arange(20), np.arange(1, 21))  # track t has t + 1 notes
    fit, held = lcp.split_tracks(track, 0.25, np.random.default_rng(3))
    assert len(np.unique(track[held])) == 5 and not set(track[fit]) & set(track[held])
    assert np.array_equal(np.sort(np.concatenate([fit, held])), np.arange(len(track)))
    assert len(lcp.split_tracks(track, 0.0, np.random.default_rng(3))[1]) == 0


def test_bad_holdout_is_refused(capsys) -> None:
    import pytest

    with pytest.raises(SystemExit):
        lcp.main(
            ["--features", "f", "--corpus", "c", "--valid", "v", "--valid-tracks", "t", "--checkpoint", "x"]
            + ["--holdout", "1"]
        )
    assert "--holdout must lie in [0, 1)" in capsys.readouterr().err
