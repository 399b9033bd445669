"""Transcribe, then separate (bridge.transcribe): basic-pitch's vendored network and its decoding,
the note classifier and its metadata checks, and blind `separate` through the transcription, on
real FluidSynth renders of a bass line under a piano melody with MuseScore General, the soundfont
no training corpus uses (an unseen timbre, as a user's instruments are)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile as sf

from bench.metrics import onset_f1, si_sdr
from bridge.backends.offline import separate_file
from bridge.cli import main
from bridge.engine import Processor
from bridge.errors import ModelError
from bridge.model import OnnxModel
from bridge.score import read_score_file
from bridge.transcribe import TRANSCRIBED_SHARES, Transcriber, score_of_parts
from bridge.transcribe.basic_pitch import FRAME_RATE_HZ, BasicPitch, decode_notes
from bridge.transcribe.note_classes import (
    DEFAULT_DECODING,
    META_KEY,
    NOTE_CLASSES_FILE,
    NoteClassifier,
    merge_repeated_onsets,
)
from tests.conftest import json_meta_variant
from tests.test_parts import SR, render, write_midi

HELDOUT_SOUNDFONT = Path("/usr/share/sounds/sf3/MuseScore_General_Full.sf3")
pytestmark = pytest.mark.skipif(
    not (shutil.which("fluidsynth") and HELDOUT_SOUNDFONT.is_file()),
    reason="needs fluidsynth and MuseScore General (make setup installs both)",
)

BASS_PROGRAM, PIANO_PROGRAM = 33, 0
# (onset_s, offset_s, pitch): a walking bass line and a piano melody above it
BASS = [(0.2 + 0.5 * i, 0.65 + 0.5 * i, p) for i, p in enumerate([36, 40, 43, 45, 41, 38, 43, 36, 40, 43, 45, 36])]
PIANO = [(0.45 + 0.75 * i, 1.0 + 0.75 * i, p) for i, p in enumerate([72, 76, 79, 77, 74, 71, 72, 79])]
SECONDS = 6.5


@pytest.fixture(scope="module")
def band(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("transcribe")
    sf2 = HELDOUT_SOUNDFONT
    bass = render(d / "bass", write_midi(d / "bass.mid", [("Bass", 0, BASS_PROGRAM, BASS)]), SECONDS, soundfont=sf2)
    piano = render(
        d / "piano", write_midi(d / "piano.mid", [("Piano", 1, PIANO_PROGRAM, PIANO)]), SECONDS, soundfont=sf2
    )
    mix = bass + piano
    sf.write(d / "mix.wav", np.stack([mix, mix], axis=1), SR, subtype="FLOAT")
    return {"dir": d, "bass": bass, "piano": piano, "mix": mix}


def _notes(rows: list[tuple[float, float, int]]) -> np.ndarray:
    return np.asarray([(a, b, p, 90) for a, b, p in rows], np.float64)


def test_basic_pitch_transcribes_the_render(band: dict) -> None:
    bp = BasicPitch()
    got = bp.transcribe(band["mix"], SR)
    truth = np.concatenate([_notes(BASS), _notes(PIANO)])
    precision, recall, _ = onset_f1(truth[np.argsort(truth[:, 0])], got)
    # every played note is found; the extra notes are the bass's octave partials (basic-pitch's
    # usual octave error on a bass with a strong second harmonic), which cost precision only
    assert recall >= 0.95 and precision >= 0.5, f"recall {recall:.2f}, precision {precision:.2f}"
    # another input rate gives the same notes (resampled to 22.05 kHz first)
    import soxr

    got48 = bp.transcribe(soxr.resample(band["mix"], SR, 48000), 48000)
    assert onset_f1(got, got48)[2] >= 0.95


def test_decoding_follows_onsets_and_frames() -> None:
    n = 200
    note, onset = np.zeros((n, 88), np.float32), np.zeros((n, 88), np.float32)
    k = 60 - 21
    note[20:80, k] = 0.8  # one held note with an onset peak at frame 20
    onset[19:22, k] = (0.3, 0.9, 0.3)
    note[120:140, k + 7] = 0.6  # frames without an onset: the leftover-energy pass makes it a note
    note[150:155, k + 3] = 0.9  # too short (5 frames <= 11): no note
    got = sorted(decode_notes(note, onset))
    assert [(s, e, p) for s, e, p, _ in got] == [(20, 80, 60), (120, 140, 67)]
    assert got[0][3] == pytest.approx(0.8)
    assert decode_notes(np.zeros((0, 88)), np.zeros((0, 88))) == []
    assert FRAME_RATE_HZ == 86
    # a shorter minimum note length (what classifier 2.1.0 was trained with) keeps the 5-frame note
    short = sorted(decode_notes(note, onset, min_note_frames=3))
    assert [(s, e, p) for s, e, p, _ in short] == [(20, 80, 60), (120, 140, 67), (150, 155, 63)]


def test_repeated_onsets_are_merged() -> None:
    notes = np.array(
        [[1.00, 1.5, 60, 90], [1.03, 1.4, 60, 80], [1.03, 1.4, 64, 80], [1.20, 1.6, 60, 70], [0.5, 0.9, 60, 90]]
    )
    got = merge_repeated_onsets(notes)
    # the second C4 at 1.03 s is the first one found twice; E4 at 1.03 s and C4 at 1.2 s are notes of their own
    assert got.tolist() == [[0.5, 0.9, 60, 90], [1.0, 1.5, 60, 90], [1.03, 1.4, 64, 80], [1.2, 1.6, 60, 70]]
    assert merge_repeated_onsets(np.zeros((0, 4))).shape == (0, 4)


def test_a_note_joins_every_class_close_to_its_best() -> None:
    tr = Transcriber(member_share=0.3, sounding_threshold=0.05)
    sounding = np.array(
        [[0.9, 0.3, 0.02, 0.0, 0.0], [0.04, 0.04, 0.0, 0.0, 0.0], [0.5, 0.1, 0.2, 0.0, 0.0]], np.float32
    )
    got = tr.membership(np.zeros((3, 4)), sounding)
    # 0.3 of the best (0.27) and the threshold (0.05) both hold; a note below the threshold everywhere joins none
    assert got.tolist() == [[True, True, False, False, False], [False] * 5, [True, False, True, False, False]]
    assert tr.membership(np.zeros((0, 4)), np.zeros((0, 5), np.float32)).shape == (0, 5)


def test_classifier_puts_the_bass_line_in_bass(band: dict) -> None:
    tr = Transcriber()
    parts = tr.parts(band["mix"], SR)
    names = [p.name for p in parts]
    assert names == list(tr.classifier.classes)
    bass_part = parts[names.index("bass")]
    assert onset_f1(_notes(BASS), bass_part.notes)[1] >= 0.8  # recall of the bass line in the bass part
    assert onset_f1(_notes(PIANO), bass_part.notes)[1] == 0.0  # no piano note in it
    # the piano melody lands in a part other than bass (the decomposition separates it from the bass either way)
    others = np.concatenate([p.notes for p in parts if p.name != "bass"])
    assert onset_f1(_notes(PIANO), others)[1] >= 0.8
    score = score_of_parts(parts, ("drums", "bass", "piano", "guitar", "strings"))
    assert len(score[1]) == len(bass_part.notes) and len(score[0]) == 0


def test_blind_separate_transcribes_then_separates(band: dict, tmp_path: Path, capsys) -> None:
    d = band["dir"]
    assert main(["separate", str(d / "mix.wav"), "-o", str(tmp_path / "tr"), "-q"]) == 0
    capsys.readouterr()
    assert main(["separate", str(d / "mix.wav"), "-o", str(tmp_path / "net"), "--class-stems-from", "network"]) == 0
    assert "stem_remask 16383" in capsys.readouterr().out  # the network's stems re-masked (bridge.remasked)
    stems = ("drums", "bass", "piano", "guitar", "strings", "other")
    mix, _ = sf.read(d / "mix.wav", dtype="float64")
    for out in ("tr", "net"):  # the stems still sum back to the input
        total = sum(sf.read(tmp_path / out / "mix" / f"{s}.wav", dtype="float64")[0] for s in stems)
        assert np.abs(total - mix).max() < 1e-4, out
    # the notes written are the transcription's: the bass line in the bass track, no piano note in
    # it, far more of it than the network alone finds on this soundfont
    written = read_score_file(tmp_path / "tr" / "mix" / "notes.mid", stems[:5])
    network = read_score_file(tmp_path / "net" / "mix" / "notes.mid", stems[:5])
    f1 = onset_f1(_notes(BASS), written[1])[2]
    assert f1 >= 0.8 and f1 > onset_f1(_notes(BASS), network[1])[2] + 0.2
    assert onset_f1(_notes(PIANO), written[1])[1] == 0.0


def test_a_class_from_the_transcribed_parts(band: dict, tmp_path: Path) -> None:
    # a class taken from the parts decomposition (strings by default; bass here) separates by the
    # transcribed notes: the bass far better than the network alone does on this soundfont
    d = band["dir"]
    n = len(band["bass"])
    proc = Processor(OnnxModel("band"))

    def bass_sdr(out: str, transcriber: Transcriber | None) -> float:
        res = separate_file(proc, d / "mix.wav", tmp_path / out, transcriber=transcriber)
        est, _ = sf.read(next(p for p in res.stem_paths if p.stem == "bass"), dtype="float64")
        return si_sdr(est.mean(axis=1)[:n], band["bass"].astype(np.float64))

    parts, net = bass_sdr("parts", Transcriber(model_stems=("drums",))), bass_sdr("net", None)
    assert parts > net + 3.0, f"bass SI-SDR {parts:.1f} dB from the transcribed parts vs {net:.1f} dB network alone"


def test_anchored_analysis_follows_the_music_wherever_the_file_starts(band: dict) -> None:
    """With the windows and frames anchored to the strongest onset (the default), the render delayed by 200,
    333 or 40000 samples gives the same notes, delayed, and the same class evidence; counted from the first
    sample it does not (measured: 44 notes undelayed, 49 and 45 delayed by 200 and 333)."""
    anchored, plain = Transcriber(shares=None), Transcriber(shares=None, anchor=False)
    assert anchored.anchor
    a, p = anchored.analyse(band["mix"], SR), plain.analyse(band["mix"], SR)
    moved_plain = 0
    for delay in (200, 333, 40000):  # 40000: past one of basic-pitch's window hops
        late = np.concatenate([np.zeros(delay, np.float32), band["mix"]])
        b = anchored.analyse(late, SR)
        np.testing.assert_allclose(b.notes[:, :2] - delay / SR, a.notes[:, :2], atol=1e-9)
        np.testing.assert_array_equal(b.notes[:, 2:], a.notes[:, 2:])
        np.testing.assert_allclose(b.sounding, a.sounding, atol=1e-6)
        np.testing.assert_allclose(b.onset, a.onset, atol=1e-6)
        q = plain.analyse(late, SR)
        moved_plain += len(q.notes) != len(p.notes) or not np.allclose(q.notes[:, :2] - delay / SR, p.notes[:, :2])
    assert moved_plain  # the frames counted from the first sample move the notes
    truth = np.concatenate([_notes(BASS), _notes(PIANO)])
    assert onset_f1(truth[np.argsort(truth[:, 0])], a.notes)[1] >= 0.95  # the anchored notes still find them


def test_note_classifier_metadata_is_checked(tmp_path: Path) -> None:
    clf = NoteClassifier()
    assert set(clf.classes) == {"bass", "piano", "guitar", "strings", "other"}
    model = onnx.load(str(NOTE_CLASSES_FILE))
    meta = json.loads(next(p.value for p in model.metadata_props if p.key == META_KEY))

    def with_meta(change: dict, name: str) -> Path:
        return json_meta_variant(NOTE_CLASSES_FILE, META_KEY, change, tmp_path / name)

    with pytest.raises(ModelError, match="patch geometry"):
        NoteClassifier(with_meta({"hop": 256}, "hop.onnx"))
    with pytest.raises(ModelError, match="classes"):
        NoteClassifier(with_meta({"classes": ["bass", "kazoo", "piano", "guitar", "strings"]}, "kazoo.onnx"))
    with pytest.raises(ModelError, match="onset threshold per class"):
        NoteClassifier(with_meta({"onset_thresholds": [0.5, 0.5]}, "short.onnx"))
    with pytest.raises(ModelError, match="onset threshold per class"):
        NoteClassifier(with_meta({"sounding_threshold": 1.5}, "sounding.onnx"))
    with pytest.raises(ModelError, match="not a note classifier"):
        NoteClassifier(with_meta({"kind": "separator"}, "kind.onnx"))
    with pytest.raises(ModelError, match="decoding"):
        NoteClassifier(with_meta({"decoding": {"onset_threshold": 0.5}}, "decoding.onnx"))
    bad = {"onset_threshold": 0.5, "frame_threshold": 1.3, "min_note_frames": 3}
    with pytest.raises(ModelError, match="frame_threshold"):
        NoteClassifier(with_meta({"decoding": bad}, "frame.onnx"))
    with pytest.raises(ModelError, match="context must be"):
        NoteClassifier(with_meta({"context": {"kind": "file_mean_embedding", "dim": 0}}, "context.onnx"))
    with pytest.raises(ModelError, match="expected inputs context, patch, scalars"):  # declared, not in the graph
        NoteClassifier(with_meta({"context": {"kind": "file_mean_embedding", "dim": 128}}, "nocontext.onnx"))
    for pooling in (
        {"dim": 32, "temperature": 0.0, "weight": 0.5},
        {"dim": 32.5, "temperature": 0.1, "weight": 0.5},
        {"dim": 32, "temperature": 0.1, "weight": 1.5},
        {"dim": 32, "temperature": "0.1", "weight": 0.5},
        {"dim": 32, "temperature": 0.1, "weight": [0.5, 0.5]},  # one weight per class, or one
    ):
        with pytest.raises(ModelError, match="part_pooling must be"):
            NoteClassifier(with_meta({"part_pooling": pooling}, "pooling.onnx"))
    m = onnx.load(str(NOTE_CLASSES_FILE))  # the shipped graph without its part embedding output
    outputs = [o for o in m.graph.output if o.name != "part_embedding"]
    del m.graph.output[:]
    m.graph.output.extend(outputs)
    next(p for p in m.metadata_props if p.key == META_KEY).value = json.dumps(
        {**meta, "part_pooling": {"dim": 32, "temperature": 0.1, "weight": 0.5}}
    )
    onnx.save(m, str(tmp_path / "nopart.onnx"))
    with pytest.raises(ModelError, match="outputs .*part_embedding"):  # declared, not in the graph
        NoteClassifier(tmp_path / "nopart.onnx")
    # a classifier without the key decodes as basic-pitch does (2.0.0 was trained so)
    legacy = {k: v for k, v in meta.items() if k != "decoding"}
    m = onnx.load(str(NOTE_CLASSES_FILE))
    next(p for p in m.metadata_props if p.key == META_KEY).value = json.dumps(legacy)
    onnx.save(m, str(tmp_path / "legacy.onnx"))
    assert NoteClassifier(tmp_path / "legacy.onnx").decoding == DEFAULT_DECODING
    with pytest.raises(ModelError, match="missing"):
        NoteClassifier(tmp_path / "absent.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load"):
        NoteClassifier(tmp_path / "junk.onnx")


def test_transcription_model_file_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="missing"):
        BasicPitch(tmp_path / "absent.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load"):
        BasicPitch(tmp_path / "junk.onnx")
    with pytest.raises(ModelError, match="not basic-pitch's nmp model"):
        BasicPitch(NOTE_CLASSES_FILE)  # a valid ONNX file of another kind


def test_one_analysis_gives_the_transcription_of_every_share(band: dict) -> None:
    """``Transcriber.transcription(analyse(x), share)`` is ``Transcriber(member_share=share).transcribe(x)``: the
    parts hold the notes that share lets in (a small share more, in more classes), the written notes are the same
    for every share."""
    tr = Transcriber()
    analysis = tr.analyse(band["mix"], SR)
    made = {share: tr.transcription(analysis, share) for share in (0.05, 1.0)}
    for share, got in made.items():
        want = Transcriber(member_share=share).transcribe(band["mix"], SR)
        assert [p.name for p in got.parts] == [p.name for p in want.parts]
        assert all(np.array_equal(a.notes, b.notes) for a, b in zip(got.parts, want.parts))
        assert all(np.array_equal(got.notes[k], want.notes[k]) for k in want.notes)
    n_small, n_whole = (sum(p.n_notes for p in made[share].parts) for share in (0.05, 1.0))
    assert n_small > n_whole >= len(analysis.notes) // 2, (n_small, n_whole, len(analysis.notes))
    own, at = tr.transcription(analysis), tr.transcription(analysis, tr.member_share)  # None: its own share
    assert all(np.array_equal(a.notes, b.notes) for a, b in zip(own.parts, at.parts))


def test_a_score_leaves_the_transcriber_out(band: dict, tmp_path: Path) -> None:
    """With a score, ``separate_file`` separates by it and a transcriber given too (as ``bench/quality.py``'s
    scored rows pass theirs) changes nothing, whatever its shares."""
    d = band["dir"]
    sf.write(tmp_path / "mix.wav", np.stack([band["mix"]] * 2, axis=1), SR, subtype="FLOAT")
    kw = {"fmt": "wav", "score_path": d / "bass.mid"}
    separate_file(Processor(None), tmp_path / "mix.wav", tmp_path / "alone", **kw)
    separate_file(Processor(None), tmp_path / "mix.wav", tmp_path / "with", transcriber=Transcriber(), **kw)
    for s in ("bass", "piano", "other"):
        a, b = (sf.read(tmp_path / x / f"{s}.wav")[0] for x in ("alone", "with"))
        assert np.array_equal(a, b), s


def test_separate_shares_averages_the_separations_of_one_transcription(band: dict, tmp_path: Path, capsys) -> None:
    """``separate`` (default shares ``TRANSCRIBED_SHARES``) averages one separation per membership share; two
    shares that give the same parts average to exactly the one share's run (``--shares 0.3``, the path before
    stop 41: the same latency, notes and re-masking frames); shares that give other parts change the stems,
    which still sum to the input, and keep the notes; with ``--shifts 2`` each shifted run averages the shares
    (``--jobs 2``: the shifted runs side by side, the same stems); bad shares and shares with a score are refused
    in one line."""
    d = band["dir"]
    stems = ("drums", "bass", "piano", "guitar", "strings", "other")
    sf.write(tmp_path / "mix.wav", np.stack([band["mix"]] * 2, axis=1), SR, subtype="FLOAT")

    def stems_of(name: str, *extra: str) -> np.ndarray:
        assert main(["separate", str(tmp_path / "mix.wav"), "-o", str(tmp_path / name), "-q", *extra]) == 0
        assert [p.name for p in (tmp_path / name).iterdir()] == ["mix"]  # the runs' folder is gone
        return np.stack([sf.read(tmp_path / name / "mix" / f"{s}.wav", dtype="float64")[0] for s in stems])

    tr = Transcriber()
    assert tr.shares == TRANSCRIBED_SHARES and len(tr.shares) > 1
    analysis = tr.analyse(band["mix"], SR)
    same = [tr.transcription(analysis, x).parts for x in (0.3, 0.3001)]
    assert all(np.array_equal(a.notes, b.notes) for a, b in zip(*same))  # the premise: the same parts
    one, twice = stems_of("one", "--shares", "0.3"), stems_of("twice", "--shares", "0.3,0.3001")
    assert np.abs(twice - one).max() < 1e-6
    default = stems_of("default")
    mix, _ = sf.read(tmp_path / "mix.wav", dtype="float64")
    assert np.abs(default.sum(axis=0) - mix).max() < 1e-4
    assert np.abs(default - one).max() > 1e-3  # other parts, other stems
    notes = [(tmp_path / name / "mix" / "notes.mid").read_bytes() for name in ("one", "twice", "default")]
    assert notes[0] == notes[1] == notes[2]
    both = stems_of("both", "--shares", "0.05,1", "--shifts", "2")
    assert np.abs(both.sum(axis=0) - mix).max() < 1e-4 and np.abs(both - default).max() > 1e-3
    jobs = stems_of("jobs", "--shares", "0.05,1", "--shifts", "2", "-j", "2")
    assert np.abs(jobs - both).max() < 1e-4
    for extra, why in (
        (["--shares", "abc"], "separated by commas"),
        (["--shares", "0,0.5"], "each share must be in (0, 1]"),
        (["--shares", "nan"], "each share must be in (0, 1]"),
        (["--shares", "0.2,0.2"], "a share given twice"),
        (["--shares", "0.2", "--score", str(d / "bass.mid")], "--shares is for the blind path only"),
        (["--shares", ",".join(f"{k / 20:g}" for k in range(1, 18))], "at most 16 shares, got 17"),
    ):
        assert main(["separate", str(tmp_path / "mix.wav"), "-o", str(tmp_path / "x"), *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and why in err[0], (extra, err)
    assert not (tmp_path / "x").exists()


def test_separate_shifts_averages_the_blind_path_over_shifted_grids(band: dict, tmp_path: Path, capsys) -> None:
    """``separate --shifts 2``: the blind path on the input and on it delayed by 256 samples, averaged and
    re-masked: the stems still sum back to the input sample for sample (the shifted run lined up again;
    an input louder than full scale, so nothing on the way may clip), differ from one run's, keep the
    unshifted run's notes, and leave no temporary folder behind; with ``--jobs 2`` the runs go side by side, to
    the same stems."""
    d = band["dir"]
    stems = ("drums", "bass", "piano", "guitar", "strings", "other")
    loud = 1.5 / np.abs(band["mix"]).max() * band["mix"]
    sf.write(tmp_path / "mix.wav", np.stack([loud, loud], axis=1), SR, subtype="FLOAT")
    assert main(["separate", str(tmp_path / "mix.wav"), "-o", str(tmp_path / "one"), "-q"]) == 0
    assert main(["separate", str(tmp_path / "mix.wav"), "-o", str(tmp_path / "two"), "--shifts", "2", "-q"]) == 0
    assert "stem_remask 16383" in capsys.readouterr().out
    mix, _ = sf.read(tmp_path / "mix.wav", dtype="float64")
    one = np.stack([sf.read(tmp_path / "one" / "mix" / f"{s}.wav", dtype="float64")[0] for s in stems])
    two = np.stack([sf.read(tmp_path / "two" / "mix" / f"{s}.wav", dtype="float64")[0] for s in stems])
    assert two.shape == one.shape and two.shape[1] == len(mix)
    assert np.abs(two.sum(axis=0) - mix).max() < 1e-4
    assert np.abs(two - one).max() > 1e-3  # the second grid changed the stems
    notes_one = read_score_file(tmp_path / "one" / "mix" / "notes.mid", stems[:5])
    notes_two = read_score_file(tmp_path / "two" / "mix" / "notes.mid", stems[:5])
    assert all(np.array_equal(a, b) for a, b in zip(notes_one, notes_two))
    assert [p.name for p in (tmp_path / "two").iterdir()] == ["mix"]  # the shifted runs' folder is gone
    # --jobs 2: the two runs in two processes, the same stems
    assert main(["separate", str(tmp_path / "mix.wav"), "-o", str(tmp_path / "jobs"), "--shifts", "2", "-j", "2"]) == 0
    printed = capsys.readouterr()
    assert "stem_remask 16383" in printed.out and "mix.wav: 2 shifted runs in 2 processes" in printed.err
    jobs = np.stack([sf.read(tmp_path / "jobs" / "mix" / f"{s}.wav", dtype="float64")[0] for s in stems])
    assert np.abs(jobs - two).max() < 1e-4  # a worker's numpy has one BLAS thread: sums in another order
    assert (tmp_path / "jobs" / "mix" / "notes.mid").read_bytes() == (
        tmp_path / "two" / "mix" / "notes.mid"
    ).read_bytes()
    assert [p.name for p in (tmp_path / "jobs").iterdir()] == ["mix"]
    # a score, or the network's own stems, have nothing to average: refused in one line
    for extra in (["--score", str(d / "bass.mid")], ["--class-stems-from", "network"], []):
        shifts = "0" if not extra else "2"
        assert main(["separate", str(tmp_path / "mix.wav"), "-o", str(tmp_path / "x"), "--shifts", shifts, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--shifts" in err[0], err


def test_frame_peaks_are_scipys_argrelmax():
    import scipy.signal

    from bridge.transcribe.basic_pitch import frame_peaks

    rng = np.random.default_rng(0)
    for shape in ((50, 88), (3, 4), (2, 5), (1, 3), (0, 88)):
        x = rng.integers(0, 4, shape).astype(np.float64)  # ties: plateaus are no peaks
        got, want = frame_peaks(x), scipy.signal.argrelmax(x, axis=0)
        assert len(got) == len(want) == 2
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
