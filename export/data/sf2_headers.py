"""The preset, instrument and sample headers of an SF2/SF3 soundfont (its ``pdta`` "hydra" chunks).

SF3 (MuseScore's compressed soundfonts) keeps SF2's RIFF layout and headers; only the sample data
differ, so one reader serves both. Nothing here reads sample data.

- ``read_pdta(path) -> dict[str, bytes]``: the raw ``pdta`` sub-chunks (``phdr``, ``pbag``, ``pgen``,
  ``inst``, ``ibag``, ``igen``, ``shdr``, ...); empty when the file is not a soundfont, the whole chunks
  before the cut when it is truncated.
- ``preset_keys(path) -> frozenset[(bank, program)]``: the presets it defines.
- ``preset_samples(path) -> dict[(bank, program), frozenset[str]]``: the samples each preset plays
  (preset -> its instruments -> their samples), each as ``name|rate_hz|loop_frames``: header fields SF2
  and SF3 keep alike (an SF3's start and end count compressed bytes, its loop points frames from the
  sample's start; the root key may be overridden per zone), so one recording in two soundfonts reads the
  same.
"""

from __future__ import annotations

import struct
from pathlib import Path

PRESET_INSTRUMENT = 41  # SF2 generator numbers: a preset zone's instrument, an instrument zone's sample
INSTRUMENT_SAMPLE = 53


def read_pdta(path: Path | str) -> dict[str, bytes]:
    """The ``pdta`` sub-chunks of the soundfont at ``path`` by id; ``{}`` when it is not one."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12:
            return {}
        riff, _, form = struct.unpack("<4sI4s", head)
        if riff != b"RIFF" or form != b"sfbk":
            return {}
        while True:
            head = f.read(12)
            if len(head) < 12:
                return {}
            cid, size, kind = struct.unpack("<4sI4s", head)
            if cid == b"LIST" and kind == b"pdta":
                break
            f.seek(size - 4 + (size & 1), 1)
        end = f.tell() + size - 4
        out = {}
        while f.tell() + 8 <= end:
            head = f.read(8)
            if len(head) < 8:
                break
            cid, size = struct.unpack("<4sI", head)
            data = f.read(size)
            if len(data) < size:  # a truncated file: keep the whole chunks before it
                break
            out[cid.decode("latin-1")] = data
            f.seek(size & 1, 1)
    return out


def _presets(d: dict[str, bytes]) -> list[tuple]:
    """The ``phdr`` records (name, program, bank, first bag, ...) without the terminal "EOP"."""
    return _records(d.get("phdr", b""), "<20sHHHIII")[:-1]


def preset_keys(path: Path | str) -> frozenset[tuple[int, int]]:
    """(bank, program) of every preset in the soundfont at ``path`` (empty when it is not one)."""
    return frozenset((int(r[2]), int(r[1])) for r in _presets(read_pdta(path)))


def _records(data: bytes, fmt: str) -> list[tuple]:
    n = struct.calcsize(fmt)
    return [struct.unpack(fmt, data[i : i + n]) for i in range(0, len(data) - n + 1, n)]


def _name(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("latin-1").strip()


def _zone_targets(bags: list[tuple], gens: list[tuple], first_bag: int, end_bag: int, oper: int) -> set[int]:
    """The values of generator ``oper`` over bags ``first_bag..end_bag-1`` (each bag's generators run to the next's)."""
    out = set()
    for b in range(first_bag, min(end_bag, len(bags) - 1)):
        for g in range(bags[b][0], min(bags[b + 1][0], len(gens))):
            if gens[g][0] == oper:
                out.add(int(gens[g][1]))
    return out


def preset_samples(path: Path | str) -> dict[tuple[int, int], frozenset[str]]:
    """{(bank, program): the samples that preset plays, ``name|rate_hz|loop_frames``} for ``path``."""
    d = read_pdta(path)
    if not all(k in d for k in ("phdr", "pbag", "pgen", "inst", "ibag", "igen", "shdr")):
        return {}
    phdr = _records(d["phdr"], "<20sHHHIII")  # name, program, bank, first bag, ...; the last is the terminal "EOP"
    pbag, pgen = _records(d["pbag"], "<HH"), _records(d["pgen"], "<HH")
    inst = _records(d["inst"], "<20sH")  # name, first bag
    ibag, igen = _records(d["ibag"], "<HH"), _records(d["igen"], "<HH")
    shdr = _records(d["shdr"], "<20sIIIIIBbHH")
    out: dict[tuple[int, int], frozenset[str]] = {}
    for k in range(len(phdr) - 1):  # the last record is the terminal "EOP"
        _, program, bank, bag0 = phdr[k][:4]
        names: set[str] = set()
        for i in _zone_targets(pbag, pgen, bag0, phdr[k + 1][3], PRESET_INSTRUMENT):
            if i + 1 < len(inst):
                for s in _zone_targets(ibag, igen, inst[i][1], inst[i + 1][1], INSTRUMENT_SAMPLE):
                    if s < len(shdr) - 1:  # not the terminal "EOS"
                        name, _, _, loop_start, loop_end, rate = shdr[s][:6]
                        names.add(f"{_name(name)}|{rate}|{loop_end - loop_start}")
        out[(int(bank), int(program))] = out.get((int(bank), int(program)), frozenset()) | names
    return out
