#!/usr/bin/env python3
"""Selection-set A/B of the parts decomposition's settings (issue 11), never the held-out sets.

``bench/parts.py`` reports on the held-out sets (band seed 9001, chamber seed 9201); choices are
made here, on the selection sets: band arrangements of corpus seed 9002 (rendered with MuseScore
General, as ``bench/quality.py --seed 9002``) and chamber pieces of seed 9202. Each variant is a
JSON object of ``PartsSettings`` / ``DecompositionSettings`` fields; every variant runs the real
offline path (``separate_parts_file``) and prints the median per-part SI-SDRi per set, with the
score clean or with 10 % of its notes deleted (``--delete``, as ``bench/parts.py``'s delete10).

    .venv/bin/python bench/parts_select.py --variant '{}' --variant '{"unscored_semitones": 0}'
    .venv/bin/python bench/parts_select.py --sets chamber --delete --variant '{"unscored_penalty": 0.05}'
    .venv/bin/python bench/parts_select.py --sets band --band-tracks 48 --model band --json out/sel.json

A drum kit part comes from the decomposition unless ``--model`` names a network (as
``separate --parts`` does with its default model).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.metrics import separation_scores  # noqa: E402
from bench.parts import _read  # noqa: E402
from bench.parts_sets import band_cases, chamber_cases, perturb  # noqa: E402

BAND_SEED, CHAMBER_SEED = 9002, 9202  # selection; bench/parts.py holds out 9001 / 9201


def settings_of(variant: dict):
    """``PartsSettings`` from a flat dict of its and ``DecompositionSettings``' fields."""
    from bridge.parts.decompose import DecompositionSettings
    from bridge.parts.processor import PartsSettings

    dec_fields = {f.name for f in dataclasses.fields(DecompositionSettings)}
    part_fields = {f.name for f in dataclasses.fields(PartsSettings)} - {"decomposition"}
    unknown = set(variant) - dec_fields - part_fields
    if unknown:
        raise SystemExit(f"unknown setting(s): {', '.join(sorted(unknown))}")
    dec = DecompositionSettings(**{k: v for k, v in variant.items() if k in dec_fields})
    return PartsSettings(decomposition=dec, **{k: v for k, v in variant.items() if k in part_fields})


def evaluate(cases: list[Path], settings, delete: bool, model=None) -> list[dict]:
    """Per part of every case: {case, part, si_sdri} (parts whose true signal is silent skipped)."""
    from bridge.backends.offline import separate_parts_file
    from bridge.parts.score_parts import read_parts

    out = []
    for case in cases:
        mix = _read(case / "mix.wav")
        parts = read_parts(case / "score.mid")
        refs = [_read(case / "parts" / f"{k}.wav")[: len(mix)] for k in range(len(parts))]
        if delete:  # the same deletions as bench/parts.py's delete10 row draws for this case
            rng = np.random.default_rng([sum(case.name.encode()), 2])
            notes = perturb([p.notes for p in parts], "delete10", rng)
            parts = [dataclasses.replace(p, notes=n) for p, n in zip(parts, notes)]
        with tempfile.TemporaryDirectory(prefix="sb_parts_sel_") as tmp:
            res = separate_parts_file(parts, case / "mix.wav", Path(tmp), settings=settings, model=model)
            for k, p in enumerate(parts):
                s = separation_scores(_read(Path(tmp) / f"{p.name}.wav")[: res.n_samples], mix, refs[k])
                if s is not None:
                    out.append({"case": case.name, "part": p.name, "si_sdri": s["si_sdri"]})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", action="append", default=None, help="JSON settings (repeat; default '{}')")
    p.add_argument("--sets", default="band,chamber", help="comma-separated subset of band,chamber")
    p.add_argument("--band-tracks", type=int, default=16, help="selection band tracks (default 16)")
    p.add_argument("--chamber-pieces", type=int, default=8, help="selection chamber pieces (default 8)")
    p.add_argument("--delete", action="store_true", help="score with 10 %% of its notes deleted")
    p.add_argument("--model", default="none", help="network for a kit part (default none: the decomposition's)")
    p.add_argument("--cache", type=Path, default=Path("out/bench_cache/parts_sel"), help="rendered cases (re-used)")
    p.add_argument("--json", type=Path, default=None, help="write every variant's per-part results here")
    args = p.parse_args(argv)
    sets = [s for s in args.sets.split(",") if s]
    if any(s not in ("band", "chamber") for s in sets):
        p.error(f"unknown set in {args.sets!r}")
    variants = [json.loads(v) for v in (args.variant or ["{}"])]
    model = None
    if args.model != "none":
        from bridge.engine import Processor

        model = Processor(args.model)
    builders = {
        "band": lambda: band_cases(args.cache, args.band_tracks, 20.0, seed=BAND_SEED),
        "chamber": lambda: chamber_cases(args.cache, args.chamber_pieces, 20.0, seed=CHAMBER_SEED),
    }
    cases = {s: builders[s]() for s in sets}
    results = []
    for variant in variants:
        settings = settings_of(variant)
        t0 = time.perf_counter()
        row = {"variant": variant, "delete10": args.delete, "sets": {}}
        for s in sets:
            parts = evaluate(cases[s], settings, args.delete, model)
            row["sets"][s] = {"median_si_sdri_db": float(np.median([x["si_sdri"] for x in parts])), "parts": parts}
        medians = ", ".join(f"{s} {row['sets'][s]['median_si_sdri_db']:+.3f}" for s in sets)
        print(
            f"{json.dumps(variant)}{' delete10' if args.delete else ''}: {medians} ({time.perf_counter() - t0:.0f} s)"
        )
        results.append(row)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"command": " ".join(sys.argv), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
