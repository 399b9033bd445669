"""Tiny corpora rendered with FluidSynth: reproducibility, Slakh layout, metadata and resume."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import yaml

from export.data import corpus
from export.data.render import SOUNDFONT_HELDOUT, drum_soundfonts, train_soundfonts
from export.data.sources import SOURCES

pytestmark = pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="fluidsynth not installed")

ARGS = ["--tracks", "2", "--seed", "11", "--segment-seconds", "4", "6", "--jobs", "1", "--quiet"]


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory):
    a = tmp_path_factory.mktemp("corpus_a")
    b = tmp_path_factory.mktemp("corpus_b")
    assert corpus.main(["--out", str(a), *ARGS]) == 0
    assert corpus.main(["--out", str(b), *ARGS[:-3], "--jobs", "2", "--quiet"]) == 0
    return a, b


def _files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and p.name != "manifest.json")


def test_same_seed_same_files(two_builds):
    a, b = two_builds
    fa, fb = _files(a), _files(b)
    assert fa == fb and len(fa) > 8
    for rel in fa:
        if rel.suffix == ".flac":
            xa, _ = sf.read(str(a / rel))
            xb, _ = sf.read(str(b / rel))
            np.testing.assert_array_equal(xa, xb)
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_slakh_layout_and_metadata(two_builds):
    root, _ = two_builds
    tracks = sorted(p for p in root.iterdir() if p.name.startswith("Track"))
    assert [t.name for t in tracks] == ["Track00001", "Track00002"]
    for t in tracks:
        meta = yaml.safe_load((t / "metadata.yaml").read_text())
        for key in ("UUID", "audio_dir", "midi_dir", "stems", "split", "normalized", "overall_gain"):
            assert key in meta
        assert meta["audio_dir"] == "stems" and meta["midi_dir"] == "MIDI"
        assert "MuseScore" not in meta["soundfont"]
        assert meta["timbres"] and all(t.split(":")[0] in SOURCES for t in meta["timbres"])
        mix, sr = sf.read(str(t / "mix.flac"), dtype="float32")
        assert sr == 44100 and mix.ndim == 1
        assert 4.0 * sr <= len(mix) <= 6.0 * sr + 1
        assert np.abs(mix).max() <= 10 ** (-1 / 20) + 1e-4
        total = np.zeros_like(mix)
        for sid, info in meta["stems"].items():
            assert sid.startswith("S") and len(sid) == 3
            for k in ("inst_class", "program_num", "is_drum", "midi_program_name", "plugin_name", "timbre_source"):
                assert k in info
            assert info["audio_rendered"] is True
            stem, sr2 = sf.read(str(t / "stems" / f"{sid}.flac"), dtype="float32")
            assert sr2 == 44100 and stem.shape == mix.shape
            assert (t / "MIDI" / f"{sid}.mid").is_file()
            total += stem
        assert np.abs(total - mix).max() < 1e-4
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["seed"] == 11 and manifest["n_tracks"] == 2
    assert set(manifest["soundfonts"]) == set(train_soundfonts()) | set(drum_soundfonts())
    assert set(manifest["timbre_sources"]) <= set(SOURCES)
    assert {t for tr in manifest["tracks"] for t in tr["timbres"]} <= {
        f"{src}:{name}" for src, names in manifest["timbre_sources"].items() for name in names
    } | {f"synth:{k}" for k in ("additive", "fm", "pluck", "bowed", "drums")}
    assert all(len(v["sha256"]) == 64 for v in manifest["soundfonts"].values())
    assert str(SOUNDFONT_HELDOUT) not in json.dumps(manifest["soundfonts"])
    assert {t["split"] for t in manifest["tracks"]} <= {"train", "validation"}
    assert "fluidsynth" in manifest["versions"]


def test_resume_skips_complete_tracks(two_builds):
    root, _ = two_builds
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*.flac")}
    assert corpus.main(["--out", str(root), *ARGS]) == 0
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.flac")} == before
    assert not (root / ".tmp").exists()


def test_extra_other_is_a_setting_a_resume_must_match(two_builds, capsys):
    root, _ = two_builds
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*.flac")}
    assert corpus.main(["--out", str(root), *ARGS, "--extra-other", "2"]) == 2
    assert "extra_other differ" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.flac")} == before
    assert corpus.main(["--out", str(root), *ARGS, "--extra-other", "9"]) == 2
    assert "--extra-other needs 0 <= N <= 8" in capsys.readouterr().err


def test_a_corpus_made_with_extra_other_resumes_only_with_it(tmp_path, capsys):
    base = {"min_s": 4.0, "max_s": 6.0, "sources": None, "holdout": []}
    stamped = tmp_path / "stamped"
    stamped.mkdir()
    corpus.check_settings(stamped, 3, {**base, "extra_other": 2}, [])  # first run: writes the stamp
    corpus.check_settings(stamped, 3, {**base, "extra_other": 2}, [])
    with pytest.raises(RuntimeError, match="extra_other differ"):
        corpus.check_settings(stamped, 3, base, [])  # the flag left off
    old = tmp_path / "manifest_only"  # a corpus from before the stamp: only its manifest
    old.mkdir()
    manifest = {"seed": 3, "versions": {"generator": corpus.GENERATOR_VERSION}, "generator": base}
    (old / "manifest.json").write_text(json.dumps(manifest))
    corpus.check_settings(old, 3, base, [])
    with pytest.raises(RuntimeError, match="extra_other differ"):
        corpus.check_settings(old, 3, {**base, "extra_other": 2}, [])
    assert (
        corpus.main(["--out", str(tmp_path / "h"), *ARGS, "--extra-other", "1", "--soundfont", str(SOUNDFONT_HELDOUT)])
        == 2
    )
    assert "held-out" in capsys.readouterr().err
    assert not (tmp_path / "h").exists()


def test_extra_other_plans_more_other_parts_on_the_same_arrangement():
    from export.data.track import plan_track

    for index in range(4):
        plain = plan_track(5, index, 4.0, 6.0, classical_p=0.0)
        more = plan_track(5, index, 4.0, 6.0, classical_p=0.0, extra_other=3)
        n = len(plain.arrangement.parts)
        for a, b in zip(plain.arrangement.parts, more.arrangement.parts[:n]):  # a drum kit is drawn later
            assert (a.role, a.is_drum) == (b.role, b.is_drum) and (a.is_drum or a.program == b.program)
            np.testing.assert_array_equal(np.asarray(a.notes), np.asarray(b.notes))
        assert [p.role for p in more.arrangement.parts[n:]] == ["other"] * 3


def test_validation_split_every_tenth_track():
    from export.data.track import plan_track

    splits = [plan_track(1, i, classical_p=0.0).split for i in range(20)]
    assert splits.count("validation") == 2 and splits[9] == "validation"


def test_stem_soundfonts_keep_the_arrangement_and_mix_fonts_per_stem(tmp_path):
    from export.data.track import plan_track

    plain = plan_track(5, 3, 4.0, 6.0, classical_p=0.0)
    mixed = plan_track(5, 3, 4.0, 6.0, classical_p=0.0, stem_soundfonts=True)
    assert plain.part_soundfonts is None
    assert len(plain.arrangement.parts) == len(mixed.arrangement.parts)
    for a, b in zip(plain.arrangement.parts, mixed.arrangement.parts):
        assert a.program == b.program
        np.testing.assert_array_equal(np.asarray(a.notes), np.asarray(b.notes))
    assert mixed.part_soundfonts is not None and len(mixed.part_soundfonts) == len(mixed.arrangement.parts)
    assert set(mixed.part_soundfonts) <= set(train_soundfonts())
    fonts_seen = set()
    for index in range(8):
        fonts_seen |= set(plan_track(5, index, 4.0, 6.0, classical_p=0.0, stem_soundfonts=True).part_soundfonts)
    assert len(fonts_seen) >= 2

    out = tmp_path / "c"
    assert (
        corpus.main(
            [
                "--out",
                str(out),
                "--tracks",
                "1",
                "--seed",
                "5",
                "--segment-seconds",
                "4",
                "6",
                "--jobs",
                "1",
                "--quiet",
                "--sources",
                "legacy",
                "--stem-soundfonts",
            ]
        )
        == 0
    )
    meta = yaml.safe_load((out / "Track00001" / "metadata.yaml").read_text())
    plan = plan_track(5, 0, 4.0, 6.0, cache_dir=out / ".cache" / "music21", stem_soundfonts=True)
    fonts = train_soundfonts()
    assert [s["plugin_name"] for s in meta["stems"].values()] == [fonts[n].name for n in plan.part_soundfonts]
    assert json.loads((out / "manifest.json").read_text())["generator"]["stem_soundfonts"] is True
