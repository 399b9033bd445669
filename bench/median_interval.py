#!/usr/bin/env python3
"""How far a held-out median could move with another draw of tracks: bootstrap intervals for the blind
row's median SI-SDRi (per stem and overall) from a ``bench/quality.py --json`` file.

Tracks are drawn with replacement, as many as the file holds (those the row scored nothing on included),
``--draws`` times (fixed seed); each draw's medians are computed as ``quality.py``'s summary does (overall:
the median over every scored stem of every track, the model's stems without ``other``; a non-finite
value is left out, and a stem no track scores is not printed). A 48-track median that sits inside such an
interval around a target is not yet a pass or a fail the next set would repeat; paired per-track differences
are what tell small changes apart.

    .venv/bin/python bench/median_interval.py bench/results/quality_shifts1_stop45.json
    .venv/bin/python bench/median_interval.py B.json --against A.json   # and B's paired change from A

``--against`` adds, per stem (``other`` too), the mean per-track difference from another run of the same
tracks and how many tracks went up and down.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

STEMS = ("drums", "bass", "piano", "guitar", "strings")  # where the file's summary does not name them


def stems_of(doc: dict, row: str) -> tuple[str, ...]:
    """The model's stems (``other`` left out, as in quality.py's overall median) from the file's summary."""
    named = doc.get("summary", {}).get(row, {}).get("stems")
    return tuple(s for s in named if s != "other") if isinstance(named, dict) else STEMS


def track_scores(doc: dict, row: str, stems: tuple[str, ...] = STEMS) -> list[dict[str, float]]:
    """Per track of ``doc["per_track"]``: {stem: SI-SDRi} for the ``stems`` ``row`` scored (finite values only;
    a track with none gives an empty dict)."""
    out = []
    for t in doc["per_track"]:
        sep = t.get(row, {}).get("sep", {})
        vals = {s: sep[s].get("si_sdri") for s in stems if s in sep}
        out.append({s: float(v) for s, v in vals.items() if v is not None and np.isfinite(v)})
    return out


def medians(tracks: list[dict[str, float]], stems: tuple[str, ...] = STEMS) -> dict[str, float]:
    """{"overall": median over every scored stem, stem: median over the tracks that score it} (NaN where none)."""
    pooled = [v for t in tracks for v in t.values()]
    out = {"overall": float(np.median(pooled)) if pooled else float("nan")}
    for s in stems:
        vals = [t[s] for t in tracks if s in t]
        out[s] = float(np.median(vals)) if vals else float("nan")
    return out


def intervals(
    tracks: list[dict[str, float]], draws: int, level: float, stems: tuple[str, ...] = STEMS, seed: int = 0
) -> dict[str, tuple]:
    """{name: (median, low, high)}: the ``level`` bootstrap interval of each median over ``draws`` draws, for
    the medians some track scores."""
    rng = np.random.default_rng(seed)
    boot = [medians([tracks[i] for i in rng.integers(0, len(tracks), len(tracks))], stems) for _ in range(draws)]
    lo_q, hi_q = 50.0 * (1.0 - level), 50.0 * (1.0 + level)
    out = {}
    for name, value in medians(tracks, stems).items():
        if not np.isfinite(value):
            continue
        vals = np.array([b[name] for b in boot])
        lo, hi = np.nanpercentile(vals, [lo_q, hi_q])
        out[name] = (value, float(lo), float(hi))
    return out


def by_track(names: list[str], tracks: list[dict[str, float]]) -> dict[str, dict[str, dict[str, float]]]:
    """``track_scores``' rows keyed by track name in ``bench/transcribe_select.py``'s form, for its ``paired``."""
    return {n: {s: {"si_sdri": v} for s, v in t.items()} for n, t in zip(names, tracks)}


def _load(path: Path, row: str) -> tuple[dict, tuple[str, ...], list[str]]:
    doc = json.loads(path.read_text())
    return doc, stems_of(doc, row), [t["track"] for t in doc["per_track"]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("json", type=Path, help="a bench/quality.py --json file")
    ap.add_argument("--row", default="model blind")
    ap.add_argument("--against", type=Path, default=None, help="another run of the same tracks: paired changes")
    ap.add_argument("--draws", type=int, default=2000)
    ap.add_argument("--level", type=float, default=0.9, help="the interval's coverage (default 0.9)")
    args = ap.parse_args(argv)
    if not 0.0 < args.level < 1.0 or args.draws < 1:
        ap.error("--level must be in (0, 1) and --draws at least 1")
    path = args.json
    try:
        doc, stems, names = _load(path, args.row)
        tracks = track_scores(doc, args.row, stems)
        if args.against is not None:
            path = args.against
            base_doc, _, base_names = _load(path, args.row)
            base = track_scores(base_doc, args.row, (*stems, "other"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        ap.exit(2, f"median_interval: error: {path}: not a bench/quality.py result ({e})\n")
    if args.against is not None and base_names != names:
        ap.exit(2, f"median_interval: error: {args.against}: not the same tracks as {args.json}\n")
    if not any(tracks):
        ap.exit(2, f"median_interval: error: {args.json}: no track scored in row {args.row!r}\n")
    print(f"{args.row}: {len(tracks)} tracks, {args.draws} draws, {args.level:.0%} intervals of the median SI-SDRi")
    for name, (value, lo, hi) in intervals(tracks, args.draws, args.level, stems).items():
        print(f"  {name:<8} {value:+6.2f} dB   {lo:+6.2f} .. {hi:+6.2f}")
    if args.against is not None:
        from transcribe_select import paired  # the selection bench's paired per-track changes (same script folder)

        scored = track_scores(doc, args.row, (*stems, "other"))
        cells = paired(by_track(names, scored), by_track(base_names, base))
        print(f"paired against {args.against} (mean dB per track, tracks up+ down-):")
        print("  " + ", ".join(f"{s} {m:+.2f} ({u}+ {d}-)" for s, (m, u, d) in cells.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
