"""Trainer smoke tests on a tiny synthetic Slakh-layout corpus (stand-in reader, CPU, seconds)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

torch = pytest.importorskip("torch")

from export import train as tr  # noqa: E402

SR = 44100
STEMS = ("drums", "bass", "piano", "guitar", "strings")


def _standin_reader(root_unused=None) -> types.ModuleType:
    """Minimal ``export.data.slakh`` stand-in with the documented API."""
    mod = types.ModuleType("slakh_standin")

    def list_tracks(root, split=None):
        man = json.loads((Path(root) / "manifest.json").read_text())
        return [Path(root) / t for t in man["splits"][split]]

    def load_track(track_dir, stems=STEMS, sample_rate=SR):
        d = Path(track_dir)
        srcs = [sf.read(d / "stems" / f"S{i:02d}.flac", dtype="float32")[0] for i in range(len(stems))]
        other = sf.read(d / "stems" / "S05.flac", dtype="float32")[0]
        notes = [np.load(d / f"notes{i}.npy") for i in range(len(stems))]
        stems_a = np.stack(srcs)
        return {"mix": stems_a.sum(0) + other, "stems": stems_a, "other": other, "notes": notes}

    mod.list_tracks = list_tracks
    mod.load_track = load_track
    return mod


def make_corpus(root: Path, n_tracks: int = 3, seconds: float = 3.0, seed: int = 0) -> Path:
    """Synthetic tracks: each stem plays sine/noise notes; notes saved next to the audio."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    names = []
    for ti in range(n_tracks):
        d = root / f"Track{ti:05d}"
        (d / "stems").mkdir(parents=True)
        for si, stem in enumerate((*STEMS, "other")):
            y = np.zeros(n, np.float32)
            notes = []
            for _ in range(4):
                on = rng.uniform(0, seconds - 0.6)
                off = on + rng.uniform(0.1, 0.5)
                pitch = 36 if stem == "drums" else int(rng.integers(30 + 8 * si, 50 + 8 * si))
                f0 = 440 * 2 ** ((pitch - 69) / 12)
                seg = (t >= on) & (t < off)
                if stem == "drums":
                    y[seg] += 0.2 * rng.standard_normal(seg.sum()) * np.exp(-30 * (t[seg] - on))
                else:
                    y[seg] += 0.2 * np.sin(2 * np.pi * f0 * t[seg])
                notes.append([on, off, pitch, 90])
            sf.write(d / "stems" / f"S{si:02d}.flac", y, SR)
            if si < len(STEMS):
                np.save(d / f"notes{si}.npy", np.array(notes, np.float64))
        names.append(d.name)
    man = {"splits": {"train": names[:-1], "validation": names[-1:]}}
    (root / "manifest.json").write_text(json.dumps(man))
    return root


@pytest.fixture()
def corpus(tmp_path, monkeypatch):
    monkeypatch.setattr(tr, "_reader", _standin_reader)
    return make_corpus(tmp_path / "corpus")


def test_training_rolls_follow_the_frame_centres():
    # frame k centre = ((k+1)*512 - 1024)/44100 s; frame 3 centre = 1024/44100 s
    c3 = 1024 / SR
    fr, on = tr.rolls_for(np.array([[2, c3 - 1e-4, c3 + 512 / SR + 1e-4, 60, 100]]), 5, 0, 8)
    assert fr.shape == on.shape == (8, 5, 88)
    assert fr[:, 2, 60 - 21].nonzero()[0].tolist() == [3, 4] and fr.sum() == 2
    assert on[:, 2, 60 - 21].nonzero()[0].tolist() == [3] and on.sum() == 1
    fr, on = tr.rolls_for(np.array([[2, c3 - 1e-4, c3 + 512 / SR + 1e-4, 60, 100]]), 5, 2, 8)  # crop at frame 2
    assert fr[:, 2, 60 - 21].nonzero()[0].tolist() == [1, 2]
    fr, on = tr.rolls_for(np.array([[0, 0.0, 1.0, 60, 0]]), 5, 0, 8)  # velocity 0: silent
    assert not fr.any() and not on.any()


