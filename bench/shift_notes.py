#!/usr/bin/env python3
"""Would ``separate --shifts`` write better notes by voting over its runs' notes? (Selection set.)

Reads the ``notes.mid`` that ``bench/shift_select.py --path blind`` left beside each shifted run's stems
(``--stems``/blind-shift/TRACK_SHIFT), moves each run's notes back by its shift and, per stem, keeps a
note when at least M of the N runs have one at the same pitch (drums: the same drum class) with an
onset within 50 ms of it (greedy, in onset order; onset and offset the median of the group's, pitch
and velocity the unshifted run's where it has one). Prints the mean onset F1 per stem (as
``bench/transcribe_select.py``) for the unshifted run's notes (what ``--shifts`` writes) and for each M.

    .venv/bin/python bench/shift_notes.py --shifts 0 128 256 384 --json bench/results/shift_notes.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

TOLERANCE_S = 0.05


def vote(runs: list[np.ndarray], at_least: int, tol_s: float = TOLERANCE_S) -> np.ndarray:
    """Notes (n, 4) found in at least ``at_least`` of ``runs`` (each (n_i, 4), run 0 the unshifted one)."""
    pool = sorted(
        ((row, i) for i, a in enumerate(runs) for row in np.asarray(a).reshape(-1, 4).tolist()), key=lambda x: x[0][0]
    )
    used = [False] * len(pool)
    out = []
    for i, (note, run) in enumerate(pool):
        if used[i]:
            continue
        group, seen = [(note, run)], {run}
        used[i] = True
        for j in range(i + 1, len(pool)):
            other, r = pool[j]
            if other[0] - note[0] > tol_s:
                break
            if not used[j] and r not in seen and other[2] == note[2]:
                group.append((other, r))
                seen.add(r)
                used[j] = True
        if len(group) >= at_least:
            g = np.array([x[0] for x in group])
            base = next((x[0] for x in group if x[1] == 0), g[0].tolist())
            out.append([float(np.median(g[:, 0])), float(np.median(g[:, 1])), base[2], base[3]])
    return np.array(out, np.float64).reshape(-1, 4)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tracks", type=Path, default=Path("out/heldout/s9002_20s"), help="rendered track folders")
    ap.add_argument("--stems", type=Path, default=Path("out/remask_stems"), help="shift_select's stem cache")
    ap.add_argument("--shifts", type=int, nargs="+", default=[0, 128, 256, 384], help="delays in samples, 0 first")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    import soundfile as sf

    from bench.metrics import onset_f1
    from bench.transcribe_select import STEMS, mix_and_refs, save_json, track_folders
    from bridge.score import read_score_file

    if not args.shifts or args.shifts[0] != 0:
        ap.error("--shifts starts with 0")
    f1: dict[str, dict[str, list[float]]] = {}
    for td in track_folders(args.tracks, 0, 10**6):
        truth = mix_and_refs(td)[0]
        sr = sf.info(str(td / "mix.flac")).samplerate
        runs = []
        for k in args.shifts:
            path = args.stems / "blind-shift" / f"{td.name}_{k}" / "notes.mid"
            if not path.is_file():
                raise SystemExit(f"error: {path} missing: run bench/shift_select.py --path blind --shifts ... first")
            back = np.array([k / sr, k / sr, 0.0, 0.0])
            runs.append(
                [np.maximum(a - back, 0.0) if len(a) else a.reshape(0, 4) for a in read_score_file(path, STEMS)]
            )
        for s_i, s in enumerate(STEMS):
            if not len(truth["notes"][s_i]):
                continue
            rows = {"unshifted run": runs[0][s_i]}
            for m in range(1, len(runs) + 1):
                rows[f"in >= {m} of {len(runs)}"] = vote([r[s_i] for r in runs], m)
            for name, est in rows.items():
                f1.setdefault(name, {}).setdefault(s, []).append(
                    onset_f1(truth["notes"][s_i], est, drums=s == "drums")[2]
                )
    for name, per in f1.items():
        pitched = np.mean([np.mean(per[s]) for s in STEMS[1:] if s in per])
        print(
            f"{name:>16}: "
            + " ".join(f"{s} {np.mean(per[s]):.3f}" for s in STEMS if s in per)
            + f" | pitched {pitched:.3f}"
        )
    save_json({"f1": f1, "shifts": args.shifts}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
