"""``bench/transcribe_select.py --merge --paired``: per-track differences against a baseline row."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.transcribe_select import main, merge, paired  # noqa: E402
from export.data.render import SOUNDFONT_HELDOUT, SOUNDFONTS_TRAIN  # noqa: E402


def _doc(row: str, bass: list[float], f1: list[float]) -> dict:
    sep = {f"T{i}": {"bass": {"si_sdri": v}, "drums": {"si_sdri": 5.0}} for i, v in enumerate(bass)}
    return {"sep": {row: sep}, "f1": {row: {"bass": f1}}}


def test_paired_counts_each_track_against_the_same_track() -> None:
    doc = merge([_doc("base", [1.0, 2.0, 3.0], [0.5] * 3), _doc("new", [2.0, 1.0, 5.0], [0.6] * 3)])
    got = paired(doc["sep"]["new"], doc["sep"]["base"])
    assert got["bass"][1:] == (2, 1) and abs(got["bass"][0] - 2 / 3) < 1e-12  # +1, -1, +2
    assert got["drums"] == (0.0, 0, 0)
    assert "piano" not in got


def test_merge_report_pairs_halves_and_refuses_a_missing_row(tmp_path: Path, capsys) -> None:
    files = []
    for name, doc in {
        "base_a": _doc("base", [1.0], [0.5]),
        "new_a": _doc("new", [3.0], [0.7]),
    }.items():
        files.append(tmp_path / f"{name}.json")
        files[-1].write_text(json.dumps(doc))
    assert main(["--merge", *map(str, files), "--paired", "base"]) == 0
    assert "bass +2.00 (1+ 0-)" in capsys.readouterr().out
    assert main(["--merge", *map(str, files), "--paired", "shipped"]) == 2
    assert "no row 'shipped'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--paired", "base"])  # --paired without --merge: an argument error


def test_oracle_fraction_is_checked_before_any_model_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.transcribe_select import transcriber_of
    from bridge.transcribe import Transcriber

    def no_models(*args, **kwargs) -> None:
        raise AssertionError("a model was loaded before the variant was checked")

    monkeypatch.setattr(Transcriber, "__init__", no_models)

    for spec, text in (
        ("share=0.3,ofrac=0.5", "go with oracle"),
        ("oracle=classes,ofrac=1.5", "ofrac must be in"),
        ("oracle=ghosts,ofrac=0.5", "ofrac must be in"),
        ("oracle=bogus", "oracle must be"),
        ("oracle=classes,oclass=drums", "oclass: classes are"),
        ("oracle=parts,oclass=bass", "go with oracle=classes or all"),
        ("share=0.3,oclass=bass", "go with oracle"),
        ("oracle=ghosts,oseed=2", "go with oracle=classes or all"),
        ("oracle=classes,excl=bass:0.5", "one or the other"),
    ):
        with pytest.raises(SystemExit, match=text):
            transcriber_of(spec)


def test_remask_variants_parse_and_a_misspelt_stem_is_refused() -> None:
    from bench.transcribe_select import transcriber_of
    from bridge.transcribe import TRANSCRIBED_REMASK

    assert transcriber_of("share=0.3").remask == TRANSCRIBED_REMASK
    assert transcriber_of("share=0.3,remask=none").remask is None
    assert transcriber_of("share=0.3,remask=strings:0.6").remask == {"strings": 0.6}
    with pytest.raises(ValueError, match="no stem strngs"):
        transcriber_of("share=0.3,remask=strngs:0.6")


def test_soft_variants_run_a_softened_network_on_the_same_session() -> None:
    """``soft=1``: the live bridge's softened masks (``bridge.remasked``), ``soft=bass:0.5``: those powers (1
    where not named); no ``soft``: the plain network itself."""
    from bench.transcribe_select import network_of
    from bridge.engine import Processor
    from bridge.remasked import mask_powers_for

    plain = Processor("test-tiny")
    assert network_of("share=0.3", plain) is plain
    soft = network_of("share=0.3,soft=1", plain)
    assert soft.model is plain.model and soft.mask_powers.tolist() == pytest.approx(mask_powers_for(plain.stems))
    bass = network_of("soft=bass:0.5", plain).mask_powers.tolist()
    assert bass == pytest.approx([0.5 if s == "bass" else 1.0 for s in plain.stems])


def test_by_program_groups_a_stems_differences_by_the_programs_of_its_parts(tmp_path: Path, capsys) -> None:
    """``--by-program piano``: each track's piano difference lands in the group of that track's piano programs
    (read from its metadata.yaml), two piano parts making one group of both names."""
    programs = {"T0": ["Harpsichord"], "T1": ["Electric Grand Piano"], "T2": ["Harpsichord", "Clavinet"]}
    for t, names in programs.items():
        parts = {f"S{i:02d}": {"role": "piano", "midi_program_name": n} for i, n in enumerate(names)}
        parts["S09"] = {"role": "bass", "midi_program_name": "Fretless Bass"}
        (tmp_path / t).mkdir()
        (tmp_path / t / "metadata.yaml").write_text(json.dumps({"stems": parts}))  # JSON is YAML
    base = {t: {"piano": {"si_sdri": 1.0}} for t in programs}
    new = {"T0": {"piano": {"si_sdri": 3.0}}, "T1": {"piano": {"si_sdri": 0.5}}, "T2": {"piano": {"si_sdri": 2.0}}}
    from bench.transcribe_select import by_program

    assert by_program(new, base, "piano", tmp_path) == {
        "Clavinet + Harpsichord": (1.0, 1),
        "Electric Grand Piano": (-0.5, 1),
        "Harpsichord": (2.0, 1),
    }
    files = [tmp_path / "b.json", tmp_path / "n.json"]
    files[0].write_text(json.dumps({"sep": {"base": base}, "f1": {}}))
    files[1].write_text(json.dumps({"sep": {"new": new}, "f1": {}}))
    argv = ["--merge", *map(str, files), "--paired", "base", "--tracks", str(tmp_path), "--by-program", "piano"]
    assert main(argv) == 0
    assert (
        "piano by program: Clavinet + Harpsichord +1.00 (1), Electric Grand Piano -0.50 (1)" in capsys.readouterr().out
    )
    with pytest.raises(SystemExit):
        main(["--merge", *map(str, files), "--by-program", "piano"])  # without --paired: an argument error


@pytest.mark.skipif(
    not all(p.is_file() for p in (SOUNDFONT_HELDOUT, SOUNDFONTS_TRAIN["FluidR3_GM"])), reason="soundfonts not installed"
)
def test_by_shared_reads_each_stem_apart_for_parts_on_a_training_fonts_recordings(tmp_path: Path, capsys) -> None:
    """``--by-shared FluidR3``: MuseScore General's Electric Grand Piano (2) plays FluidR3's samples, its Acoustic
    Grand (0) does not; a track with both is ``some``."""
    from bench.soundfont_overlap import shared_group

    fluid = SOUNDFONTS_TRAIN["FluidR3_GM"]
    programs = {"T0": [2], "T1": [0], "T2": [0, 2], "T3": [2]}
    for t, nums in programs.items():
        parts = {f"S{i:02d}": {"role": "piano", "program_num": n, "is_drum": False} for i, n in enumerate(nums)}
        (tmp_path / t).mkdir()
        (tmp_path / t / "metadata.yaml").write_text(json.dumps({"stems": parts}))
    assert [shared_group(tmp_path / t, "piano", fluid) for t in programs] == ["all", "none", "some", "all"]
    assert shared_group(tmp_path / "T0", "bass", fluid) == ""
    base = {t: {"piano": {"si_sdri": 1.0}} for t in programs}
    new = {t: {"piano": {"si_sdri": v}} for t, v in zip(programs, [0.0, 2.0, 1.5, -1.0])}
    files = [tmp_path / "b.json", tmp_path / "n.json"]
    files[0].write_text(json.dumps({"sep": {"base": base}, "f1": {}}))
    files[1].write_text(json.dumps({"sep": {"new": new}, "f1": {}}))
    argv = ["--merge", *map(str, files), "--paired", "base", "--tracks", str(tmp_path), "--by-shared", str(fluid)]
    assert main(argv) == 0
    assert "FluidR3_GM.sf2: piano all -1.50 (2) none +1.00 (1) some +0.50 (1)\n" in capsys.readouterr().out
