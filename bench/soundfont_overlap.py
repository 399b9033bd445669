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
    .venv/bin/python bench/soundfont_overlap.py --train /usr/share/sounds/sf2/FluidR3_GM.sf2 \
        --quality bench/results/quality_stop49_heldout_band114.json   # its stems apart (track folders rendered)

- ``shared_shares(heldout, train) -> {(bank, program): share}``: for each held-out preset, the share of
  its distinct samples that a preset of ``train`` the renderer plays also plays (1.0: every one; not
  weighted by notes, key ranges or velocity layers).
- ``shared_group(track_dir, stem, font) -> "all" | "some" | "none" | "unknown" | ""``: a held-out track's parts
  of ``stem``.
- ``quality_by_shared(doc, font, row) -> {stem: {group: (median dB, tracks)}}``: a ``bench/quality.py``
  result's medians per stem and group.

A sample counts as shared when its header reads the same (name, rate, loop length): a lower bound on the
recordings two soundfonts have in common (a renamed, resampled or re-looped copy is not found), and for
unlooped one-shots (drums) the loop length adds little to the name.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from export.data.render import DRUM_KITS, SOUNDFONT_HELDOUT, train_soundfonts  # noqa: E402
from export.data.sf2_headers import preset_samples  # noqa: E402

DRUM_BANK = 128


def rendered(key: tuple[int, int]) -> bool:
    """Whether the corpus renderer plays preset ``key``: bank 0, or one of its drum kits (``DRUM_KITS``)."""
    return key[0] == 0 or (key[0] == DRUM_BANK and key[1] in DRUM_KITS)


@lru_cache(maxsize=8)
def shared_shares(heldout: Path, train: Path) -> dict[tuple[int, int], float]:
    """{(bank, program): share of the distinct samples of that held-out preset (banks 0 and 128) that a preset of
    ``train`` the renderer plays (``rendered``) plays too}; raises ValueError when either file has no presets."""
    held, theirs = preset_samples(heldout), preset_samples(train)
    for path, got in ((heldout, held), (train, theirs)):
        if not got:
            raise ValueError(f"{path} has no presets to compare (not a soundfont?)")
    played = frozenset().union(*(v for k, v in theirs.items() if rendered(k)))
    return {k: len(v & played) / len(v) for k, v in held.items() if k[0] in (0, DRUM_BANK) and v}


def parts_of(track_dir: Path, stem: str) -> list[dict]:
    """The parts (``metadata.yaml`` entries) of ``stem`` in the rendered track ``track_dir``."""
    import yaml

    meta = yaml.safe_load((track_dir / "metadata.yaml").read_text())
    return [p for p in meta.get("stems", {}).values() if p.get("role") == stem]


def shared_group(track_dir: Path, stem: str, font: Path, heldout: Path = SOUNDFONT_HELDOUT) -> str:
    """``all``, ``none`` or ``some``: how many of the samples ``stem``'s parts in ``track_dir`` (a render with
    ``heldout``) play ``font`` plays too; ``unknown`` when a part's preset is not in ``heldout``, "" when the track
    has no such part. Raises ValueError on a part rendered with another soundfont."""
    parts = parts_of(track_dir, stem)
    shares = shared_shares(Path(heldout), Path(font))
    got = []
    for p in parts:
        if p.get("plugin_name", Path(heldout).name) != Path(heldout).name:
            raise ValueError(f"{track_dir.name}: {stem} rendered with {p['plugin_name']}, not {Path(heldout).name}")
        got.append(shares.get((DRUM_BANK if p.get("is_drum") else 0, int(p["program_num"]))))
    if not got:
        return ""
    if None in got:
        return "unknown"
    return "all" if min(got) == 1.0 else "none" if max(got) == 0.0 else "some"


