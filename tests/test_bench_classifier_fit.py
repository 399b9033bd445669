"""bench/classifier_fit.py: note and part accuracy, and the run over two feature files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import classifier_fit  # noqa: E402

from bridge.transcribe.note_classes import PATCH  # noqa: E402
from export.note_classes import N_BINS, NoteClassNet  # noqa: E402
from export.note_dominance import note_dominance  # noqa: E402


def _feats(n_tracks: int, per_part: int, seed: int) -> dict[str, np.ndarray]:
    """Two parts per track: part 0 bass (class 0), part 1 strings (class 3); one note of no part."""
    rng = np.random.default_rng(seed)
    y, k, q = [], [], []
    for t in range(n_tracks):
        for part, cls in ((0, 0), (1, 3)):
            for _ in range(per_part):
                row = np.zeros(10, np.uint8)
                row[cls] = 1
                y.append(row), k.append(t), q.append(part)
        y.append(np.zeros(10, np.uint8)), k.append(t), q.append(-1)
    n = len(y)
    return {
        "P": rng.uniform(-4, 0.5, (n, N_BINS, PATCH["frames"])).astype(np.float16),
        "S": rng.normal(size=(n, 2)).astype(np.float32),
        "Y": np.stack(y),
        "Q": np.asarray(q, np.int16),
        "K": np.asarray(k, np.int32),
    }


def test_accuracy_of_known_logits() -> None:
    f = _feats(2, 3, 0)
    logits = np.full((len(f["Y"]), 5), -5.0)
    logits[f["Q"] == 0, 0] = 5.0  # every bass note right
    logits[f["Q"] == 1, 2] = 5.0  # every strings note called guitar ...
    logits[np.flatnonzero((f["Q"] == 1) & (f["K"] == 0))[:2], 3] = 12.0  # ... but two of track 0's strings
    r = classifier_fit.accuracy(logits, f, 3)
    assert r["notes"] == 12 and r["parts"] == 4
    assert r["note_accuracy"] == round(8 / 12, 4)
    assert r["part_accuracy"] == 0.75  # track 0's strings part: mean logit (12 + 12 - 5) / 3 > 5, right
    assert r["confusion"][3] == [0, 0, 4, 2, 0] and r["confusion"][0] == [6, 0, 0, 0, 0]
    assert classifier_fit.accuracy(logits, f, 4)["parts"] == 0  # parts of 3 notes left out


def test_other_bias_moves_notes_to_and_from_other() -> None:
    f = _feats(2, 3, 0)
    logits = np.full((len(f["Y"]), 5), -5.0)
    logits[f["Q"] == 0, 0] = 5.0
    logits[f["Q"] == 1, 3] = 1.0  # strings right, by a margin of 1 over `other` ...
    logits[f["Q"] == 1, 4] = 0.0
    assert classifier_fit.with_other_bias(logits, 0.0, f, 3)["recall"] == [1.0, None, None, 1.0, None]
    moved = classifier_fit.with_other_bias(logits, 2.0, f, 3)  # ... which a bias of 2 overturns
    assert moved["recall"] == [1.0, None, None, 0.0, None] and moved["confusion"][3] == [0, 0, 0, 0, 6]
    assert logits[f["Q"] == 1, 4].max() == 0.0  # the caller's logits are left alone


def test_run_over_two_feature_files(tmp_path: Path) -> None:
    key = {"tracks": ["a", "b"], "decoding": {"min_note_frames": 11}}
    for name, seed in (("features.npz", 1), ("valid.npz", 2)):
        np.savez(tmp_path / name, key=json.dumps(key), **_feats(2, 4, seed))
    torch.manual_seed(0)
    net = NoteClassNet(width=4, hidden=8)
    torch.save({"model": net.state_dict(), "args": {}}, tmp_path / "c.pt")
    args = ["--features", str(tmp_path / "features.npz"), "--valid", str(tmp_path / "valid.npz")]
    args += ["--checkpoint", str(tmp_path / "c.pt"), "--json", str(tmp_path / "out.json")]
    assert classifier_fit.main(args) == 0
    row = json.loads((tmp_path / "out.json").read_text())["results"][str(tmp_path / "c.pt")]
    assert row["train"]["notes"] == row["valid"]["notes"] == 16 and row["valid"]["parts"] == 4
    assert 0.0 <= row["valid"]["note_accuracy"] <= 1.0
    assert classifier_fit.main([*args, "--other-bias", "-1", "1"]) == 0
    biased = json.loads((tmp_path / "out.json").read_text())["results"][str(tmp_path / "c.pt")]["valid_other_bias"]
    assert sorted(biased) == ["-1.0", "1.0"] and len(biased["1.0"]["recall"]) == 5
    # --corpus: the training parts per GM family, programs from the tracks' metadata
    corpus = tmp_path / "corpus"
    for name in ("a", "b"):
        (corpus / name).mkdir(parents=True)
        (corpus / name / "mix.flac").touch()
        source = "synth" if name == "a" else "npm"
        stems = {
            "S00": {"program_num": 33, "timbre_source": "sf2"},
            "S01": {"program_num": 48, "timbre_source": source},
        }
        (corpus / name / "metadata.yaml").write_text(json.dumps({"stems": stems}))  # bass, strings ensemble
    assert classifier_fit.main([*args, "--corpus", str(corpus)]) == 0
    row = json.loads((tmp_path / "out.json").read_text())["results"][str(tmp_path / "c.pt")]
    fams = row["train_family"]
    assert sorted(fams) == ["Bass", "Strings (continued)"]
    assert fams["Bass"]["parts"] == fams["Strings (continued)"]["parts"] == 2
    assert fams["Bass"]["notes"] == 8 and sum(fams["Bass"]["chosen"]) == 8
    assert sorted(row["train_source"]) == ["npm:strings", "sf2:bass", "synth:strings"]
    assert row["train_source"]["sf2:bass"]["notes"] == 8 and row["train_source"]["npm:strings"]["parts"] == 1

    assert classifier_fit.main([*args, "--valid-tracks", str(corpus)]) == 2  # no note times in these features
    with np.load(tmp_path / "valid.npz") as d:
        timed = {k: d[k] for k in d.files}
    timed["N"] = np.tile([0.1, 0.5, 45.0, 80.0], (len(timed["Y"]), 1))
    np.savez(tmp_path / "valid_timed.npz", **timed)
    timed_args = [*args[:3], str(tmp_path / "valid_timed.npz"), *args[4:]]
    assert classifier_fit.main([*timed_args, "--valid-tracks", str(tmp_path / "none")]) == 2  # no such tracks
    import soundfile as sf

    tone = 0.2 * np.sin(2 * np.pi * 110.0 * np.arange(22050) / 22050)
    for name in ("a", "b"):  # the corpus folders as the selection tracks, with stems: bass and strings at 110 Hz
        (corpus / name / "stems").mkdir()
        for sid, gain in (("S00", 1.0), ("S01", 0.5)):
            sf.write(str(corpus / name / "stems" / f"{sid}.flac"), gain * tone, 22050)
        sf.write(str(corpus / name / "mix.flac"), 1.5 * tone, 22050)
    assert classifier_fit.main([*timed_args, "--valid-tracks", str(corpus)]) == 0
    row = json.loads((tmp_path / "out.json").read_text())["results"][str(tmp_path / "c.pt")]
    by_dom = {b["from"]: b for b in row["valid_dominance"]}
    assert by_dom[0.25]["per_class"]["0"][0] == 8 and by_dom[0.1]["per_class"]["3"][0] == 8  # 4/9 and 1/9
    assert sorted(row["valid_program"]) == ["Electric Bass (finger)", "String Ensemble 1"]
    (corpus / "c").mkdir()
    (corpus / "c" / "mix.flac").touch()
    (corpus / "c" / "metadata.yaml").write_text("{}")
    assert classifier_fit.main([*args, "--corpus", str(corpus)]) == 2  # not the features' tracks: refused
    # the selection notes decoded otherwise: refused
    np.savez(tmp_path / "valid.npz", key=json.dumps({**key, "decoding": {"min_note_frames": 3}}), **_feats(2, 4, 2))
    assert classifier_fit.main(args) == 2
    assert classifier_fit.main([*args[:1], str(tmp_path / "nothing.npz"), *args[2:]]) == 2


def test_group_accuracy_of_known_logits(tmp_path: Path) -> None:
    f = _feats(2, 3, 0)
    tracks = []
    for t, source in enumerate(("synth", "npm")):
        tracks.append(tmp_path / str(t))
        tracks[-1].mkdir()
        stems = {
            "S00": {"program_num": 33, "timbre_source": "sf2"},
            "S01": {"program_num": 40, "timbre_source": source},
        }
        (tracks[-1] / "metadata.yaml").write_text(json.dumps({"stems": stems}))
    logits = np.full((len(f["Y"]), 5), -5.0)
    logits[f["Q"] == 0, 0] = 5.0  # bass right
    logits[(f["Q"] == 1) & (f["K"] == 0), 4] = 5.0  # track 0's (synth) strings called `other`
    logits[(f["Q"] == 1) & (f["K"] == 1), 3] = 5.0  # track 1's (npm) strings right
    r = classifier_fit.group_accuracy(logits, f, tracks, 3, "source")
    assert r["synth:strings"] == {
        "parts": 1,
        "part_accuracy": 0.0,
        "notes": 3,
        "note_accuracy": 0.0,
        "chosen": [0, 0, 0, 0, 3],
    }
    assert r["npm:strings"]["note_accuracy"] == 1.0 and r["sf2:bass"]["parts"] == 2
    fam = classifier_fit.group_accuracy(logits, f, tracks, 3, "family")
    assert fam["Strings"]["notes"] == 6 and fam["Strings"]["note_accuracy"] == 0.5  # program 40: violin
    prog = classifier_fit.group_accuracy(logits, f, tracks, 3, "program")
    assert set(prog) == {"Electric Bass (finger)", "Violin"} and prog["Violin"]["chosen"] == [0, 0, 0, 3, 3]


def test_dominance_is_the_class_share_of_the_notes_harmonics(tmp_path: Path) -> None:
    import soundfile as sf
    import yaml

    sr, t = 22050, np.arange(2 * 22050) / 22050
    bass = 0.3 * np.sin(2 * np.pi * 110.0 * t)  # pitch 45 throughout
    strings = 0.3 * np.sin(2 * np.pi * 466.16 * t)  # pitch 70, off the bass's partials
    strings += np.where(t >= 1.0, 0.3 * np.cos(2 * np.pi * 110.0 * t), 0.0)  # a unison with the bass from 1 s
    td = tmp_path / "T1"
    (td / "stems").mkdir(parents=True)
    stems = {"S00": {"program_num": 33}, "S01": {"program_num": 48}, "S02": {"program_num": 0, "is_drum": True}}
    (td / "metadata.yaml").write_text(yaml.safe_dump({"stems": stems}))
    sf.write(str(td / "stems" / "S00.flac"), bass, sr)
    sf.write(str(td / "stems" / "S01.flac"), strings, sr)
    sf.write(str(td / "mix.flac"), bass + strings, sr)
    notes = [(0.1, 0.9, 45, 80), (0.1, 0.9, 70, 80), (1.2, 1.9, 45, 80), (1.2, 1.9, 45, 80), (0.1, 0.9, 60, 80)]
    notes += [(1.95, 1.99, 70, 80), (2.5, 3.0, 70, 80)]  # at the very end, and after it
    y = np.zeros((7, 10), np.uint8)
    y[0, 0] = y[1, 3] = y[2, 0] = y[5, 3] = y[6, 3] = 1  # bass, strings, bass in the unison, strings, strings
    y[3, [0, 3]] = 1  # two true classes: no dominance
    y[4, 4] = 1  # `other`, which no stem plays
    feats = {"Y": y, "N": np.asarray(notes, np.float64), "K": np.zeros(7, np.int32)}
    dom = note_dominance(feats, [tmp_path / "T1"])
    assert dom[0] > 0.95 and dom[1] > 0.95 and dom[5] > 0.95
    assert 0.4 < dom[2] < 0.6  # equal tones in quadrature: half the energy
    assert np.isnan(dom[3]) and np.isnan(dom[4]) and np.isnan(dom[6])
    feats = {k: v[:5] for k, v in feats.items()}
    dom = dom[:5]
    logits = np.full((5, 5), -5.0)
    logits[[0, 1, 2], [0, 2, 0]] = 5.0  # the first and third right, the strings note called guitar
    bins = classifier_fit.accuracy_by_dominance(logits, feats, dom)
    assert [b["notes"] for b in bins] == [0, 0, int(dom[2] < 0.5), int(dom[2] >= 0.5), 2, 0]
    assert bins[4]["accuracy"] == 0.5 and bins[4]["per_class"][3] == [1, 0.0] and bins[4]["per_class"][0] == [1, 1.0]
