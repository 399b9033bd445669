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
