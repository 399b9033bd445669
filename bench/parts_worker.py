#!/usr/bin/env python3
"""Worker time of the score-informed parts per live block (issue 11: eight parts at 48 kHz / 256).

Runs ``PartsProcessor.process`` block by block, as the real-time worker does, on a rendered
held-out mix (``bench/parts_sets.py`` band case, resampled to the rate asked for with soxr) with
N parts: the case's own parts, then copies of them on new channels until there are N (each copy
a separate part with its own templates, so the work is that of N parts). Prints p50 / p99 / max
per block against the block period, and the offline speed at 4096-sample blocks.

    .venv/bin/python bench/parts_worker.py --parts 8 --rate 48000 --block 256 --pin
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", type=int, default=8)
    p.add_argument("--rate", type=int, default=48000)
    p.add_argument("--block", type=int, default=256)
    p.add_argument("--low-latency", action="store_true", help="the 46 ms window")
    p.add_argument("--pin", action="store_true", help="pin to one CPU core")
    p.add_argument("--cache", type=Path, default=Path("out/bench_cache/parts"))
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import soundfile as sf
    import soxr

    from bench.parts_sets import band_cases
    from bridge.parts.processor import PartsProcessor, PartsSettings, spec_of
    from bridge.parts.score_parts import read_parts

    case = band_cases(args.cache, 2, 20.0)[-1]
    mix, sr = sf.read(case / "mix.wav", dtype="float32", always_2d=True)
    x = soxr.resample(mix, sr, args.rate).T if sr != args.rate else mix.T
    x = np.ascontiguousarray(np.repeat(x[:1], 2, axis=0), np.float32)
    base = read_parts(case / "score.mid")
    specs = [spec_of(base[k % len(base)]) for k in range(args.parts)]
    notes = [base[k % len(base)].notes for k in range(args.parts)]
    settings = PartsSettings(low_latency=args.low_latency)

    def run(block: int) -> np.ndarray:
        proc = PartsProcessor(specs, settings)
        proc.prepare(args.rate, block, 2)
        proc.set_part_notes(notes)
        out = []
        for i in range(0, x.shape[1], block):
            t0 = time.perf_counter()
            proc.process(x[:, i : i + block])
            out.append(time.perf_counter() - t0)
        return np.asarray(out) * 1000.0

    live = run(args.block)
    period_ms = 1000.0 * args.block / args.rate
    offline = run(4096)
    audio_s = x.shape[1] / args.rate
    res = {
        "case": case.name,
        "parts": args.parts,
        "rate": args.rate,
        "block": args.block,
        "low_latency": args.low_latency,
        "pinned": bool(args.pin),
        "period_ms": period_ms,
        "worker_ms_p50": float(np.percentile(live, 50)),
        "worker_ms_p99": float(np.percentile(live, 99)),
        "worker_ms_max": float(live.max()),
        "p99_share_of_period": float(np.percentile(live, 99) / period_ms),
        "offline_x_real_time": audio_s / (offline.sum() / 1000.0),
        "load_average": os.getloadavg()[0],
    }
    print(
        f"{args.parts} parts at {args.rate} Hz / {args.block}: worker p50 {res['worker_ms_p50']:.2f} ms, "
        f"p99 {res['worker_ms_p99']:.2f} ms ({100 * res['p99_share_of_period']:.0f} % of the {period_ms:.2f} ms "
        f"period), max {res['worker_ms_max']:.2f} ms; offline (4096-sample blocks) {res['offline_x_real_time']:.1f}x "
        f"real time; load average {res['load_average']:.1f}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
