"""The note classifier's trainer (export/note_classes.py): a two-track corpus rendered with
FluidSynth, one epoch, ONNX export with its metadata and card, read back by the bridge."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from bridge.transcribe.note_classes import NoteClassifier
from export.note_classes import main, track_notes
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
        stems[sid] = {"program_num": program, "is_drum": False, "audio_rendered": True}
    sf.write(d / "mix.flac", sum(audio), SR)
    (d / "metadata.yaml").write_text(yaml.safe_dump({"stems": stems, "midi_dir": "MIDI"}))
    return d


def test_train_export_and_load(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    for i, shift in enumerate((0, 2)):
        _track(corpus, f"Track{i:05d}", shift)
    notes = track_notes(corpus / "Track00000")
    assert sorted(np.bincount(notes[:, 4].astype(int), minlength=5)[:2].tolist()) == [8, 8]  # bass, piano
    out, onnx_path = tmp_path / "run", tmp_path / "nc.onnx"
    args = [
        "--corpus",
        str(corpus),
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
    clf = NoteClassifier(onnx_path)
    mix, sr = sf.read(corpus / "Track00000" / "mix.flac", dtype="float32")
    prob = clf.probabilities(mix, sr, notes[:, :4])
    assert prob.shape == (16, 5)
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, atol=1e-5)
    assert clf.probabilities(mix, sr, np.zeros((0, 4))).shape == (0, 5)


def test_missing_corpus_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--corpus", str(tmp_path / "none"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no corpus" in err[0]