def quality_by_shared(
    doc: dict, font: Path, row: str = "model blind", heldout: Path = SOUNDFONT_HELDOUT
) -> dict[str, dict[str, tuple[float, int]]]:
    """A ``bench/quality.py`` JSON's per-track SI-SDRi of ``row``, each stem's median apart for tracks whose parts of
    that stem play ``font``'s samples (``shared_group``): {stem: {group: (median dB, tracks)}}. The track folders
    named in the JSON must be there (their metadata)."""
    folders = {Path(p).name: Path(p) for p in doc["heldout"]["tracks"]}
    if doc["heldout"].get("soundfont") != Path(heldout).name:
        raise ValueError(f"rendered with {doc['heldout'].get('soundfont')}, not {Path(heldout).name}")
    groups: dict[str, dict[str, list[float]]] = {}
    for entry in doc["per_track"]:
        if row not in entry:
            raise ValueError(
                f"no row {row!r} in the per-track figures (rows: {', '.join(k for k in entry if k != 'track')})"
            )
        for stem, cell in entry[row]["sep"].items():
            group = shared_group(folders[entry["track"]], stem, font, heldout)
            groups.setdefault(stem, {}).setdefault(group, []).append(cell["si_sdri"])
    return {s: {g: (float(np.median(v)), len(v)) for g, v in sorted(by.items())} for s, by in groups.items()}


def program_name(key: tuple[int, int]) -> str:
    import pretty_midi

    bank, program = key
    return f"drum kit {program}" if bank == DRUM_BANK else pretty_midi.program_to_instrument_name(program)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--heldout", type=Path, default=SOUNDFONT_HELDOUT)
    ap.add_argument("--train", type=Path, nargs="*", default=None, help="default: every installed training soundfont")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--quality",
        type=Path,
        default=None,
        metavar="JSON",
        help="a bench/quality.py result: each stem's median SI-SDRi apart for parts on the first --train font's "
        "samples (all), partly (some) or not (none); its track folders must be rendered",
    )
    ap.add_argument("--row", default="model blind", help="with --quality: the row (default 'model blind')")
    args = ap.parse_args(argv)
    try:
        fonts = args.train if args.train else list(train_soundfonts().values())
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not fonts:
        print(
            "error: no training soundfont to compare (make setup installs them; or --train FILE ...)", file=sys.stderr
        )
        return 2
    for p in (args.heldout, *fonts):
        if not Path(p).is_file():
            print(f"error: no soundfont at {p}", file=sys.stderr)
            return 2
    doc: dict = {"heldout": Path(args.heldout).name, "shares": {}}
    for font in fonts:
        try:
            shares = shared_shares(Path(args.heldout), Path(font))
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        pitched = {k: v for k, v in shares.items() if k[0] == 0}
        kits = [v for k, v in shares.items() if k[0] == DRUM_BANK and rendered(k)]
        every = sorted(k for k, v in pitched.items() if v == 1.0)
        some = sorted(k for k, v in pitched.items() if 0 < v < 1)
        print(
            f"{Path(font).name}: of {len(pitched)} held-out programs, {len(every)} play only its samples, "
            f"{len(some)} some; the {len(kits)} drum kits the corpus plays: {min(kits, default=0):.0%}-"
            f"{max(kits, default=0):.0%} of their distinct samples"
        )
        if every:
            print("  every sample shared: " + ", ".join(program_name(k) for k in every))
        if some:
            print("  some shared: " + ", ".join(f"{program_name(k)} {pitched[k]:.0%}" for k in some))
        doc["shares"][Path(font).name] = {f"{b}:{p}": v for (b, p), v in sorted(shares.items())}
    if args.quality is not None:
        try:
            table = quality_by_shared(json.loads(args.quality.read_text()), Path(fonts[0]), args.row, args.heldout)
        except (OSError, ValueError, KeyError) as e:
            print(f"error: {args.quality}: {e}", file=sys.stderr)
            return 2
        print(f"{args.row} ({args.quality.name}), median SI-SDRi by parts on {Path(fonts[0]).name}'s samples:")
        for stem, by in table.items():
            print(f"  {stem:8s} " + "  ".join(f"{g or '-'} {m:+.2f} ({n})" for g, (m, n) in by.items()))
        doc["quality"] = {s: {g: list(v) for g, v in by.items()} for s, by in table.items()}
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
