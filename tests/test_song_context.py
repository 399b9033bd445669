"""The song-context model (bridge.transcribe.song_context): its features, how it refines the classifier's
evidence, its metadata checks, its export from torch (export/note_song.py) and the shipped model in the
blind path, on the MuseScore General render of tests/test_transcribe.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bridge.errors import ModelError
from bridge.transcribe import Transcriber
from bridge.transcribe.note_classes import PATCH, log_map_db, note_patches
from bridge.transcribe.song_context import (
    META_KEY,
    N_FEATURES,
    N_TIMBRE,
    SONG_CONTEXT_FILE,
    SongContext,
    refined_sounding,
    song_features,
    timbre_features,
)
from export.note_song import SongNet, export_onnx, main
from tests.conftest import json_meta_variant
from tests.test_parts import SR
from tests.test_transcribe import band  # noqa: F401  (the module's render, a fixture)

RNG = np.random.default_rng(7)


def test_refined_sounding_keeps_each_notes_level_and_follows_the_blend() -> None:
    sounding = RNG.uniform(0.01, 1.0, (50, 5)).astype(np.float32)
    q = RNG.dirichlet(np.ones(5), 50).astype(np.float32)
    top = sounding.max(axis=1)
    for blend in (0.0, 0.5, 1.0):
        out = refined_sounding(sounding, q, blend)
        assert (out.max(axis=1) <= top * (1 + 1e-6)).all() and (out.max(axis=1) >= (1 - blend) * top * (1 - 1e-6)).all()
        agree = sounding.argmax(axis=1) == q.argmax(axis=1)
        np.testing.assert_allclose(out.max(axis=1)[agree], top[agree], rtol=1e-5)  # the same best class: its level kept
    np.testing.assert_allclose(refined_sounding(sounding, q, 0.0), sounding, rtol=1e-6)
    np.testing.assert_array_equal(refined_sounding(sounding, q, 1.0).argmax(axis=1), q.argmax(axis=1))


def test_timbre_features_read_partials_relative_to_the_fundamental() -> None:
    """A synthetic patch: the fundamental at 0 (20 dB units), partial k at -0.1 k from the onset on, nothing
    before: the attack levels relative to the fundamental are -0.1 (k - 1), x 0.25."""
    patch = np.full((1, 180, PATCH["frames"]), PATCH["floor_db"] / 20.0, np.float32)
    rows = np.round(3 * (12 + 12 * np.log2(np.arange(1, 17)))).astype(int)
    for k, r in enumerate(rows, start=1):  # the 16th partial's row is the patch's edge: its last row stands in
        patch[0, min(r, 179), PATCH["frames_before"] :] = -0.1 * (k - 1)
    t = timbre_features(patch)
    assert t.shape == (1, N_TIMBRE)
    np.testing.assert_allclose(t[0, :16], 0.25 * -0.1 * np.arange(16), atol=1e-6)
    np.testing.assert_allclose(t[0, 16:32], 0.25 * -0.1 * np.arange(16), atol=1e-6)
    assert timbre_features(np.zeros((0, 180, 40), np.float32)).shape == (0, N_TIMBRE)


def _exported(tmp_path: Path, blend: float = 0.5) -> tuple[SongNet, Path]:
    torch.manual_seed(3)
    net = SongNet(hidden=32).eval()
    return net, export_onnx([net], tmp_path / "song.onnx", blend, card={"what": "test"})


def test_export_matches_torch_and_loads_with_its_metadata(tmp_path: Path) -> None:
    net, path = _exported(tmp_path)
    ctx = SongContext(path)
    assert ctx.blend == 0.5 and json.loads(path.with_suffix(".json").read_text())["what"] == "test"
    x = RNG.standard_normal((23, N_FEATURES)).astype(np.float32)
    with torch.no_grad():
        want = torch.softmax(net(torch.from_numpy(x)), dim=-1).numpy()
    np.testing.assert_allclose(ctx.probabilities(x), want, atol=1e-5)


def test_an_exported_ensemble_averages_its_members_probabilities(tmp_path: Path) -> None:
    nets = []
    for seed in (3, 4, 5):
        torch.manual_seed(seed)
        nets.append(SongNet(hidden=32).eval())
    path = export_onnx(nets, tmp_path / "ensemble.onnx", 0.3)
    ctx = SongContext(path)
    assert ctx.meta["members"] == 3
    x = RNG.standard_normal((31, N_FEATURES)).astype(np.float32)
    with torch.no_grad():
        each = [torch.softmax(n(torch.from_numpy(x)), dim=-1).numpy() for n in nets]
    got = ctx.probabilities(x)
    np.testing.assert_allclose(got, np.mean(each, axis=0), atol=1e-5)
    assert np.abs(got - each[0]).max() > 1e-3  # the members differ: the mean is not one of them


def test_the_command_exports_checkpoints_as_one_model_with_their_commands(tmp_path: Path) -> None:
    paths = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        paths.append(tmp_path / f"m{seed}.pt")
        torch.save(SongNet().state_dict(), paths[-1])
    paths[0].with_suffix(".train.log").write_text("# python -m export.note_song --seed 1\n[song] 3 training tracks\n")
    out = tmp_path / "models" / "ens.onnx"
    assert main(["--checkpoint", *map(str, paths), "--blend", "0.4", "--export", str(out)]) == 0
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["members"] == 2 and card["blend"] == 0.4 and SongContext(out).meta["members"] == 2
    assert [m["command"] for m in card["training"]["members"]] == ["python -m export.note_song --seed 1", None]
    for bad in (["--checkpoint", str(paths[0]), str(paths[0]), "--export", str(out)], ["--checkpoint", str(paths[0])]):
        with pytest.raises(SystemExit, match="2"):
            main(bad)
    with pytest.raises(SystemExit, match="2"):
        main(["--epochs", "3"])  # training without a corpus


def test_song_model_metadata_is_checked(tmp_path: Path) -> None:
    _, path = _exported(tmp_path)

    def with_meta(change: dict, name: str) -> Path:
        return json_meta_variant(path, META_KEY, change, tmp_path / name)

    with pytest.raises(ModelError, match="not a song-context model"):
        SongContext(with_meta({"kind": "note_classes"}, "kind.onnx"))
    with pytest.raises(ModelError, match="classes"):
        SongContext(with_meta({"classes": ["bass", "kazoo", "piano", "guitar", "strings"]}, "kazoo.onnx"))
    with pytest.raises(ModelError, match="features per note"):
        SongContext(with_meta({"n_features": 54}, "width.onnx"))
    with pytest.raises(ModelError, match="blend"):
        SongContext(with_meta({"blend": 1.5}, "blend.onnx"))
    with pytest.raises(ModelError, match="missing"):
        SongContext(tmp_path / "none.onnx")


def test_shipped_song_model_refines_the_classifiers_evidence(band: dict) -> None:  # noqa: F811
    """The shipped model on the render: the same notes, each note's highest probability at most the classifier's
    and at least (1 - blend) of it, the bass line
    still in bass; a file of fewer than two notes is left as it is."""
    assert SONG_CONTEXT_FILE.is_file()
    plain, refined = Transcriber(song_context=None), Transcriber()
    a, b = plain.analyse(band["mix"], SR), refined.analyse(band["mix"], SR)
    np.testing.assert_array_equal(a.notes, b.notes)
    np.testing.assert_array_equal(a.onset, b.onset)
    assert (b.sounding.max(axis=1) <= a.sounding.max(axis=1) * (1 + 1e-6)).all()
    assert (b.sounding.max(axis=1) >= (1 - refined.song.blend) * a.sounding.max(axis=1) * (1 - 1e-6)).all()
    assert not np.allclose(a.sounding, b.sounding)  # the song model moved something
    bass = a.notes[:, 2] < 50
    assert (b.sounding[bass].argmax(axis=1) == 0).mean() >= 0.8
    features = song_features(
        a.notes, a.sounding, a.onset, timbre_features(note_patches(log_map_db(band["mix"], SR), a.notes)[0])
    )
    assert features.shape == (len(a.notes), N_FEATURES) and np.isfinite(features).all()
    one = a.notes[:1]
    np.testing.assert_array_equal(
        refined.song.refine(note_patches(log_map_db(band["mix"], SR), one)[0], one, a.sounding[:1], a.onset[:1]),
        a.sounding[:1],
    )


def test_a_long_file_is_judged_in_sections(band: dict) -> None:  # noqa: F811
    """More notes than ``max_notes``: each section of consecutive notes (onset order) judged on its own, so
    the memory stays bounded on long files; one section is the whole file."""
    tr = Transcriber(song_context=None)
    a = tr.analyse(band["mix"], SR)
    pt = note_patches(log_map_db(band["mix"], SR), a.notes)[0]
    ctx = SongContext()
    whole = ctx.refine(pt, a.notes, a.sounding, a.onset, max_notes=len(a.notes))
    np.testing.assert_allclose(ctx.refine(pt, a.notes, a.sounding, a.onset), whole, atol=1e-6)
    half = (len(a.notes) + 1) // 2
    split = ctx.refine(pt, a.notes, a.sounding, a.onset, max_notes=half)
    order = np.argsort(a.notes[:, 0], kind="stable")
    first = order[: len(order) - len(order) // 2]
    alone = ctx.refine(pt[first], a.notes[first], a.sounding[first], a.onset[first], max_notes=len(a.notes))
    np.testing.assert_allclose(split[first], alone, atol=1e-6)
    assert not np.allclose(split, whole)  # the sections do not see each other


def test_separate_without_song_context(band: dict, tmp_path: Path) -> None:  # noqa: F811
    """``separate --no-song-context`` classes the notes from the classifier alone: the same written notes,
    other stems than the default's."""
    import soundfile as sf

    from bridge.cli import main

    mix = band["dir"] / "mix.wav"
    assert main(["separate", str(mix), "-o", str(tmp_path / "with"), "-q", "--shares", "0.3"]) == 0
    assert (
        main(["separate", str(mix), "-o", str(tmp_path / "without"), "-q", "--shares", "0.3", "--no-song-context"]) == 0
    )
    assert (tmp_path / "with/mix/notes.mid").read_bytes() == (tmp_path / "without/mix/notes.mid").read_bytes()
    differ = [
        s
        for s in ("bass", "piano", "guitar", "strings", "other")
        if not np.array_equal(sf.read(tmp_path / f"with/mix/{s}.wav")[0], sf.read(tmp_path / f"without/mix/{s}.wav")[0])
    ]
    assert differ, "the song context changed no stem"
    score = band["dir"] / "bass.mid"
    assert (
        main(["separate", str(mix), "-o", str(tmp_path / "x"), "-q", "--score", str(score), "--no-song-context"]) == 2
    )
