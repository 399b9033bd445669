"""Reader of the Slakh layout: stems + other sum to the mix, notes line up with audio energy."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf
import yaml

from bridge.instruments import DRUM_CLASS_OF
from export.data import corpus
from export.data.slakh import list_tracks, load_track
from export.data.song import METERS, Arrangement, Part
from export.data.track import TrackPlan, render_track

pytestmark = pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="fluidsynth not installed")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("reader_corpus")
    corpus.build_corpus(root, hours=None, n_tracks=2, seed=5, jobs=1, min_s=4, max_s=5, progress=False)
    return root


@pytest.fixture(scope="module")
def known_track(tmp_path_factory):
    """A hand-made track: isolated piano notes and drum hits at known times, no augmentation."""
    onsets = np.array([0.5, 1.5, 2.5, 3.5])
    piano = np.stack([onsets, onsets + 0.4, [60, 64, 67, 72], [100] * 4], axis=1)
    drums = np.stack([onsets + 0.5, onsets + 0.6, [36, 38, 36, 81], [110] * 4], axis=1)
    flute = np.array([[0.2, 4.5, 79, 80]])
    arr = Arrangement(qpm=120.0, meter=METERS["4/4"], duration_s=4.5)
    arr.parts = [Part(0, False, piano, "piano"), Part(0, True, drums, "drums"), Part(73, False, flute, "other")]
    plan = TrackPlan(0, 0, "Track00001", 4.5, "FluidR3_GM", "train", arr, augment=False)
    d = tmp_path_factory.mktemp("known") / "Track00001"
    render_track(plan, d)
    return d, onsets


def test_list_tracks_and_splits(tiny):
    tracks = list_tracks(tiny)
    assert [t.name for t in tracks] == ["Track00001", "Track00002"]
    assert list_tracks(tiny, split="train") == tracks
    assert list_tracks(tiny, split="validation") == []


def test_stems_plus_other_equal_mix(tiny):
    for t in list_tracks(tiny):
        d = load_track(t)
        n = len(d["mix"])
        assert d["mix"].dtype == np.float32 and d["mix"].shape == (n,)
        assert d["stems"].shape == (5, n) and d["other"].shape == (n,)
        np.testing.assert_allclose(d["stems"].sum(0) + d["other"], d["mix"], atol=1e-4)
        file_mix, _ = sf.read(str(t / "mix.flac"), dtype="float32")
        np.testing.assert_allclose(file_mix, d["mix"], atol=1e-4)
        assert len(d["notes"]) == 5
        for a in d["notes"]:
            assert a.ndim == 2 and a.shape[1] == 4


def test_class_mapping_and_notes(known_track):
    path, onsets = known_track
    d = load_track(path, stems=("drums", "bass", "piano", "guitar", "strings"))
    drums, bass, piano = d["stems"][0], d["stems"][1], d["stems"][2]
    assert np.abs(bass).max() == 0 and np.abs(d["other"]).max() > 0.01
    np.testing.assert_allclose(d["notes"][2][:, 0], onsets, atol=2e-3)
    np.testing.assert_array_equal(d["notes"][2][:, 2], [60, 64, 67, 72])
    # GM 81 (open triangle) has no drum class and is dropped; 36/38 are kept.
    assert 81 not in DRUM_CLASS_OF
    np.testing.assert_array_equal(d["notes"][0][:, 2], [36, 38, 36])
    sr = d["sample_rate"]

    def rms(x, t0, t1):
        return float(np.sqrt(np.mean(x[int(t0 * sr) : int(t1 * sr)] ** 2)) + 1e-9)

    for on in d["notes"][2][:, 0]:
        assert rms(piano, on, on + 0.1) > 10 * rms(piano, on - 0.1, on - 0.02)
    for on in d["notes"][0][:, 0]:
        assert rms(drums, on, on + 0.05) > 10 * rms(drums, on - 0.06, on - 0.01)


def test_audio_rendered_false_and_resampling(known_track, tmp_path):
    path, _ = known_track
    copy = tmp_path / "Track00001"
    shutil.copytree(path, copy)
    meta = yaml.safe_load((copy / "metadata.yaml").read_text())
    meta["stems"]["S01"]["audio_rendered"] = False  # the drums
    (copy / "metadata.yaml").write_text(yaml.safe_dump(meta))
    d = load_track(copy, sample_rate=22050)
    assert abs(len(d["mix"]) - 4.5 * 22050) <= 2
    assert np.abs(d["stems"][0]).max() == 0 and len(d["notes"][0]) == 0
    np.testing.assert_allclose(d["stems"].sum(0) + d["other"], d["mix"], atol=1e-4)
