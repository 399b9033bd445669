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


TINY_MODEL = (
    "[model]\nn_audio = 16\nn_score = 8\nhidden = 16\nn_layers = 1\nn_bands = 24\nn_linear_bins = 8\ndc_dim = 4\n"
)


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
        TINY_MODEL + "[train]\nrefresh_corpus = false\nbatch_size = 2\ncrop_frames = 32\nepoch_steps = 2\n"
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


def test_interrupted_run_resumes_exactly_as_an_uninterrupted_one(corpus, tmp_path):
    # one run of 6 steps against --until 3 or 4 (an epoch's end) then --resume: same batches, bands, validations
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(
        TINY_MODEL + "[train]\nrefresh_corpus = false\nbatch_size = 2\ncrop_frames = 32\nepoch_steps = 2\n"
        "log_every = 1\nckpt_every = 1\nsample_offset = true\n"
        "[valid]\nn_crops = 2\ncrop_frames = 64\ntune_every = 2\n"
    )
    base = ["--config", str(cfg), "--corpus", str(corpus), "--max-steps", "6"]
    assert tr.main([*base, "--out", str(tmp_path / "whole")]) == 0

    def load(run: Path, name: str = "last.pt") -> dict:
        return torch.load(run / name, map_location="cpu", weights_only=True)

    def scores(ck: dict) -> list:
        return [[h["si_sdr_db"], h["onset_f1"], h.get("decode")] for h in ck["history"]]

    whole = load(tmp_path / "whole")
    assert whole["step"] == 6 and whole["tuned_at"] == 6
    for until in (3, 4):
        split = tmp_path / f"split{until}"
        assert tr.main([*base, "--out", str(split), "--until", str(until)]) == 0
        assert load(split)["step"] == until and not (split / "final.pt").exists()
        assert tr.main([*base, "--out", str(split), "--resume"]) == 0
        parted = load(split)
        assert parted["step"] == 6
        for k, v in whole["model"].items():
            assert torch.equal(v, parted["model"][k]), (until, k)
        assert scores(parted) == scores(whole) and parted["tuned_decode"] == whole["tuned_decode"]
        assert load(split, "best.pt")["step"] == load(tmp_path / "whole", "best.pt")["step"]
    card = json.loads((split / "final.card.json").read_text())  # the trainer's thresholds until --finalize
    assert card["decode"] == whole["tuned_decode"] and "step 6" in card["training"]["decode_tuned_on"]
    with pytest.raises(SystemExit, match="not after step 6"):
        tr.main([*base, "--out", str(split), "--resume", "--until", "5"])
    # a checkpoint from before the random streams were kept resumes (on a new stream)
    old = tmp_path / "old"
    assert tr.main([*base, "--out", str(old), "--until", "3"]) == 0
    ck = load(old)
    tr.atomic_save(
        {k: v for k, v in ck.items() if k not in ("sampler_rng", "dc_rng", "tuned_at", "tuned_decode")}, old / "last.pt"
    )
    assert tr.main([*base, "--out", str(old), "--resume"]) == 0
    assert load(old)["step"] == 6 and len(load(old)["history"]) == len(whole["history"])
    # a run's checkpoint exports with the thresholds its trainer tuned (no finalize card beside it)
    from export import onnx_export as ox

    onnx_path = tmp_path / "cand.onnx"
    assert ox.main(["--checkpoint", str(split / "last.pt"), "--out", str(onnx_path), "--no-index", "--no-timing"]) == 0
    card = json.loads(onnx_path.with_suffix(".json").read_text())
    assert card["decode"] == whole["tuned_decode"] and "frame_onset_threshold" in card["decode"]  # not defaults


