"""``export.data.sf2_headers`` and ``bench/soundfont_overlap.py`` on the installed Debian soundfonts: which
recordings MuseScore General (held out) shares with FluidR3_GM (trained on)."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from export.data.render import SOUNDFONT_HELDOUT, SOUNDFONTS_TRAIN, soundfont_presets  # noqa: E402
from export.data.sf2_headers import preset_keys, preset_samples, read_pdta  # noqa: E402

FLUID = SOUNDFONTS_TRAIN["FluidR3_GM"]
OPL3 = SOUNDFONTS_TRAIN["OPL-3_FM_128M"]


def _chunk(cid: bytes, data: bytes) -> bytes:
    return cid + struct.pack("<I", len(data)) + data + b"\0" * (len(data) & 1)


def _sf2(presets: list[tuple[int, int, list[int]]], instruments: list[list[int]], samples: list[tuple]) -> bytes:
    """A minimal SF2: ``presets`` (bank, program, [instrument per zone]) after a global zone without one,
    ``instruments`` [sample per zone] after a global zone without one, ``samples`` (name, start, end, loop_start,
    loop_end, rate); an odd-sized INFO chunk and an empty sample chunk."""
    name = lambda text: text.encode().ljust(20, b"\0")  # noqa: E731
    phdr, pbag, pgen = b"", b"", b""
    n_bag = n_gen = 0
    for k, (bank, program, zones) in enumerate(presets):
        phdr += struct.pack("<20sHHHIII", name(f"P{k}"), program, bank, n_bag, 0, 0, 0)
        for target in [None, *zones]:
            pbag += struct.pack("<HH", n_gen, 0)
            n_bag += 1
            pgen += struct.pack("<HH", 17, 0) if target is None else struct.pack("<HH", 41, target)  # pan / instrument
            n_gen += 1
    phdr += struct.pack("<20sHHHIII", name("EOP"), 0, 0, n_bag, 0, 0, 0)
    pbag += struct.pack("<HH", n_gen, 0)
    inst, ibag, igen = b"", b"", b""
    n_bag = n_gen = 0
    for k, zones in enumerate(instruments):
        inst += struct.pack("<20sH", name(f"I{k}"), n_bag)
        for target in [None, *zones]:
            ibag += struct.pack("<HH", n_gen, 0)
            n_bag += 1
            igen += struct.pack("<HH", 17, 0) if target is None else struct.pack("<HH", 53, target)  # pan / sample
            n_gen += 1
    inst += struct.pack("<20sH", name("EOI"), n_bag)
    ibag += struct.pack("<HH", n_gen, 0)
    shdr = b"".join(struct.pack("<20sIIIIIBbHH", name(n), *rest, 60, 0, 0, 1) for n, *rest in samples)
    shdr += struct.pack("<20sIIIIIBbHH", name("EOS"), 0, 0, 0, 0, 0, 0, 0, 0, 0)
    pdta = b"".join(
        _chunk(cid, data)
        for cid, data in (
            (b"phdr", phdr), (b"pbag", pbag), (b"pmod", bytes(10)), (b"pgen", pgen + bytes(4)),
            (b"inst", inst), (b"ibag", ibag), (b"imod", bytes(10)), (b"igen", igen + bytes(4)), (b"shdr", shdr),
        )
    )  # fmt: skip
    info = _chunk(b"LIST", b"INFO" + _chunk(b"ifil", struct.pack("<HH", 2, 1)) + _chunk(b"INAM", b"odd\0\0"))
    body = b"sfbk" + info + _chunk(b"LIST", b"sdta" + _chunk(b"smpl", b"")) + _chunk(b"LIST", b"pdta" + pdta)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_headers_follow_presets_to_instruments_to_samples_in_a_written_soundfont(tmp_path: Path) -> None:
    """Global zones (no instrument, no sample) are passed over; a sample is known by name, rate and loop length,
    not by where its data lie; a file cut short keeps the whole chunks before the cut."""
    samples = [("Piano C4", 0, 1000, 100, 900, 44100), ("Piano C5", 1000, 2000, 1100, 1500, 44100)]
    samples.append(("Piano C4", 5000, 6000, 5100, 5900, 44100))  # the first one again, stored elsewhere
    samples.append(("Piano C4", 7000, 8000, 7100, 7900, 22050))  # same name and loop, another rate
    data = _sf2([(0, 0, [0]), (128, 0, [1, 2])], [[0, 1], [2], [3]], samples)
    path = tmp_path / "t.sf2"
    path.write_bytes(data)
    got = preset_samples(path)
    assert got == {
        (0, 0): frozenset({"Piano C4|44100|800", "Piano C5|44100|400"}),
        (128, 0): frozenset({"Piano C4|44100|800", "Piano C4|22050|800"}),
    }
    assert preset_keys(path) == soundfont_presets(path) == frozenset({(0, 0), (128, 0)})
    path.write_bytes(data[: len(data) - 30])  # into the sample headers
    assert preset_samples(path) == {} and preset_keys(path) == frozenset({(0, 0), (128, 0)})
    assert "shdr" not in read_pdta(path) and "igen" in read_pdta(path)


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
    assert "bad.sf3 has no presets to compare" in capsys.readouterr().err
    assert main(["--train", str(tmp_path / "bad.sf3")]) == 2  # a training file that is no soundfont either
    assert "bad.sf3 has no presets to compare" in capsys.readouterr().err


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
    meta = json.loads((Path(tracks[0]) / "metadata.yaml").read_text())
    meta["stems"]["S00"]["plugin_name"] = "TimGM6mb.sf2"  # a part rendered with a training soundfont
    (Path(tracks[0]) / "metadata.yaml").write_text(json.dumps(meta))
    doc["heldout"]["soundfont"] = SOUNDFONT_HELDOUT.name
    with pytest.raises(ValueError, match="Track00000: piano rendered with TimGM6mb.sf2"):
        quality_by_shared(doc, FLUID)
