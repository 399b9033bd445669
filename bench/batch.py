#!/usr/bin/env python3
"""``stembridge batch`` throughput: scaling over workers, and the per-file cost against ``separate``.

1. Scaling: ``--minutes`` of stereo 44.1 kHz audio in ``--files`` files (noise + tones, 16-bit
   WAV) through ``run_batch`` (what ``stembridge batch`` runs) once per ``--workers`` count, each
   into a fresh output folder (removed afterwards: 40 minutes are ~5 GB of float stems).
   Reports wall time, x real time overall and per worker, the scaling efficiency
   ``(speed_n / n) / speed_1``, and x real time per CPU second of the workers (``cpu_s`` in the
   manifest): what one dedicated core does, whatever else runs on the machine.
2. Overhead: ``--overhead-files`` short files through ``stembridge separate`` (one process, one
   model) and through ``batch --workers 1``; the batch's extra cost per file is
   ``(batch wall - Ray start and first model load - separate wall) / n_files``: hashing the
   input, fsync and rename of the track folder, the manifest line, the Ray call; the same in
   CPU seconds (workers' ``cpu_s`` against the CPU time of ``separate``), and the driver's CPU.

Prints a table; ``--json FILE`` writes the raw figures. On a cluster, point it at the head and
at a folder every node sees:

    .venv/bin/python bench/batch.py                                  # here: 40 min on 1 and 2 workers
    .venv/bin/python bench/batch.py --address HEAD:6379 --dir /shared/bench --workers 8 16 32
    .venv/bin/python bench/batch.py --address HEAD:6379 --dir /shared/bench --provider cuda --workers 1 2 4
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def make_inputs(folder: Path, n_files: int, seconds: float, seed: int) -> list[Path]:
    import numpy as np
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rate, paths = 44100, []
    for i in range(n_files):
        path = folder / f"song{i:03d}.wav"
        n = int(seconds * rate)
        if not path.is_file() or sf.info(path).frames != n:
            rng = np.random.default_rng(seed + i)
            t = np.arange(n) / rate
            tones = 0.2 * np.sin(2 * np.pi * (110 + 20 * i) * t) + 0.1 * np.sin(2 * np.pi * 880 * t)
            x = 0.1 * rng.standard_normal((n, 2)) + tones[:, None]
            sf.write(path, x.astype(np.float32), rate, subtype="PCM_16")
        paths.append(path)
    return paths


def run(inputs: list[Path], out: Path, args: argparse.Namespace, workers: int) -> dict:
    from bridge.batch.run import run_batch

    shutil.rmtree(out, ignore_errors=True)
    t0, cpu0 = time.perf_counter(), time.process_time()
    s = run_batch(
        inputs, out, model=args.model, workers=workers, address=args.address, provider=args.provider, quiet=True
    )
    wall, driver_cpu = time.perf_counter() - t0, time.process_time() - cpu0
    recs = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    shutil.rmtree(out, ignore_errors=True)
    if s.n_failed:
        raise SystemExit(f"{s.n_failed} inputs failed: {s.failures[:3]}")
    return {
        "workers": s.n_workers,
        "n_files": s.n_ok,
        "audio_s": s.audio_s,
        "wall_s": wall,
        "startup_s": s.startup_s,
        "x_real_time": s.audio_s / wall,
        "x_real_time_per_worker": s.audio_s / wall / s.n_workers,
        "file_seconds_sum": sum(r["seconds"] for r in recs),
        "worker_cpu_s": sum(r["cpu_s"] for r in recs),
        "driver_cpu_s": driver_cpu,
        "x_real_time_per_cpu_s": s.audio_s / sum(r["cpu_s"] for r in recs),
        "nodes": len({r["node"] for r in recs}),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=40.0, help="audio for the scaling runs (default 40)")
    ap.add_argument("--files", type=int, default=12, help="files the minutes are split into (default 12)")
    ap.add_argument("--workers", type=int, nargs="*", default=[1, 2], help="worker counts (default 1 2; none: skip)")
    ap.add_argument("--overhead-files", type=int, default=20, help="short files for the overhead run (default 20)")
    ap.add_argument("--overhead-seconds", type=float, default=10.0, help="seconds per short file (default 10)")
    ap.add_argument("--overhead-repeats", type=int, default=3, help="separate/batch rounds, median (default 3)")
    ap.add_argument("--model", default="band", help="model (default band)")
    ap.add_argument("--address", default=None, help="Ray cluster to join (default: a local instance per run)")
    ap.add_argument("--provider", choices=("cpu", "cuda"), default="cpu", help="onnxruntime provider (default cpu)")
    ap.add_argument("--dir", type=Path, default=Path("out/bench/batch"), help="work folder (default out/bench/batch)")
    ap.add_argument("--json", type=Path, default=None, help="write the raw figures here")
    args = ap.parse_args(argv)

    from bridge.cli import main as stembridge

    print(
        f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f} at start; model {args.model}"
    )
    long_inputs = (
        make_inputs(args.dir / "long", args.files, args.minutes * 60 / args.files, seed=0) if args.workers else []
    )
    scaling = []
    header = ("workers", "audio_min", "wall_s", "start_s", "x_real_time", "per_worker", "eff", "per_cpu_s")
    if args.workers:
        print(" ".join(f"{h:>{w}}" for h, w in zip(header, (7, 9, 8, 7, 11, 10, 5, 9))))
    for n in args.workers:
        r = run(long_inputs, args.dir / "out", args, n)
        r["efficiency"] = r["x_real_time_per_worker"] / scaling[0]["x_real_time_per_worker"] if scaling else 1.0
        scaling.append(r)
        print(
            f"{r['workers']:>7} {r['audio_s'] / 60:>9.1f} {r['wall_s']:>8.1f} {r['startup_s']:>7.1f} "
            f"{r['x_real_time']:>11.1f} {r['x_real_time_per_worker']:>10.1f} {r['efficiency']:>5.2f} "
            f"{r['x_real_time_per_cpu_s']:>9.1f}",
            flush=True,
        )

    short = make_inputs(args.dir / "short", args.overhead_files, args.overhead_seconds, seed=1000)
    rounds = []
    for _ in range(args.overhead_repeats):  # separate and batch alternate: both see the same load drift
        sep_out = args.dir / "separate"
        shutil.rmtree(sep_out, ignore_errors=True)
        t0, cpu0 = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(io.StringIO()):
            code = stembridge(["separate", *map(str, short), "-o", str(sep_out), "-m", args.model, "-q"])
        sep_wall, sep_cpu = time.perf_counter() - t0, time.process_time() - cpu0
        shutil.rmtree(sep_out, ignore_errors=True)
        if code:
            raise SystemExit(f"separate failed ({code})")
        b = run(short, args.dir / "out", args, 1)
        rounds.append(
            {
                "separate_wall_s": sep_wall,
                "separate_cpu_s": sep_cpu,
                "batch": b,
                "overhead_per_file_s": (b["wall_s"] - b["startup_s"] - sep_wall) / len(short),
                "worker_cpu_overhead_per_file_s": (b["worker_cpu_s"] - sep_cpu) / len(short),
                "driver_cpu_per_file_s": b["driver_cpu_s"] / len(short),
            }
        )
    keys = ("overhead_per_file_s", "worker_cpu_overhead_per_file_s", "driver_cpu_per_file_s")
    median = {k: statistics.median(r[k] for r in rounds) for k in keys}
    overhead = {"n_files": len(short), "file_s": args.overhead_seconds, "rounds": rounds, "median": median}
    print(f"\n# overhead: {len(short)} x {args.overhead_seconds:g} s files, 1 worker, {len(rounds)} rounds")
    for r in rounds:
        b = r["batch"]
        print(
            f"separate {r['separate_wall_s']:.1f} s wall, {r['separate_cpu_s']:.1f} s CPU; batch {b['wall_s']:.1f} s "
            f"wall of which {b['startup_s']:.1f} s Ray start + model load, workers {b['worker_cpu_s']:.1f} s CPU, "
            f"driver {b['driver_cpu_s']:.1f} s CPU"
        )
    print(
        f"overhead per file (median): {1000 * median['overhead_per_file_s']:.0f} ms wall, "
        f"{1000 * median['worker_cpu_overhead_per_file_s']:.0f} ms worker CPU, "
        f"{1000 * median['driver_cpu_per_file_s']:.0f} ms driver CPU"
    )
    print(f"# load average {os.getloadavg()[0]:.1f} at the end")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
        load = os.getloadavg()[0]
        result = {"machine": machine, "model": args.model, "load_end": load, "scaling": scaling, "overhead": overhead}
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
