#!/usr/bin/env python3
"""Score-informed parts quality (issue 11): per-part SI-SDRi / SDR on MuseScore General renders.

Runs the real offline path (``separate_parts_file``, what ``stembridge separate --parts`` runs:
a score's one kit part half from the ``--model`` network's drums unless ``--kit-from score``)
on the sets of ``bench/parts_sets.py`` and scores every part's stem against its true signal
(mono; parts whose true signal is silent, or is the whole mix, are skipped):

- (a) ``band``: held-out band arrangements with their true score;
- (b) ``ensembles``: two violins, two pianos, two guitars, violin + viola;
- (c) ``chamber``: string and wind quartets played with rubato, the performed MIDI as the score;
- (d) robustness: (a) and (c) with the score jittered by +-30 ms per note, shifted by 50 ms, with
  10 % of the notes deleted and 10 % wrong notes added (the cost against the clean score).

Reference rows from the same cases: the ideal ratio mask at the parts' STFT (4096 / 1024, the
ceiling of any magnitude mask at it) and, on (a), the class model with the score (``--model``) for each
part that is the only one of its class stem in its track.

    .venv/bin/python bench/parts.py                                     # every set, 20 s cases
    .venv/bin/python bench/parts.py --sets band,ensembles --band-tracks 6 --json out/parts.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.metrics import ideal_ratio_mask, separation_scores  # noqa: E402
from bench.parts_sets import PERTURBATIONS, band_cases, chamber_cases, ensemble_cases, perturb  # noqa: E402
from bridge.backends import OFFLINE_BLOCK_SIZE  # noqa: E402

SETS = ("band", "ensembles", "chamber")
TARGETS_DB = {"band": 10.0, "ensembles": 7.0, "chamber": 9.0}
MAX_PERTURBATION_COST_DB = 1.5


def _read(path: Path) -> np.ndarray:
    import soundfile as sf

    x, _ = sf.read(str(path), dtype="float64", always_2d=True)
    return x.mean(axis=1)


def run_parts(case: Path, work: Path, parts, block_size: int, kit_model=None) -> tuple[list[np.ndarray], float]:
    """Part stems (mono) of one case through ``separate_parts_file`` (a kit part half from
    ``kit_model``'s drums, as ``separate --parts`` does by default), and the wall time."""
    from bridge.backends.offline import separate_parts_file

    out = work / "parts"
    res = separate_parts_file(parts, case / "mix.wav", out, block_size=block_size, model=kit_model)
    n = res.n_samples
    stems = [_read(out / f"{p.name}.wav")[:n] for p in parts]
    shutil.rmtree(out, ignore_errors=True)
    return stems, res.wall_s


def evaluate_case(
    case: Path, work: Path, processor, block_size: int, perturbations: bool, seed: int, kit_model=None
) -> dict:
    """{row: [{part, si_sdri, sdr}, ...]} plus audio seconds and wall time of the parts row."""
    from bridge.instruments import OTHER, stem_for_program
    from bridge.parts.score_parts import read_parts

    mix = _read(case / "mix.wav")
    parts = read_parts(case / "score.mid")
    refs = [_read(case / "parts" / f"{k}.wav")[: len(mix)] for k in range(len(parts))]
    rows: dict[str, list[dict]] = {}

    def add(row: str, ests: list[np.ndarray], which: list[int] | None = None) -> None:
        for k in which if which is not None else range(len(parts)):
            s = separation_scores(ests[k] if which is None else ests[which.index(k)], mix, refs[k])
            if s is not None:
                rows.setdefault(row, []).append({"part": parts[k].name, **s})

    stems, wall = run_parts(case, work, parts, block_size, kit_model)
    add("parts", stems)
    from bridge.parts.processor import stft_size_for

    add("IRM ceiling", list(ideal_ratio_mask(mix, np.stack(refs), *stft_size_for(44100))))  # the parts' STFT
    if perturbations:
        for i, kind in enumerate(PERTURBATIONS):
            rng = np.random.default_rng([seed, i])
            bad = perturb([p.notes for p in parts], kind, rng)
            bad_parts = [dataclasses.replace(p, notes=n) for p, n in zip(parts, bad)]
            add(f"score {kind}", run_parts(case, work, bad_parts, block_size, kit_model)[0])
    if processor is not None:
        from bridge.backends.offline import separate_file

        classes = [stem_for_program(p.program, p.is_drum) for p in parts]
        unique = [k for k, c in enumerate(classes) if c != OTHER and classes.count(c) == 1]
        if unique:
            out = work / "model"
            res = separate_file(processor, case / "mix.wav", out, block_size=block_size, score_path=case / "score.mid")
            by_stem = {p.stem: p for p in res.stem_paths}
            add("class model + score", [_read(by_stem[classes[k]])[: len(mix)] for k in unique], unique)
            shutil.rmtree(out, ignore_errors=True)
    return {"rows": rows, "audio_s": len(mix) / 44100.0, "parts_wall_s": wall, "n_parts": len(parts)}


def summarize(cases: list[dict]) -> dict:
    """Per row: median SI-SDRi and SDR over every part of every case, and the count."""
    rows: dict[str, list[dict]] = {}
    for c in cases:
        for row, items in c["rows"].items():
            rows.setdefault(row, []).extend(items)
    out = {}
    for row, items in rows.items():
        out[row] = {
            "median_si_sdri_db": float(np.median([i["si_sdri"] for i in items])),
            "median_sdr_db": float(np.median([i["sdr"] for i in items])),
            "n_parts": len(items),
        }
    audio = sum(c["audio_s"] for c in cases)
    wall = sum(c["parts_wall_s"] for c in cases)
    out["speed"] = {"audio_s": audio, "wall_s": wall, "x_real_time": audio / max(wall, 1e-9)}
    return out


def check_targets(summary: dict) -> list[dict]:
    """Pass/fail of the issue's targets on whatever sets ran."""
    out = []
    for name, target in TARGETS_DB.items():
        if name in summary:
            v = summary[name]["parts"]["median_si_sdri_db"]
            out.append({"target": f"{name}: median SI-SDRi >= {target:g} dB", "value": v, "pass": v >= target})
    for name in ("band", "chamber"):
        if name not in summary:
            continue
        clean = summary[name]["parts"]["median_si_sdri_db"]
        for kind in PERTURBATIONS:
            row = summary[name].get(f"score {kind}")
            if row is None:
                continue
            cost = clean - row["median_si_sdri_db"]
            out.append(
                {
                    "target": f"{name} {kind}: costs <= {MAX_PERTURBATION_COST_DB:g} dB",
                    "value": cost,
                    "pass": cost <= MAX_PERTURBATION_COST_DB,
                }
            )
    return out


def print_tables(summary: dict, targets: list[dict]) -> None:
    for name, rows in summary.items():
        print(f"\n{name}")
        print(f"  {'row':<24} {'SI-SDRi':>8} {'SDR':>8} {'parts':>6}")
        for row, v in rows.items():
            if row == "speed":
                continue
            print(f"  {row:<24} {v['median_si_sdri_db']:8.2f} {v['median_sdr_db']:8.2f} {v['n_parts']:6d}")
        sp = rows["speed"]
        speed = f"{sp['audio_s']:.0f} s audio in {sp['wall_s']:.1f} s = {sp['x_real_time']:.1f}x real time"
        print(f"  parts row speed: {speed}")
    print("\ntargets")
    for t in targets:
        print(f"  {'PASS' if t['pass'] else 'FAIL'}  {t['target']}: {t['value']:.2f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sets", default=",".join(SETS), help=f"comma-separated subset of {','.join(SETS)}")
    p.add_argument("--band-tracks", type=int, default=16, help="held-out band tracks (default 16)")
    p.add_argument("--ensembles-per-kind", type=int, default=3, help="pieces per ensemble kind (default 3)")
    p.add_argument("--chamber-pieces", type=int, default=8, help="chamber pieces (default 8)")
    p.add_argument("--seconds", type=float, default=20.0, help="length of every case (default 20)")
    p.add_argument("--no-perturbations", action="store_true", help="skip the robustness rows (d)")
    p.add_argument(
        "--model", default="band", help="network for the kit parts and the reference row on (a); 'none' skips both"
    )
    p.add_argument(
        "--kit-from", choices=("network", "score"), default="network", help="a kit part's source (separate --kit-from)"
    )
    p.add_argument("--block-size", type=int, default=OFFLINE_BLOCK_SIZE, help="samples per block (as separate)")
    p.add_argument("--pin", action="store_true", help="pin to one CPU core (speed figures on one core)")
    p.add_argument("--cache", type=Path, default=Path("out/bench_cache/parts"), help="rendered cases (re-used)")
    p.add_argument("--json", type=Path, default=None, help="write per-part results and the summary here")
    args = p.parse_args(argv)
    if args.pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    sets = [s for s in args.sets.split(",") if s]
    unknown = [s for s in sets if s not in SETS]
    if unknown:
        p.error(f"unknown set(s): {', '.join(unknown)}")
    args.cache.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    builders = {
        "band": lambda: band_cases(args.cache, args.band_tracks, args.seconds),
        "ensembles": lambda: ensemble_cases(args.cache, args.ensembles_per_kind, args.seconds),
        "chamber": lambda: chamber_cases(args.cache, args.chamber_pieces, args.seconds),
    }
    network = None
    if args.model != "none":
        from bridge.engine import Processor

        network = Processor(args.model)  # each run prepares it and gives it its own score
    processor = network if "band" in sets else None
    kit_model = network if args.kit_from == "network" else None
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="sb_parts_") as tmp:
        for name in sets:
            cases = builders[name]()
            print(f"{name}: {len(cases)} cases", file=sys.stderr)
            results[name] = []
            for case in cases:
                r = evaluate_case(
                    case,
                    Path(tmp),
                    processor if name == "band" else None,
                    args.block_size,
                    perturbations=name in ("band", "chamber") and not args.no_perturbations,
                    seed=sum(case.name.encode()),
                    kit_model=kit_model,
                )
                r["case"] = case.name
                results[name].append(r)
                print(
                    f"  {case.name}: " + ", ".join(f"{i['part']} {i['si_sdri']:+.1f}" for i in r["rows"]["parts"]),
                    file=sys.stderr,
                )
    summary = {name: summarize(cases) for name, cases in results.items()}
    targets = check_targets(summary)
    print_tables(summary, targets)
    wall = time.perf_counter() - t0
    print(f"\nwall {wall:.0f} s (rendering included on a first run)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "pinned": bool(args.pin)},
            "settings": {k: str(v) for k, v in vars(args).items()},
            "summary": summary,
            "targets": targets,
            "cases": results,
            "wall_s": wall,
        }
        args.json.write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
