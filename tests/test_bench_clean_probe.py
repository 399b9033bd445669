"""bench/clean_probe.py and export/note_clean.py: clean patches cut from each note's own stem, the
view without the other notes' harmonics, and a run over a small rendered corpus."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import clean_probe  # noqa: E402

from bridge.transcribe.note_classes import PATCH, log_map_db, note_patches  # noqa: E402
from export.note_clean import clean_patches, one_part_notes  # noqa: E402

SR = 44100
HOP_S = PATCH["hop"] / PATCH["sample_rate"]


def _tone(pitch: int, on_s: float, off_s: float, n: int, bright: float) -> np.ndarray:
    t = np.arange(n) / SR
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    x = sum(bright ** (k - 1) * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 9))
    return np.where((t >= on_s) & (t < off_s), x, 0.0).astype(np.float32) * 0.1


def _corpus(root: Path, n_tracks: int) -> tuple[list[Path], dict[str, np.ndarray]]:
    """Tracks of a dull low part (program 33, bass) and a bright high one (program 0, piano), four notes
    each, and their features as train-notes writes them (every note labelled with its part)."""
    tracks, feats = [], {k: [] for k in ("P", "S", "Y", "Q", "N", "K")}
    n = 3 * SR
    for k in range(n_tracks):
        td = root / f"Track{k:05d}"
        (td / "stems").mkdir(parents=True)
        notes = {0: [(40 + k, 0.2 + 0.6 * i, 0.7 + 0.6 * i) for i in range(4)]}
        notes[1] = [(72 + k, 0.4 + 0.6 * i, 0.8 + 0.6 * i) for i in range(4)]
        stems = {}
        audio = []
        for q, (sid, program, bright) in enumerate((("S00", 33, 0.2), ("S01", 0, 0.9))):
            audio.append(sum(_tone(p, a, b, n, bright) for p, a, b in notes[q]))
            sf.write(td / "stems" / f"{sid}.flac", audio[-1], SR)
            stems[sid] = {"program_num": program, "is_drum": False, "audio_rendered": True}
        sf.write(td / "mix.flac", audio[0] + audio[1], SR)
        (td / "metadata.yaml").write_text(yaml.safe_dump({"stems": stems}))
        rows = np.array([[a, b, p, 80] for q in (0, 1) for p, a, b in notes[q]], np.float64)
        p, s = note_patches(log_map_db(audio[0] + audio[1], SR), rows)
        y = np.zeros((8, 10), np.uint8)
        y[:4, 0] = y[4:, 1] = 1  # bass, piano
        for key, v in zip("PSYQNK", (p.astype(np.float16), s, y, np.repeat([0, 1], 4), rows, np.full(8, k))):
            feats[key].append(v)
        tracks.append(td)
    return tracks, {k: np.concatenate(v) for k, v in feats.items()}


def test_clean_patches_are_cut_from_each_notes_own_stem(tmp_path: Path) -> None:
    tracks, feats = _corpus(tmp_path, 2)
    feats["Q"][3] = -1  # a note of no single part: no clean patch
    rows = one_part_notes(feats)
    assert 3 not in rows and len(rows) == 15
    clean = clean_patches(feats, rows, tracks, log=lambda _: None)
    for j, i in enumerate(rows.tolist()):
        stem, _ = sf.read(tracks[feats["K"][i]] / "stems" / f"S0{feats['Q'][i]}.flac", dtype="float32")
        want, _ = note_patches(log_map_db(stem, SR), feats["N"][i : i + 1])
        np.testing.assert_allclose(clean[j].astype(np.float32), want[0], atol=2e-3)
    # the bass note's clean patch lacks the piano notes the mix holds above it
    assert np.abs(clean[0].astype(np.float32) - feats["P"][0].astype(np.float32)).max() > 0.5


def test_unmasked_floors_only_the_other_notes_harmonics() -> None:
    patch = np.zeros((1, 180, 40), np.float32)
    note = np.array([[1.0, 2.0, 60, 90]])
    other = np.array([[1.0, 2.0, 60, 90], [0.9, 1.2, 64, 90], [3.0, 4.0, 67, 90]])  # itself, a third, one later
    out = clean_probe.unmasked(patch, note, [other])
    floored = out[0] < 0
    start = round(1.0 / HOP_S) - PATCH["frames_before"]
    lead = PATCH["n_fft"] // PATCH["hop"] - 1  # frames whose window already reaches the third's onset
    a, b = round(0.9 / HOP_S) - lead - start, round(1.2 / HOP_S) + 3 - start
    assert not floored[:, :a].any() and not floored[:, b:].any()  # only while the third sounds
    rows = np.flatnonzero(floored.any(axis=1))
    own = {int(c) + d for c in clean_probe._OWN for d in (-1, 0, 1)}
    assert len(rows) and not own & set(rows.tolist())  # never the note's own partials
    centre = PATCH["bins_per_semitone"] * (PATCH["semitones_below"] + 4) + 1  # the third's fundamental
    assert floored[centre - 1 : centre + 2, a:b].all()  # floored all the while it sounds
    assert clean_probe._OWN[0] == PATCH["bins_per_semitone"] * PATCH["semitones_below"] + 1


def test_own_partials_sit_where_the_log_map_puts_a_tone() -> None:
    n = SR
    x = _tone(76, 0.0, 1.0, n, 0.9)  # high enough for the STFT to resolve each partial to a bin or two
    patch, _ = note_patches(log_map_db(x, SR), np.array([[0.2, 0.8, 76, 90]]))
    profile = patch[0][:, 20:30].mean(axis=1)
    for k in (1, 2, 3, 5):  # each of these partials peaks on its bin of _OWN
        c = clean_probe._OWN[k - 1]
        assert profile[c] >= profile[c - 2 : c + 3].max() - 0.01 and profile[c] > profile[c - 2] + 0.05


def test_probe_runs_and_saves(tmp_path: Path) -> None:
    tracks, feats = _corpus(tmp_path / "corpus", 3)
    np.savez(tmp_path / "features.npz", key="{}", **feats)
    args = ["--features", str(tmp_path / "features.npz"), "--corpus", str(tmp_path / "corpus")]
    args += ["--out", str(tmp_path / "run"), "--train", "both", "--epochs", "2", "--batch-size", "4"]
    args += ["--holdout", "0.34", "--json", str(tmp_path / "out.json"), "--save", str(tmp_path / "net.pt")]
    assert clean_probe.main(args) == 0
    run = json.loads((tmp_path / "out.json").read_text())
    assert run["notes"] == 24 and run["held_notes"] == 8 and run["held_tracks"] == 1
    assert [h["epoch"] for h in run["history"]] == [1, 2]
    for h in run["history"]:
        for k in ("fit_clean", "fit_mix", "held_clean", "held_mix"):
            assert 0 <= h[k]["accuracy"] <= 1
    state = torch.load(tmp_path / "net.pt", weights_only=True)
    assert "c1.weight" in state["model"] and state["args"]["train"] == "both"
    with np.load(tmp_path / "run" / "clean_patches.npz") as z:
        assert z["patches"].shape == (24, 180, 40)
