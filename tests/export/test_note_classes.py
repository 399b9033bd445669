"""The note classifier's trainer (export/note_classes.py): a two-track corpus rendered with
FluidSynth, one epoch, ONNX export with its metadata and card, read back by the bridge."""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile as sf
import torch
import yaml

from bridge.errors import ModelError
from bridge.transcribe.note_classes import PATCH, NoteClassifier, log_map_db, note_patches, pool_by_part
from export.note_classes import (
    N_BINS,
    NoteClassNet,
    clean_targets,
    load_classifier,
    main,
    note_labels,
    note_parts,
    note_weights,
    part_contrast_loss,
    part_families,
    source_mask,
    track_notes,
    widen_state,
)
from export.note_clean import one_part_notes
from export.note_dominance import note_dominance
from tests.test_parts import SOUNDFONT, SR, render, write_midi

pytestmark = pytest.mark.skipif(
    not (shutil.which("fluidsynth") and SOUNDFONT.is_file()), reason="needs fluidsynth and FluidR3_GM"
)

BASS = [(0.1 + 0.5 * i, 0.55 + 0.5 * i, p) for i, p in enumerate([36, 38, 40, 41, 43, 45, 43, 41])]
PIANO = [(0.3 + 0.5 * i, 0.7 + 0.5 * i, p) for i, p in enumerate([72, 74, 76, 77, 79, 81, 79, 77])]


def _track(root: Path, name: str, shift: int) -> Path:
    d = root / name
    (d / "MIDI").mkdir(parents=True)
    stems = {}
    audio = []
    for sid, (program, notes) in {"S00": (33, BASS), "S01": (0, PIANO)}.items():
        notes = [(a, b, p + shift) for a, b, p in notes]
        mid = write_midi(d / "MIDI" / f"{sid}.mid", [(sid, 0, program, notes)])
        audio.append(render(d / sid, mid, 4.5))
        (d / "stems").mkdir(exist_ok=True)
        sf.write(d / "stems" / f"{sid}.flac", audio[-1], SR)
        stems[sid] = {"program_num": program, "is_drum": False, "audio_rendered": True}
    sf.write(d / "mix.flac", sum(audio), SR)
    (d / "metadata.yaml").write_text(yaml.safe_dump({"stems": stems, "midi_dir": "MIDI"}))
    return d