def test_moving_average_of_the_weights_is_kept_validated_and_shipped(corpus, tmp_path):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(
        TINY_MODEL + "[train]\nrefresh_corpus = false\nbatch_size = 2\ncrop_frames = 32\nepoch_steps = 2\n"
        "log_every = 1\nckpt_every = 1\nema_decay = 0.75\n[valid]\nn_crops = 2\ncrop_frames = 64\n"
    )
    out = tmp_path / "run"
    base = ["--config", str(cfg), "--corpus", str(corpus), "--out", str(out), "--max-steps", "3"]
    assert tr.main([*base, "--until", "1"]) == 0
    ck1 = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert tr.main([*base, "--resume", "--until", "2"]) == 0
    ck2 = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    from export import onnx_export as ox

    conf = tr.load_config(str(cfg))
    conf["data"]["corpus"] = str(corpus)
    valid_args = (tr.TrackCache(tr.build_cache(corpus, out / "cache", "validation", list(STEMS))), conf)
    w = "front.proj.weight"
    assert not torch.equal(ck2["ema_model"][w], ck2["model"][w])
    assert torch.allclose(ck2["ema_model"][w], 0.75 * ck1["ema_model"][w] + 0.25 * ck2["model"][w], atol=1e-7)
    # validation scores the average, and the weights as trained beside it
    ema_model, _ = ox.load_checkpoint(out / "last.pt", average=True)
    assert ck2["history"][-1]["si_sdr_improvement_db"] == tr.validate(ema_model, *valid_args)["si_sdr_improvement_db"]
    raw_model, _ = ox.load_checkpoint(out / "last.pt")
    unaveraged = tr.validate(raw_model, *valid_args)["si_sdr_improvement_db"]
    assert ck2["history"][-1]["unaveraged"]["si_sdr_improvement_db"] == unaveraged
    with pytest.raises(SystemExit, match="ema_decay"):
        tr.main([*base, "--resume", "--set", "train.ema_decay=1.0"])
    assert tr.main([*base, "--resume"]) == 0
    last = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    final = torch.load(out / "final.pt", map_location="cpu", weights_only=True)
    assert torch.equal(final["model"][w], last["ema_model"][w])  # final.pt ships the average

    model, _ = ox.load_checkpoint(out / "last.pt", average=True)
    assert torch.equal(model.state_dict()[w], last["ema_model"][w])
    assert (
        ox.main(
            [
                "--checkpoint",
                str(out / "last.pt"),
                "--average",
                "--out",
                str(tmp_path / "a.onnx"),
                "--no-index",
                "--no-timing",
            ]
        )
        == 0
    )
    with pytest.raises(SystemExit, match="no moving average"):
        ox.load_checkpoint(out / "final.pt", average=True)
    # a fine-tune from the average (at learning rate 0 its weights stay where they started)
    fine = tmp_path / "fine"
    still = ["--set", "train.lr=0.0", "--set", "train.lr_final=0.0", "--set", "train.ema_decay=0.0"]
    args = ["--config", str(cfg), "--corpus", str(corpus), "--out", str(fine), "--max-steps", "1", *still]
    assert tr.main([*args, "--init", str(out / "last.pt"), "--init-average"]) == 0
    assert torch.equal(torch.load(fine / "final.pt", weights_only=True)["model"][w], last["ema_model"][w])
    card = json.loads((fine / "final.card.json").read_text())
    assert card["training"]["init_from"]["average"] is True


