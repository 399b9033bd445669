#!/usr/bin/env python3
"""Which recordings the held-out soundfont (MuseScore General) shares with each training soundfont.

MuseScore General descends from FluidR3: many of its presets play the very samples FluidR3_GM plays
(same name, rate and loop length, ``export.data.sf2_headers.preset_samples``). A part rendered with
such a preset is not a timbre the network has never heard, whatever the soundfont's name; this bench
says which General MIDI programs (bank 0) and drum kits (bank 128) that holds for, per training
soundfont, so that held-out figures can be read apart for shared and unshared timbres
(``bench/transcribe_select.py --by-shared``).

    .venv/bin/python bench/soundfont_overlap.py                 # every installed training soundfont
    .venv/bin/python bench/soundfont_overlap.py --json F        # also the per-program shares as JSON

- ``shared_shares(heldout, train) -> {(bank, program): share}``: for each held-out preset, the share of
  its samples that some preset of ``train`` also plays (1.0: every one).
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import lru_cache
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from export.data.render import SOUNDFONT_HELDOUT, train_soundfonts  # noqa: E402
from export.data.sf2_headers import preset_samples  # noqa: E402

DRUM_BANK = 128


@lru_cache(maxsize=8)
def shared_shares(heldout: Path, train: Path) -> dict[tuple[int, int], float]:
    """{(bank, program): share of that held-out preset's samples that ``train`` also plays}, banks 0 and 128."""
    held = preset_samples(heldout)
    theirs = frozenset().union(*preset_samples(train).values())
    return {k: len(v & theirs) / len(v) for k, v in held.items() if k[0] in (0, DRUM_BANK) and v}


def program_name(key: tuple[int, int]) -> str:
    import pretty_midi

    bank, program = key
    return f"drum kit {program}" if bank == DRUM_BANK else pretty_midi.program_to_instrument_name(program)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--heldout", type=Path, default=SOUNDFONT_HELDOUT)
    ap.add_argument("--train", type=Path, nargs="*", default=None, help="default: every installed training soundfont")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    fonts = args.train if args.train is not None else list(train_soundfonts().values())
    for p in (args.heldout, *fonts):
        if not Path(p).is_file():
            print(f"error: no soundfont at {p}", file=sys.stderr)
            return 2
    doc = {}
    for font in fonts:
        shares = shared_shares(Path(args.heldout), Path(font))
        if not shares:
            print(f"error: {args.heldout} has no presets to compare (not a soundfont?)", file=sys.stderr)
            return 2
        pitched = {k: v for k, v in shares.items() if k[0] == 0}
        kits = [v for k, v in shares.items() if k[0] == DRUM_BANK]
        every = sorted(k for k, v in pitched.items() if v == 1.0)
        some = sorted(k for k, v in pitched.items() if 0 < v < 1)
        print(
            f"{Path(font).name}: of {len(pitched)} held-out programs, {len(every)} play only its samples, "
            f"{len(some)} some; drum kits: {sum(kits) / max(1, len(kits)):.0%} of their samples on average"
        )
        if every:
            print("  every sample shared: " + ", ".join(program_name(k) for k in every))
        if some:
            print("  some shared: " + ", ".join(f"{program_name(k)} {pitched[k]:.0%}" for k in some))
        doc[Path(font).name] = {f"{b}:{p}": v for (b, p), v in sorted(shares.items())}
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"heldout": Path(args.heldout).name, "shares": doc}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