def test_train_export_and_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "corpus"
    for i, shift in enumerate((0, 2)):
        _track(corpus, f"Track{i:05d}", shift)
    notes = track_notes(corpus / "Track00000")
    assert sorted(np.bincount(notes[:, 4].astype(int), minlength=5)[:2].tolist()) == [8, 8]  # bass, piano
    out, onnx_path = tmp_path / "run", tmp_path / "nc.onnx"
    second = tmp_path / "corpus2"  # a second corpus (several are read together): one track of the first again
    second.mkdir()
    (second / "Track00009").symlink_to(corpus / "Track00001")
    args = [
        "--corpus",
        str(corpus),
        str(second),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--export",
        str(onnx_path),
    ]
    assert main(args) == 0
    log = (out / "train.log").read_text()
    assert "[epoch] " in log and "[export]" in log
    card = json.loads(onnx_path.with_suffix(".json").read_text())
    assert card["training"]["epochs"] == 1 and card["classes"] == ["bass", "piano", "guitar", "strings", "other"]
    assert (out / "posteriorgrams" / "corpus" / "Track00001.npz").is_file()  # basic-pitch's output, cached
    assert "transcribed notes" in log and "[data] 3/3 tracks" in log
    # --features-only: the same notes cached for bench/classifier_fit.py, nothing trained or exported
    feat_out = tmp_path / "feats"
    feat_args = [
        "--corpus",
        str(corpus),
        str(second),
        "--out",
        str(feat_out),
        "--post-cache",
        str(out / "posteriorgrams"),
    ]
    assert main([*feat_args, "--features-only", "--export", str(tmp_path / "x.onnx")]) == 2
    assert main([*feat_args, "--features-only", "--corpus", str(tmp_path / "none")]) == 2
    assert main([*feat_args, "--features-only", "--valid", str(corpus)]) == 0
    assert not (feat_out / "last.pt").exists() and not (tmp_path / "x.onnx").exists()
    with np.load(out / "features.npz") as a, np.load(feat_out / "features.npz") as b:
        assert a["key"] == b["key"] and np.array_equal(a["P"], b["P"]) and np.array_equal(a["Y"], b["Y"])
    with np.load(feat_out / "valid_features.npz") as v:
        assert len(np.unique(v["K"])) == 2  # the --valid tracks
    clf = NoteClassifier(onnx_path)
    assert len(clf.onset_thresholds) == 5 and 0.0 < clf.sounding_threshold < 1.0
    mix, sr = sf.read(corpus / "Track00000" / "mix.flac", dtype="float32")
    sounding, onset, shift_s = clf.predict(mix, sr, notes[:, :4])
    assert sounding.shape == onset.shape == (16, 5) and shift_s.shape == (16,)
    assert ((sounding > 0) & (sounding < 1)).all() and (np.abs(shift_s) <= 0.15).all()
    assert clf.predict(mix, sr, np.zeros((0, 4)))[0].shape == (0, 5)
    assert clf.decoding == {"onset_threshold": 0.5, "frame_threshold": 0.3, "min_note_frames": 3}  # trained so
    # the same weights for another decoding: thresholds tuned again on --valid, the decoding stored
    retuned = tmp_path / "nc5.onnx"
    assert (
        main(
            [
                "--out",
                str(out),
                "--no-train",
                "--valid",
                str(corpus),
                "--min-note-frames",
                "5",
                "--export",
                str(retuned),
            ]
        )
        == 0
    )
    assert "[retune]" in (out / "train.log").read_text()
    assert NoteClassifier(retuned).decoding["min_note_frames"] == 5

    # a context head (the mean embedding of the file's notes), started from that checkpoint
    base = NoteClassNet()
    base.load_state_dict(torch.load(out / "last.pt", weights_only=True)["model"])
    fresh = NoteClassNet(context=16)
    fresh.load_state_dict(base.state_dict(), strict=False)
    p, sc = torch.randn(6, N_BINS, PATCH["frames"]).clamp(-4, 0.5), torch.randn(6, 2)
    base.eval(), fresh.eval()
    with torch.no_grad():  # its last layer starts at zero: the context-free classifier's outputs
        torch.testing.assert_close(fresh(p, sc), base(p, sc))
    ctx_out, ctx_onnx = tmp_path / "run_ctx", tmp_path / "nc_ctx.onnx"
    ctx_args = ["--corpus", str(corpus), "--out", str(ctx_out), "--epochs", "1", "--batch-size", "8"]
    ctx_args += ["--context", "16", "--context-chunk", "4", "--init", str(out / "last.pt"), "--lr", "0.05"]
    assert main([*ctx_args, "--export", str(ctx_onnx)]) == 0
    assert f"started from {out / 'last.pt'}" in (ctx_out / "train.log").read_text()
    clf = NoteClassifier(ctx_onnx)
    assert clf.context_dim == 128
    all_notes = clf.predict(mix, sr, notes[:, :4], batch=5)
    # the same as the torch network whose context is the mean embedding of every note given
    net = NoteClassNet(context=16)
    net.load_state_dict(torch.load(ctx_out / "last.pt", weights_only=True)["model"])
    net.eval()
    patches, scalars = note_patches(log_map_db(mix, sr), notes[:, :4])
    with torch.no_grad():
        y = net(torch.from_numpy(patches), torch.from_numpy(scalars))
    np.testing.assert_allclose(all_notes[0], torch.sigmoid(y[:, :5]).numpy(), atol=1e-4)
    # and what else the file plays changes a note's outputs
    bass_only = clf.predict(mix, sr, notes[notes[:, 4] == 0][:, :4])
    first_bass = int(np.flatnonzero(notes[:, 4] == 0)[0])
    assert np.abs(bass_only[0][0] - all_notes[0][first_bass]).max() > 1e-4

    # a part head (notes of one part lie close; a file's logits pooled over them), from that checkpoint
    part_out, part_onnx = tmp_path / "run_part", tmp_path / "nc_part.onnx"
    part_args = ["--corpus", str(corpus), "--out", str(part_out), "--epochs", "1", "--batch-size", "8"]
    part_args += ["--part-dim", "8", "--context-chunk", "4", "--init", str(out / "last.pt")]
    assert main([*part_args, "--context", "16"]) == 2  # one or the other
    pool_args = ["--pool-temperature", "0.2", "--pool-weight", "0.7", "--export", str(part_onnx)]
    assert main([*part_args, *pool_args]) == 0
    part_log = (part_out / "train.log").read_text()
    assert '"valid_unpooled"' not in part_log and "started from" in part_log  # no --valid: no scores
    clf = NoteClassifier(part_onnx)
    assert clf.pooling == {"dim": 8, "temperature": 0.2, "weight": 0.7}
    m = onnx.load(str(part_onnx))  # metadata that does not match the graph's part embedding: refused
    entry = next(e for e in m.metadata_props if e.key == "stembridge_note_classes")
    entry.value = entry.value.replace('"dim": 8', '"dim": 16')
    onnx.save(m, str(tmp_path / "nc_part16.onnx"))
    with pytest.raises(ModelError, match="part_embedding of 8, metadata says 16"):
        NoteClassifier(tmp_path / "nc_part16.onnx")
    got = clf.predict(mix, sr, notes[:, :4], batch=5)
    net = NoteClassNet(part_dim=8)
    net.load_state_dict(torch.load(part_out / "last.pt", weights_only=True)["model"])
    net.eval()
    with torch.no_grad():
        h = net.embed(torch.from_numpy(patches), torch.from_numpy(scalars))
        y, z = net.head(h).numpy(), net.part_embedding(h).numpy()
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    want = pool_by_part(y[:, :5], z, 0.2, 0.7)  # the sounding logits pooled, the onset ones moved with them
    np.testing.assert_allclose(got[0], 1 / (1 + np.exp(-want)), atol=1e-4)
    np.testing.assert_allclose(got[1], 1 / (1 + np.exp(-(y[:, 5:10] + want - y[:, :5]))), atol=1e-4)
    assert np.abs(got[0] - 1 / (1 + np.exp(-y[:, :5]))).max() > 1e-4  # pooled, not the notes alone
    # exported again without pooling flags: the run's own pooling; bad flags refused in one line
    again = tmp_path / "nc_part_again.onnx"
    assert main(["--out", str(part_out), "--no-train", "--export", str(again)]) == 0
    assert NoteClassifier(again).pooling == {"dim": 8, "temperature": 0.2, "weight": 0.7}
    for flag, value in (("--pool-weight", "1.5"), ("--pool-temperature", "0"), ("--part-dim", "-1")):
        assert main(["--out", str(part_out), "--no-train", flag, value, "--export", str(again)]) == 2
    # a part head of another width is not carried over by --init (logged), the rest is
    wide_out = tmp_path / "run_wide"
    wide = ["--corpus", str(corpus), "--out", str(wide_out), "--epochs", "1", "--batch-size", "8", "--part-dim", "4"]
    assert main([*wide, "--context-chunk", "4", "--init", str(part_out / "last.pt")]) == 0
    assert "not carried over: part.weight, part.bias" in (wide_out / "train.log").read_text()

    # another shape (--width, --hidden): trained, exported and read back as the torch network gives it;
    # --init from a checkpoint of another shape is refused in one line, as are shapes out of range
    small_out, small_onnx = tmp_path / "run_small", tmp_path / "nc_small.onnx"
    small = ["--corpus", str(corpus), "--out", str(small_out), "--epochs", "1", "--batch-size", "8"]
    small += ["--width", "8", "--hidden", "32"]
    capsys.readouterr()
    assert main([*small, "--init", str(out / "last.pt")]) == 2
    assert "is a classifier of width 16, hidden 128; this run is width 8, hidden 32" in capsys.readouterr().err
    assert not (small_out / "features.npz").exists()  # refused before any work
    assert main([*small, "--init", str(tmp_path / "nothing.pt")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    assert main([*small, "--width", "0"]) == 2
    assert "--width must be 1..256" in capsys.readouterr().err
    assert main([*small, "--train-sources", "legacy,sf2", "--export", str(small_onnx)]) == 0
    command = json.loads(small_onnx.with_suffix(".json").read_text())["training"]["command"]
    assert "--width 8 --hidden 32" in command and "--train-sources legacy,sf2" in command
    assert re.search(
        r"\[train\] (\d+) of \1 notes: no part or parts of legacy, sf2", (small_out / "train.log").read_text()
    )
    capsys.readouterr()
    assert main([*small, "--resume"]) == 2  # resumed without its --train-sources: refused
    assert "trained with --train-sources legacy,sf2; resume it with the same" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="no part of .* has a timbre source of --train-sources"):
        main([*small[:3], str(tmp_path / "run_sf2"), *small[4:], "--train-sources", "sf2"])  # this corpus: legacy
    assert main([*small, "--train-sources", "sf2", "--context", "8"]) == 2
    assert "one or the other" in capsys.readouterr().err
    assert main([*small[:-4], "--train-sources", "legacy,sf2", "--resume"]) == 2  # without its shape: refused
    assert "is a classifier of width 8, hidden 32; this run is width 16, hidden 128" in capsys.readouterr().err
    net = load_classifier([small_out / "last.pt"])
    assert (net.hidden, net.c1.out_channels) == (32, 8)
    with torch.no_grad():
        y = net(torch.from_numpy(patches), torch.from_numpy(scalars))
    got = NoteClassifier(small_onnx).predict(mix, sr, notes[:, :4])
    np.testing.assert_allclose(got[0], torch.sigmoid(y[:, :5]).numpy(), atol=1e-4)

    # --widen: a narrower --init widened so that it computes the same outputs, then trained
    wid = ["--corpus", str(corpus), "--out", str(tmp_path / "run_widen"), "--epochs", "1", "--batch-size", "8"]
    wid += ["--init", str(small_out / "last.pt")]
    capsys.readouterr()
    assert main(wid) == 2
    assert "(--widen starts a wider run from a narrower --init)" in capsys.readouterr().err
    wid_onnx = tmp_path / "nc_widen.onnx"
    assert main([*wid, "--widen", "--part-dim", "4", "--context-chunk", "4", "--export", str(wid_onnx)]) == 0
    wid_log = (tmp_path / "run_widen" / "train.log").read_text()
    assert "widened to width 16, hidden 128" in wid_log and "(new: part.weight, part.bias)" in wid_log
    assert " --widen" in json.loads(wid_onnx.with_suffix(".json").read_text())["training"]["command"]
    assert load_classifier([tmp_path / "run_widen" / "last.pt"]).hidden == 128
    narrow = [*small[:3], str(tmp_path / "run_narrow"), *small[4:], "--init", str(out / "last.pt"), "--widen"]
    assert main(narrow) == 2  # narrower than its --init: refused, --widen or not
    assert "is a classifier of width 16, hidden 128; this run is width 8, hidden 32" in capsys.readouterr().err

    # --family-weight: an auxiliary GM-family head, new on top of a checkpoint, trained and left out of the export
    fam_out, fam_onnx = tmp_path / "run_fam", tmp_path / "nc_fam.onnx"
    fam = [
        "--corpus",
        str(corpus),
        "--out",
        str(fam_out),
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--family-weight",
        "0.5",
    ]
    assert main([*fam, "--init", str(out / "last.pt"), "--export", str(fam_onnx)]) == 0
    assert "(new: fam.weight, fam.bias)" in (fam_out / "train.log").read_text()
    assert load_classifier([fam_out / "last.pt"]).fam.out_features == 16
    assert NoteClassifier(fam_onnx).predict(mix, sr, notes[:, :4])[0].shape == (16, 5)
    assert not [i.name for i in onnx.load(str(fam_onnx)).graph.initializer if "fam" in i.name]
    assert "--family-weight 0.5" in json.loads(fam_onnx.with_suffix(".json").read_text())["training"]["command"]
    capsys.readouterr()
    assert main([*fam[:-2], "--resume"]) == 2  # resumed without its --family-weight: refused
    assert "trained with --family-weight 0.5; resume it with the same (this run: 0.0)" in capsys.readouterr().err
    assert main([*fam[:-1], "-1"]) == 2
    assert "--family-weight must be a number >= 0" in capsys.readouterr().err

    # --dominance-floor: notes of one true class weighted by their dominance (computed once, cached)
    dom_out, dom_onnx = tmp_path / "run_dom", tmp_path / "nc_dom.onnx"
    dom = ["--corpus", str(corpus), "--out", str(dom_out), "--epochs", "1", "--batch-size", "8"]
    assert main([*dom, "--dominance-floor", "0.3", "--init", str(out / "last.pt"), "--export", str(dom_onnx)]) == 0
    dom_log = (dom_out / "train.log").read_text()
    assert "[train] dominance of" in dom_log and "[train] note weights: mean" in dom_log
    assert "--dominance-floor 0.3" in json.loads(dom_onnx.with_suffix(".json").read_text())["training"]["command"]
    with np.load(dom_out / "features.npz") as z:
        dom_feats = {k: z[k] for k in ("Y", "N", "K")}
    with np.load(dom_out / "dominance.npz") as z:
        dominance = z["dominance"]
    one = dom_feats["Y"][:, :5].sum(axis=1) == 1
    assert dominance.shape == (len(one),) and np.isnan(dominance[~one]).all()
    assert np.nanmin(dominance[one]) >= 0 and np.isfinite(dominance[one]).mean() > 0.5
    want = np.where(np.isfinite(dominance), np.clip(np.nan_to_num(dominance), 0.3, 1.0), 1.0)
    run, dom_tracks = argparse.Namespace(dominance_floor=0.3, out=dom_out), sorted(corpus.iterdir())
    logged: list[str] = []
    np.testing.assert_allclose(note_weights(dom_feats, run, dom_tracks, logged.append), want, rtol=1e-6)
    assert not any("dominance of" in line for line in logged)  # read from the cache
    other_notes = {**dom_feats, "N": dom_feats["N"] + np.array([0.01, 0.01, 0, 0])}  # as many notes, others
    note_weights(other_notes, run, dom_tracks, logged.append)
    assert any("dominance of" in line for line in logged)  # the key differs: computed again
    np.testing.assert_allclose(dominance, note_dominance(dom_feats, dom_tracks))
    assert (note_weights(dom_feats, argparse.Namespace(dominance_floor=1.0), dom_tracks) == 1).all()
    capsys.readouterr()
    assert main([*dom, "--resume"]) == 2  # resumed without its --dominance-floor: refused
    assert "trained with --dominance-floor 0.3; resume it with the same (this run: 1.0)" in capsys.readouterr().err
    for bad in ("1.5", "0", "nan"):
        assert main([*dom, "--dominance-floor", bad]) == 2
        assert "--dominance-floor must be in (0, 1]" in capsys.readouterr().err
    # the weights reach the loss: the same run unweighted ends elsewhere
    plain_out = tmp_path / "run_dom_plain"
    assert main([*dom[:3], str(plain_out), *dom[4:], "--init", str(out / "last.pt")]) == 0
    a = torch.load(dom_out / "last.pt", weights_only=True)["model"]["out.weight"]
    b = torch.load(plain_out / "last.pt", weights_only=True)["model"]["out.weight"]
    assert not torch.equal(a, b)

    # --clean-weight: a second loss on the same notes cut from their own part's stem (built once, cached)
    cl_out = tmp_path / "run_clean"
    cl = ["--corpus", str(corpus), "--out", str(cl_out), "--epochs", "1", "--batch-size", "8"]
    assert main([*cl, "--clean-weight", "0.5", "--init", str(out / "last.pt")]) == 0
    assert "[train] clean patches of" in (cl_out / "train.log").read_text()
    with np.load(cl_out / "features.npz") as z:
        cl_feats = {k: z[k] for k in ("P", "Y", "N", "K", "Q")}
    with np.load(cl_out / "clean_patches.npz") as z:
        clean = z["patches"]
    rows = one_part_notes(cl_feats)
    assert len(rows) > 4 and clean.shape == (len(rows), *cl_feats["P"].shape[1:])
    cl_tracks = sorted(corpus.iterdir())
    for j in (0, len(rows) - 1):  # a note's clean patch is its patch of its own part's stem alone
        i = rows[j]
        stem, stem_sr = sf.read(cl_tracks[cl_feats["K"][i]] / "stems" / f"S0{cl_feats['Q'][i]}.flac", dtype="float32")
        want, _ = note_patches(log_map_db(stem, stem_sr), cl_feats["N"][i : i + 1])
        np.testing.assert_allclose(clean[j].astype(np.float32), want[0], atol=2e-3)
        assert np.abs(clean[j].astype(np.float32) - cl_feats["P"][i].astype(np.float32)).max() > 0.1  # not the mix
    logged = []
    row, again = clean_targets(cl_feats, argparse.Namespace(out=cl_out), cl_tracks, logged.append)
    assert not logged and np.array_equal(again, clean)  # read from the cache
    assert (row[rows] == np.arange(len(rows))).all() and (np.delete(row, rows) == -1).all()
    other_parts = {
        **cl_feats,
        "Q": np.where(cl_feats["Q"] >= 0, 1 - cl_feats["Q"], -1),
    }  # the same notes, parts swapped
    clean_targets(other_parts, argparse.Namespace(out=cl_out), cl_tracks, logged.append)
    assert any("clean patches of" in line for line in logged)  # the key differs: built again
    # the clean loss reaches the weights: the same run with a negligible weight (the same random draws) ends elsewhere
    tiny_out = tmp_path / "run_clean_tiny"
    assert main([*cl[:3], str(tiny_out), *cl[4:], "--clean-weight", "1e-9", "--init", str(out / "last.pt")]) == 0
    a = torch.load(cl_out / "last.pt", weights_only=True)["model"]["out.weight"]
    assert not torch.equal(a, torch.load(tiny_out / "last.pt", weights_only=True)["model"]["out.weight"])
    capsys.readouterr()
    assert main([*cl, "--resume"]) == 2  # resumed without its --clean-weight: refused
    assert "trained with --clean-weight 0.5; resume it with the same (this run: 0.0)" in capsys.readouterr().err
    for bad in ("-1", "nan"):
        assert main([*cl, "--clean-weight", bad]) == 2
        assert "--clean-weight must be a number >= 0" in capsys.readouterr().err

    # an ensemble: OUT/last.pt and a second classifier as one graph, the mean of their logits
    torch.manual_seed(3)
    other = NoteClassNet()
    torch.save({"model": other.state_dict()}, tmp_path / "other.pt")
    ens_onnx = tmp_path / "nc_ens.onnx"
    ens_args = ["--out", str(out), "--no-train", "--valid", str(corpus), "--ensemble", str(tmp_path / "other.pt")]
    assert main([*ens_args[:3], *ens_args[5:]]) == 2  # --ensemble without --valid: refused
    assert main([*ens_args[:-1], str(ctx_out / "last.pt"), "--export", str(ens_onnx)]) == 2  # a context head: refused
    assert main([*ens_args[:-1], str(part_out / "last.pt"), "--export", str(ens_onnx)]) == 2  # a part head: refused
    assert not ens_onnx.exists()
    assert main([*ens_args, "--export", str(ens_onnx)]) == 0
    assert json.loads(ens_onnx.with_suffix(".json").read_text())["ensemble"][1] == str(tmp_path / "other.pt")
    first = NoteClassNet()
    first.load_state_dict(torch.load(out / "last.pt", weights_only=True)["model"])
    first.eval(), other.eval()
    with torch.no_grad():
        pt, st = torch.from_numpy(patches), torch.from_numpy(scalars)
        mean_logits = (first(pt, st) + other(pt, st)) / 2
    got = NoteClassifier(ens_onnx).predict(mix, sr, notes[:, :4])
    np.testing.assert_allclose(got[0], torch.sigmoid(mean_logits[:, :5]).numpy(), atol=1e-4)
    assert (
        np.abs(got[0] - NoteClassifier(retuned).predict(mix, sr, notes[:, :4])[0]).max() > 1e-3
    )  # not the first alone


def test_widened_network_computes_the_same_outputs() -> None:
    """``widen_state``: a network with twice the channels and units, part and family heads included,
    gives the narrow one's logits and part embeddings to float precision, and its new units train."""
    torch.manual_seed(1)
    small = NoteClassNet(width=4, hidden=16, part_dim=8, families=16).eval()
    wide = NoteClassNet(width=8, hidden=40, part_dim=8, families=16)
    wide.load_state_dict(widen_state(small.state_dict(), wide))
    wide.eval()
    patch, scalars = torch.randn(6, N_BINS, PATCH["frames"]), torch.randn(6, 2)
    with torch.no_grad():
        h_small, h_wide = small.embed(patch, scalars), wide.embed(patch, scalars)
        torch.testing.assert_close(wide.head(h_wide), small.head(h_small), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(wide.part_embedding(h_wide), small.part_embedding(h_small), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(wide.fam(h_wide), small.fam(h_small), atol=1e-5, rtol=1e-5)
        assert h_wide[:, 16:].abs().sum() > 0  # the new units are alive, only silenced downstream
    wide.train()
    wide.head(wide.embed(patch, scalars)).sum().backward()
    assert wide.out.weight.grad[:, 16:].abs().sum() > 0
    # a part head of another width is left as a plain --init leaves it (not carried over); a context head refused
    other = widen_state(small.state_dict(), NoteClassNet(width=8, hidden=40, part_dim=4))
    assert other["part.weight"].shape == (8, 16) and "fam.weight" not in NoteClassNet(width=8, hidden=40).state_dict()
    with pytest.raises(ValueError, match="a context head"):
        widen_state(NoteClassNet(width=4, hidden=16, context=8).state_dict(), NoteClassNet(width=8, hidden=40))


def test_labels_of_transcribed_notes() -> None:
    # true notes: a bass C2 0-1 s, a piano C2 at 0.5-1 s, a guitar E4 at 2-3 s
    true = np.array([[0.0, 1.0, 36, 90, 0], [0.5, 1.0, 36, 90, 1], [2.0, 3.0, 64, 90, 2]], np.float64)
    est = np.array(
        [
            [0.03, 0.9, 36, 80],  # the bass note, 30 ms late: sounds in bass, starts in bass
            [0.49, 0.9, 36, 80],  # the piano's onset while the bass holds: sounds in both, starts in piano
            [0.2, 0.4, 36, 80],  # the bass, re-triggered: sounds in bass, no onset
            [2.0, 2.5, 76, 80],  # the guitar's octave: nothing
            [2.08, 3.0, 64, 80],  # the guitar, 80 ms late: sounds, no onset within 50 ms
        ]
    )
    sounding, onset, shift_s = note_labels(est, true)
    assert sounding[:, :3].tolist() == [[1, 0, 0], [1, 1, 0], [1, 0, 0], [0, 0, 0], [0, 0, 1]]
    # an onset within 0.15 s is the note's own (found late or early); the shift moves it there
    assert onset[:, :3].tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0], [0, 0, 1]]
    assert not sounding[:, 3:].any() and not onset[:, 3:].any()
    np.testing.assert_allclose(shift_s, [-0.03, 0.01, np.nan, np.nan, -0.08], atol=1e-6)


def test_source_mask_keeps_parts_of_the_named_sources(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tracks = []
    for t, sources in enumerate((("sf2", "synth"), ("npm", "sf2", "synth"), (None,))):
        tracks.append(tmp_path / f"T{t}")
        tracks[-1].mkdir()
        stems = {f"S{j:02d}": ({"timbre_source": s} if s else {}) for j, s in enumerate(sources)}
        (tracks[-1] / "metadata.yaml").write_text(json.dumps({"stems": stems}))
    track = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2])
    part = np.array([0, 1, -1, 0, 1, 2, 1, 0, -1])
    assert source_mask(track, part, tracks, {"sf2"}).tolist() == [1, 0, 1, 0, 1, 0, 1, 0, 1]
    assert source_mask(track, part, tracks, {"npm", "synth"}).tolist() == [0, 1, 1, 1, 0, 1, 0, 0, 1]
    assert source_mask(track, part, tracks, {"legacy"}).tolist() == [0, 0, 1, 0, 0, 0, 0, 1, 1]
    assert main(["--out", str(tmp_path / "run"), "--train-sources", "sf2,bogus"]) == 2
    for t, programs in enumerate(((33, 48), (0, 40, 56), (16,))):
        stems = {f"S{j:02d}": {"program_num": g} for j, g in enumerate(programs)}
        (tracks[t] / "metadata.yaml").write_text(json.dumps({"stems": stems}))
    assert part_families(track, part, tracks).tolist() == [4, 6, -1, 0, 5, 7, 5, 2, -1]
    (tracks[2] / "metadata.yaml").write_text(json.dumps({"stems": {"S00": {}}}))  # no program: no family
    assert part_families(track, part, tracks).tolist() == [4, 6, -1, 0, 5, 7, 5, -1, -1]
    assert "--train-sources takes some of" in capsys.readouterr().err