def test_fine_tune_from_checkpoint_with_overrides(corpus, tmp_path, capsys):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(
        TINY_MODEL + "[train]\nrefresh_corpus = false\nbatch_size = 2\ncrop_frames = 32\nepoch_steps = 5\n"
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
    with pytest.raises(SystemExit, match="violin"):
        tr.main([*base, "--out", str(out), "--set", "loss.mask_stem_weights={violin = 2.0}"])
    with pytest.raises(SystemExit, match="no moving average"):  # a final.pt holds no ema_model
        tr.main([*base, "--out", str(tmp_path / "d"), "--max-steps", "1", "--init", str(init), "--init-average"])
    with pytest.raises(SystemExit) as exc:
        tr.main([*base, "--out", str(tmp_path / "d"), "--max-steps", "1", "--init-average"])
    assert exc.value.code == 2 and "--init-average needs --init" in capsys.readouterr().err
    wide = tmp_path / "wide.toml"
    wide.write_text(cfg.read_text().replace("hidden = 16", "hidden = 24"))
    with pytest.raises(SystemExit, match="does not fit"):
        tr.main(["--config", str(wide), "--corpus", str(corpus), "--out", str(tmp_path / "c"), "--init", str(init)])


HARMONIC_TOML = (
    '[model]\narch = "harmonic"\nconv_a = 8\nconv_b = 8\ngru_hidden = 8\nmask_hidden = 8\nn_context = 4\n'
    "[train]\nrefresh_corpus = false\nbatch_size = 2\ncrop_frames = 32\nepoch_steps = 2\n"
    "log_every = 1\nckpt_every = 1\nsample_offset = true\n"
    "[loss]\ndc = 0.1\nmask_frame_step = 4\n"  # dc > 0 must be skipped cleanly: the model has no dc head
    "[valid]\nn_crops = 2\ncrop_frames = 64\n"
)


def test_harmonic_training_resume_and_export(corpus, tmp_path):
    from bridge.metadata import validate_metadata
    from export import onnx_export as ox
    from export.metadata import read_onnx_metadata
    from export.models.harmonic import Harmonic

    cfg = tmp_path / "harm.toml"
    cfg.write_text(HARMONIC_TOML)
    out = tmp_path / "run"
    base = ["--config", str(cfg), "--corpus", str(corpus), "--out", str(out)]
    assert tr.main([*base, "--max-steps", "2"]) == 0
    ck = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert ck["step"] == 2 and ck["config"]["model"]["arch"] == "harmonic"
    assert ck["config"]["model"]["drum_stem"] == 0 and ck["config"]["model"]["gru_hidden"] == 8
    assert float(ck["model"]["log_std"]) != 1.0  # global input statistics were set from the data
    assert tr.main([*base, "--max-steps", "3", "--resume"]) == 0
    assert torch.load(out / "last.pt", map_location="cpu", weights_only=True)["step"] == 3
    card = json.loads((out / "final.card.json").read_text())
    assert "si_sdr_db" in card["metrics"]["validation"]
    assert tr.main([*base, "--finalize"]) == 0
    assert "pitch-equivariant" in json.loads((out / "final.card.json").read_text())["description"]
    model, _ = ox.load_checkpoint(out / "final.pt")
    assert isinstance(model, Harmonic)
    onnx_path = tmp_path / "models" / "harm.onnx"
    assert ox.main(["--checkpoint", str(out / "final.pt"), "--out", str(onnx_path), "--no-timing"]) == 0
    meta = validate_metadata(read_onnx_metadata(onnx_path))
    assert meta.state_size == model.state_size
    assert json.loads(onnx_path.with_suffix(".json").read_text())["architecture"]["type"] == "causal-harmonic-gru"
    # a cerberus config cannot resume a harmonic run
    band = tmp_path / "band.toml"
    band.write_text("[model]\nn_audio = 16\nn_score = 8\nhidden = 16\nn_layers = 1\nn_bands = 24\n")
    with pytest.raises(SystemExit, match="harmonic"):
        tr.main(["--config", str(band), "--corpus", str(corpus), "--out", str(out), "--resume", "--max-steps", "4"])


def test_crops_at_sample_offsets_move_audio_and_notes_together(corpus, tmp_path):
    cfg = tr.load_config(None)
    paths = tr.build_cache(corpus, tmp_path / "cache", "train", list(STEMS))
    cache = tr.TrackCache(paths)
    rng = np.random.default_rng(0)
    # a crop one full hop off the grid at frame k0 is the on-grid crop at frame k0 + 1, notes included
    a = tr.make_batch(cache, rng, cfg, 1, 40, train=False, fixed=[(0, 30, tr.HOP)])
    b = tr.make_batch(cache, rng, cfg, 1, 40, train=False, fixed=[(0, 31, 0)])
    for k in ("src", "frame", "onset"):
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert float(b["frame"].sum()) > 0
    c = tr.make_batch(cache, rng, cfg, 1, 40, train=False, fixed=[(0, 30, 200)])
    torch.testing.assert_close(c["src"][..., : -200 - 1], cache_crop(cache, 0, 30, 40)[..., 200:-1])
    # training batches draw their offsets only when asked to
    on = {**cfg, "train": {**cfg["train"], "sample_offset": True, "gain_db_range": 0.0}}
    off = {**cfg, "train": {**cfg["train"], "sample_offset": False, "gain_db_range": 0.0}}
    x = tr.make_batch(cache, np.random.default_rng(5), on, 4, 20)["src"]
    y = tr.make_batch(cache, np.random.default_rng(5), off, 4, 20)["src"]
    assert not torch.equal(x, y)


def cache_crop(cache, ti: int, k0: int, n_frames: int) -> torch.Tensor:
    return torch.from_numpy(cache.crop(ti, k0, n_frames))[None]


def test_dc_loss_zero_for_perfect_embedding():
    y = torch.nn.functional.one_hot(torch.randint(0, 3, (2, 50)), 3).float()
    w = torch.ones(2, 50)
    assert float(tr.dc_loss(y, y, w)) == pytest.approx(0.0, abs=1e-5)
    v = torch.nn.functional.normalize(torch.rand(2, 50, 3), dim=-1)
    assert float(tr.dc_loss(v, y, w)) > 0.0


def _default_batch_and_harmonic(corpus, tmp_path):
    """The default config, one 2-crop batch of ``corpus``'s train split and an untrained harmonic network."""
    from export.models.harmonic import Harmonic, HarmonicConfig

    cfg = tr.load_config(None)
    cache = tr.TrackCache(tr.build_cache(corpus, tmp_path / "cache", "train", list(STEMS)))
    batch = tr.make_batch(cache, np.random.default_rng(0), cfg, 2, 40, train=False)
    return cfg, batch, Harmonic(HarmonicConfig(n_stems=len(STEMS))).eval()


def test_the_residual_slot_loss_makes_abstaining_cost(corpus, tmp_path):
    """With ``loss.mask_residual``, a network that sends everything to the residual slot (every
    stem mask 0) pays for the stems' energy there too; without it, that is the cheapest answer
    the L1 mask loss has when the network is unsure."""
    cfg, batch, model = _default_batch_and_harmonic(corpus, tmp_path)
    with torch.no_grad():
        model.mask_prior[-1].fill_(60.0)  # the residual slot takes everything
    cfg["loss"]["mask_residual"] = False
    _, plain, out = tr.compute_losses(model, batch, cfg)
    assert float(out["masks"].max()) < 1e-6
    cfg["loss"]["mask_residual"] = True
    _, with_res, _ = tr.compute_losses(model, batch, cfg)
    # the residual term: |mix - other| where `other` is small, so the all-residual answer costs more
    assert with_res["mask"] > plain["mask"] * 1.2, (with_res["mask"], plain["mask"])


def test_crops_conditioned_on_the_tracks_own_transcription(corpus, tmp_path):
    from export.transcribed_scores import load_transcribed, transcribe_cache

    paths = tr.build_cache(corpus, tmp_path / "cache", "train", list(STEMS))
    assert load_transcribed(paths[0]) is None
    assert transcribe_cache(paths, SR, list(STEMS), [0.05, 1.0]) == len(paths)
    assert transcribe_cache(paths, SR, list(STEMS), [0.05, 1.0]) == 0  # made once
    rows = load_transcribed(paths[0])
    assert rows is not None and rows.shape[1] == 6 and len(rows)
    assert set(rows[:, 0].tolist()) <= {0.0, 1.0} and 0 not in rows[:, 1]  # two shares; no drum part
    assert (rows[:, 0] == 0).sum() >= (rows[:, 0] == 1).sum()  # the low share puts a note in more parts
    # every crop from a known transcription: the score holds its one note, moved with the crop's offset
    cache = tr.TrackCache(paths)
    note = np.array([[0, 2, 1.0, 1.5, 60, 90], [1, 3, 1.0, 1.5, 64, 90]], np.float64)
    cache.transcribed = [note] * len(cache)
    cfg = tr.load_config(None)
    cfg["score"].update(p_transcribed=1.0, p_absent=0.0)  # (a crop drawn absent keeps no score)
    cfg["train"]["gain_db_range"] = 0.0
    b = tr.make_batch(cache, np.random.default_rng(1), cfg, 8, 200)
    sc = b["score"].numpy()  # (B, T, stems, keys)
    key = {2: 60 - tr.KEY_LOW, 3: 64 - tr.KEY_LOW}
    for item in sc:
        on = [s for s in (2, 3) if item[:, s, key[s]].any()]
        assert len(on) == 1  # one share's note per crop
        assert item.sum() == item[:, on[0], key[on[0]]].sum()
    assert {s for item in sc for s in (2, 3) if item[:, s, key[s]].any()} == {2, 3}  # both shares drawn
    cfg["score"].update(p_transcribed=0.0, p_absent=0.5)  # the true score, corrupted: the draws as without rows
    cache.transcribed = [None] * len(cache)
    x = tr.make_batch(cache, np.random.default_rng(2), cfg, 4, 50)["score"]
    cache.transcribed = [note] * len(cache)
    torch.testing.assert_close(tr.make_batch(cache, np.random.default_rng(2), cfg, 4, 50)["score"], x)
    # half the crops drawn absent keep no score, the others take the transcription
    cfg["score"].update(p_transcribed=1.0, p_absent=0.5)
    sc = tr.make_batch(cache, np.random.default_rng(3), cfg, 16, 200)["score"].numpy()
    held = [item.sum() > 0 for item in sc]
    assert 0 < sum(held) < len(held)
    assert all(item.sum() == item[:, 2, key[2]].sum() + item[:, 3, key[3]].sum() for item in sc)


def test_training_with_transcribed_scores_writes_them_once(corpus, tmp_path):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(
        TINY_MODEL + "[train]\nrefresh_corpus = false\nbatch_size = 2\ncrop_frames = 32\nepoch_steps = 5\n"
        "[valid]\nn_crops = 1\ncrop_frames = 64\n"
        "[score]\np_transcribed = 0.5\n"
    )
    out = tmp_path / "run"
    assert tr.main(["--config", str(cfg), "--corpus", str(corpus), "--out", str(out), "--max-steps", "2"]) == 0
    done = sorted((out / "cache" / "train").glob("*.transcribed.npz"))
    assert len(done) == 2  # the train split's tracks, not the validation one
    card = json.loads((out / "final.card.json").read_text())
    assert card["training"]["config"]["score"]["p_transcribed"] == 0.5


def test_the_per_stem_mask_loss_weighs_a_quiet_stem_near_a_loud_one():
    """``loss.mask_stem_floor``: the same relative error in a stem 20 dB under another costs about
    2.6x less at floor 0.2, where the pooled L1 charges it 10x less; each item counts against its
    own level (a quiet crop weighs as much as a loud one); an absent stem's leak stays bounded."""
    torch.manual_seed(0)
    loud, quiet = torch.rand(2, 30, 1, 64) + 0.5, (torch.rand(2, 30, 1, 64) + 0.5) * 0.1
    tgt = torch.cat([loud, quiet, torch.zeros_like(loud)], 2)  # (B,T,S,F): loud, quiet, absent
    tgt[1] = tgt[0] * 0.01  # the second crop: the first, 40 dB down
    mag = tgt.sum(2)

    def cost(stem: int, floor: float, item: int = 0) -> float:
        est = tgt.clone()
        est[item, :, stem] *= 0.5  # half of that stem lost, in one crop
        return float(tr.mask_l1(est, tgt, mag, floor))

    assert cost(0, 0.0) / cost(1, 0.0) == pytest.approx(10.0, rel=0.05)
    assert 2.0 < cost(0, 0.2) / cost(1, 0.2) < 3.2
    assert cost(0, 0.0, item=1) == pytest.approx(cost(0, 0.0) * 0.01, rel=1e-3)  # pooled: the quiet crop counts little
    assert cost(0, 0.2, item=1) == pytest.approx(cost(0, 0.2), rel=1e-4)  # per stem: level-invariant
    # against the definition, one item and stem at a time
    est = tgt * torch.rand_like(tgt) * 2
    want = torch.stack(
        [
            (est[b, :, s] - tgt[b, :, s]).abs().mean() / (tgt[b, :, s].mean() + 0.2 * mag[b].mean())
            for b in range(2)
            for s in range(3)
        ]
    ).mean()
    assert float(tr.mask_l1(est, tgt, mag, 0.2)) == pytest.approx(float(want), rel=1e-5)
    assert float(tr.mask_l1(tgt, tgt, mag, 0.2)) == 0.0
    est = tgt.clone()
    est[:, :, 2] = mag  # the whole mix leaks into the absent stem: 1 / floor for that stem at most
    assert float(tr.mask_l1(est, tgt, mag, 0.1)) == pytest.approx(10.0 / 3, rel=1e-4)
    with pytest.raises(ValueError, match="mask_stem_floor"):
        tr.mask_l1(est, tgt, mag, -0.1)
    # per-stem weights: a stem's term times its weight, pooled or per stem; all ones change nothing
    est = tgt * torch.rand_like(tgt) * 2
    assert torch.equal(tr.mask_l1(est, tgt, mag), (est - tgt).abs().mean() / mag.mean())  # unweighted: as before
    for floor in (0.0, 0.2):
        plain = float(tr.mask_l1(est, tgt, mag, floor))
        assert float(tr.mask_l1(est, tgt, mag, floor, torch.ones(3))) == pytest.approx(plain, rel=1e-6)
        only = [float(tr.mask_l1(est, tgt, mag, floor, torch.eye(3)[k])) for k in range(3)]
        assert sum(only) == pytest.approx(plain, rel=1e-5)  # the terms add up to the unweighted loss
        w = torch.tensor([1.0, 3.0, 0.5])
        want = sum(float(x) * o for x, o in zip(w, only, strict=True))
        assert float(tr.mask_l1(est, tgt, mag, floor, w)) == pytest.approx(want, rel=1e-5)


def test_mask_stem_weights_from_the_config():
    cfg = {"stems": ["drums", "bass", "piano"], "loss": {"mask_stem_weights": {}}}
    assert tr.mask_stem_weights(cfg) is None
    cfg["loss"]["mask_stem_weights"] = {"piano": 2.0}
    assert tr.mask_stem_weights(cfg).tolist() == [1.0, 1.0, 2.0]
    for bad, why in (
        ({"violin": 2.0}, "violin"),
        ({"bass": -1.0}, ">= 0"),
        (2.0, "table"),
        (0, "table"),
        ({"bass": "x"}, "numbers"),
        ({"bass": float("inf")}, "finite"),
    ):
        cfg["loss"]["mask_stem_weights"] = bad
        with pytest.raises(ValueError, match=why):
            tr.mask_stem_weights(cfg)


def test_the_per_stem_mask_loss_in_training(corpus, tmp_path):
    """``compute_losses`` with ``loss.mask_stem_floor`` (alone and with the residual slot): finite,
    and a different number from the pooled loss's on the same batch."""
    cfg, batch, model = _default_batch_and_harmonic(corpus, tmp_path)
    got = {}
    for floor, residual in [(0.0, False), (0.2, False), (0.0, True), (0.2, True)]:
        cfg["loss"].update(mask_stem_floor=floor, mask_residual=residual)
        with torch.no_grad():
            total, parts, _ = tr.compute_losses(model, batch, cfg)
        assert np.isfinite(float(total)) and parts["mask"] > 0
        got[floor, residual] = parts["mask"]
    assert got[0.2, False] != pytest.approx(got[0.0, False], rel=1e-3)
    assert got[0.2, True] != pytest.approx(got[0.0, True], rel=1e-3)
    # loss.mask_stem_weights reaches the training loss, with and without the residual slot
    for (floor, residual), plain in got.items():
        cfg["loss"].update(mask_stem_floor=floor, mask_residual=residual, mask_stem_weights={"piano": 3.0})
        with torch.no_grad():
            _, parts, _ = tr.compute_losses(model, batch, cfg)
        assert parts["mask"] != pytest.approx(plain, rel=1e-4)
    cfg["loss"]["mask_stem_weights"] = {}


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
