"""``export.data.sf2_headers`` and ``bench/soundfont_overlap.py`` on the installed Debian soundfonts: which
recordings MuseScore General (held out) shares with FluidR3_GM (trained on)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from export.data.render import SOUNDFONT_HELDOUT, SOUNDFONTS_TRAIN, soundfont_presets  # noqa: E402
from export.data.sf2_headers import preset_samples, read_pdta  # noqa: E402

FLUID = SOUNDFONTS_TRAIN["FluidR3_GM"]
OPL3 = SOUNDFONTS_TRAIN["OPL-3_FM_128M"]
needs_fonts = pytest.mark.skipif(
    not all(p.is_file() for p in (SOUNDFONT_HELDOUT, FLUID, OPL3)),
    reason="Debian soundfonts not installed (make setup)",
)


@needs_fonts
def test_presets_list_their_samples_and_match_the_preset_headers() -> None:
    fluid = preset_samples(FLUID)
    assert set(fluid) == set(soundfont_presets(FLUID))
    assert (0, 0) in fluid and (128, 0) in fluid  # a grand piano and the standard kit
    assert all(s.count("|") == 2 for s in fluid[(0, 0)]) and len(fluid[(0, 0)]) > 4
    held = preset_samples(SOUNDFONT_HELDOUT)  # SF3: the same headers, compressed sample data
    assert (0, 2) in held and held[(0, 2)]


@needs_fonts
def test_musescore_general_plays_fluidr3_recordings_for_some_programs_only() -> None:
    from bench.soundfont_overlap import shared_shares

    shares = shared_shares(SOUNDFONT_HELDOUT, FLUID)
    assert shares[(0, 2)] == 1.0  # Electric Grand Piano: FluidR3's samples, name, rate and loop length alike
    assert shares[(0, 33)] == 1.0  # Electric Bass (finger)
    assert shares[(0, 0)] == 0.0  # Acoustic Grand Piano: its own
    assert shares[(0, 40)] == 0.0  # Violin
    assert 0.0 < shares[(128, 0)] < 1.0  # the standard kit: some of its drums
    assert not any(shared_shares(SOUNDFONT_HELDOUT, OPL3).values())  # the FM bank: nothing recorded


def test_a_file_that_is_not_a_soundfont_has_no_headers(tmp_path: Path) -> None:
    for data in (b"", b"RIFF", b"RIFF\x10\x00\x00\x00WAVEfmt ", b"RIFF\x04\x00\x00\x00sfbk"):
        (tmp_path / "x.sf2").write_bytes(data)
        assert read_pdta(tmp_path / "x.sf2") == {}
        assert preset_samples(tmp_path / "x.sf2") == {} and soundfont_presets(tmp_path / "x.sf2") == frozenset()


@needs_fonts
def test_overlap_bench_lists_the_shared_programs_and_refuses_a_missing_file(tmp_path: Path, capsys) -> None:
    from bench.soundfont_overlap import main

    out = tmp_path / "o.json"
    assert main(["--train", str(FLUID), str(OPL3), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "FluidR3_GM.sf2: of 128 held-out programs" in text and "Electric Grand Piano" in text
    assert "OPL-3_FM_128M.sf2: of 128 held-out programs, 0 play only its samples, 0 some" in text
    doc = json.loads(out.read_text())
    assert doc["shares"]["FluidR3_GM.sf2"]["0:2"] == 1.0 and doc["shares"]["FluidR3_GM.sf2"]["0:0"] == 0.0
    assert main(["--train", str(tmp_path / "none.sf2")]) == 2
    assert "no soundfont at" in capsys.readouterr().err
    (tmp_path / "bad.sf3").write_bytes(b"not a soundfont")
    assert main(["--heldout", str(tmp_path / "bad.sf3"), "--train", str(FLUID)]) == 2
    assert "no presets to compare" in capsys.readouterr().err


@needs_fonts
def test_quality_results_read_apart_for_shared_and_own_recordings(tmp_path: Path, capsys) -> None:
    """``--quality``: each stem's per-track SI-SDRi, median apart for Electric Grand (FluidR3's samples) and
    Acoustic Grand (MuseScore General's own); a result rendered with another soundfont is refused."""
    from bench.soundfont_overlap import main, quality_by_shared

    tracks, per_track = [], []
    for k, (program, value) in enumerate([(2, 5.0), (2, 7.0), (0, 1.0), (2, 9.0)]):
        folder = tmp_path / f"Track{k:05d}"
        folder.mkdir()
        parts = {"S00": {"role": "piano", "program_num": program, "is_drum": False}}
        parts["S01"] = {"role": "drums", "program_num": 0, "is_drum": True}
        (folder / "metadata.yaml").write_text(json.dumps({"stems": parts}))
        tracks.append(str(folder))
        sep = {"piano": {"si_sdri": value}, "drums": {"si_sdri": 10.0}}
        per_track.append({"track": folder.name, "model blind": {"sep": sep}})
    doc = {"heldout": {"tracks": tracks, "soundfont": SOUNDFONT_HELDOUT.name}, "per_track": per_track}
    table = quality_by_shared(doc, FLUID)
    assert table["piano"] == {"all": (7.0, 3), "none": (1.0, 1)}
    assert table["drums"] == {"some": (10.0, 4)}
    with pytest.raises(ValueError, match="no row 'network'"):
        quality_by_shared(doc, FLUID, row="network")
    result = tmp_path / "q.json"
    result.write_text(json.dumps(doc))
    assert main(["--train", str(FLUID), "--quality", str(result)]) == 0
    assert "piano    all +7.00 (3)  none +1.00 (1)" in capsys.readouterr().out
    doc["heldout"]["soundfont"] = "FluidR3_GM.sf2"
    result.write_text(json.dumps(doc))
    assert main(["--train", str(FLUID), "--quality", str(result)]) == 2
    assert "rendered with FluidR3_GM.sf2" in capsys.readouterr().err