def test_missing_corpus_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--corpus", str(tmp_path / "none"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no corpus" in err[0]


def test_part_labels_pooling_and_contrast() -> None:
    # true notes with their part (last column): a bass line (part 0), a piano (part 1) doubling it at 0.5 s
    true = np.array(
        [[0.0, 1.0, 36, 90, 0, 0], [0.5, 1.0, 36, 90, 1, 1], [1.0, 2.0, 40, 90, 0, 0], [1.0, 2.0, 64, 90, 1, 1]]
    )
    est = np.array(
        [[0.02, 0.4, 36, 80], [0.55, 0.9, 36, 80], [1.01, 1.9, 40, 80], [1.0, 1.5, 64, 80], [1.0, 1.5, 76, 80]]
    )
    # the unison at 0.55 s sounds in both parts (no single part), the octave ghost in none
    assert note_parts(est, true).tolist() == [0, -1, 0, 1, -1]

    # pooling: two notes share a part embedding, a third lies apart; weight 0 keeps the logits
    logits = np.array([[4.0, -4.0], [-1.0, 1.0], [-3.0, 3.0]], np.float32)
    emb = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], np.float32)
    np.testing.assert_allclose(pool_by_part(logits, emb, 0.1, 0.0), logits)
    pooled = pool_by_part(logits, emb, 0.01, 1.0)  # sharp: each note takes its part's mean
    np.testing.assert_allclose(pooled, [[1.5, -1.5], [1.5, -1.5], [-3.0, 3.0]], atol=1e-4)
    half = pool_by_part(logits, emb, 0.01, 0.5, rows=2)  # computed in blocks of rows: the same
    np.testing.assert_allclose(half, 0.5 * logits + 0.5 * pooled, atol=1e-4)
    assert half[1].argmax() == 0  # the doubtful note takes its part's class
    per_class = pool_by_part(logits, emb, 0.01, [1.0, 0.0])  # a weight per class: the second kept as it was
    np.testing.assert_allclose(per_class, np.stack([pooled[:, 0], logits[:, 1]], axis=1), atol=1e-4)

    # the contrastive loss is low when parts lie apart, high when they are mixed, 0 without positives
    part = torch.tensor([0, 0, 1, 1, -1])
    group = torch.tensor([0, 0, 0, 0, 0])
    apart = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [-1.0, 0.0]])
    mixed = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    assert part_contrast_loss(apart, part, group) < 0.01 < 5.0 < part_contrast_loss(mixed, part, group)
    # groups are separate tracks: part 0 of one track is not part 0 of another
    assert part_contrast_loss(apart, part, torch.tensor([0, 1, 0, 1, 0])) == 0.0