def test_two_step_training_and_resume(corpus, tmp_path):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(
        "[model]\nn_audio = 16\nn_score = 8\nhidden = 16\nn_layers = 1\nn_bands = 24\nn_linear_bins = 8\ndc_dim = 4\n"
        "[train]\nrefresh_corpus = false\nbatch_size = 2\ncrop_frames = 32\nepoch_steps = 2\n"
        "log_every = 1\nckpt_every = 1\n"
        "[valid]\nn_crops = 2\ncrop_frames = 64\n"
    )
    out = tmp_path / "run"
    assert tr.main(["--config", str(cfg), "--corpus", str(corpus), "--out", str(out), "--max-steps", "2"]) == 0
    ck = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert ck["step"] == 2
    card = json.loads((out / "final.card.json").read_text())
    assert "si_sdr_db" in card["metrics"]["validation"]
    assert (
        tr.main(["--config", str(cfg), "--corpus", str(corpus), "--out", str(out), "--max-steps", "3", "--resume"]) == 0
    )
    ck = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert ck["step"] == 3
    final = torch.load(out / "final.pt", map_location="cpu", weights_only=True)
    assert set(final) == {"model", "config"}
    assert tr.main(["--config", str(cfg), "--corpus", str(corpus), "--out", str(out), "--finalize"]) == 0
    card = json.loads((out / "final.card.json").read_text())
    assert set(card["decode"]["onset_threshold"]) == set(STEMS)
    assert set(card["decode"]["frame_onset_threshold"]) == set(STEMS)


def test_fine_tune_from_checkpoint_with_overrides(corpus, tmp_path):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(
        "[model]\nn_audio = 16\nn_score = 8\nhidden = 16\nn_layers = 1\nn_bands = 24\nn_linear_bins = 8\ndc_dim = 4\n"
        "[train]\nrefresh_corpus = false\nbatch_size = 2\ncrop_frames = 32\nepoch_steps = 5\n"
        "[valid]\nn_crops = 1\ncrop_frames = 64\n"
    )
    base = ["--config", str(cfg), "--corpus", str(corpus)]
    assert tr.main([*base, "--out", str(tmp_path / "a"), "--max-steps", "1"]) == 0
    init = tmp_path / "a" / "final.pt"
    start = torch.load(init, map_location="cpu", weights_only=True)["model"]
    out = tmp_path / "b"
    args = [*base, "--out", str(out), "--max-steps", "1", "--init", str(init), "--set", "loss.onset_pos_weight=25"]
    assert tr.main(args) == 0
    card = json.loads((out / "final.card.json").read_text())
    assert card["training"]["config"]["loss"]["onset_pos_weight"] == 25
    assert card["training"]["init_from"]["checkpoint"] == str(init)
    tuned = torch.load(out / "final.pt", map_location="cpu", weights_only=True)["model"]
    # the feature statistics come from the initial checkpoint, the weights moved on from it
    assert torch.equal(tuned["front.feat_mean"], start["front.feat_mean"])
    assert not torch.equal(tuned["front.proj.weight"], start["front.proj.weight"])
    with pytest.raises(SystemExit):
        tr.main([*base, "--out", str(out), "--set", "loss.no_such_key=1"])
    wide = tmp_path / "wide.toml"
    wide.write_text(cfg.read_text().replace("hidden = 16", "hidden = 24"))
    with pytest.raises(SystemExit, match="does not fit"):
        tr.main(["--config", str(wide), "--corpus", str(corpus), "--out", str(tmp_path / "c"), "--init", str(init)])


def test_dc_loss_zero_for_perfect_embedding():
    y = torch.nn.functional.one_hot(torch.randint(0, 3, (2, 50)), 3).float()
    w = torch.ones(2, 50)
    assert float(tr.dc_loss(y, y, w)) == pytest.approx(0.0, abs=1e-5)
    v = torch.nn.functional.normalize(torch.rand(2, 50, 3), dim=-1)
    assert float(tr.dc_loss(v, y, w)) > 0.0


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
