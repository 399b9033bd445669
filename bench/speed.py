#!/usr/bin/env python3
"""Offline separation speed, as a multiple of real time, pinned to one CPU core.

Runs the Processor (the same path as `stembridge separate`, without file I/O) over a
synthetic stereo signal for each model and block size, with onnxruntime on one intra-op
thread and the process pinned to one core. Prints a table; `--plot FILE` writes a bar chart.

    .venv/bin/python bench/speed.py                 # default + test models, 60 s of audio
    .venv/bin/python bench/speed.py --seconds 30 --models band --blocks 4096 16384
    .venv/bin/python bench/speed.py --json bench/results/speed.json   # also keep the rows as JSON
    .venv/bin/python bench/speed.py --models band --network-only   # the network alone, no STFT / Python
    .venv/bin/python bench/speed.py --models band --provider cuda  # onnxruntime's CUDA provider (gpu extra)
    .venv/bin/python bench/speed.py --models band --soft-masks     # the masks softened, as `run` sends them

``--network-only`` times the onnxruntime session by itself on 8, 32, 128, 512 and 2048 frames per call
(random magnitudes, zero state): the ceiling any host code around this network can reach.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=None, help="model names/paths (default: every registered model)")
    ap.add_argument("--blocks", nargs="*", type=int, default=[1024, 4096, 16384], help="block sizes in samples")
    ap.add_argument("--seconds", type=float, default=60.0, help="seconds of audio per run (default 60)")
    ap.add_argument("--rate", type=int, default=44100, help="host sample rate (default 44100)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per cell; the best is reported (default 3)")
    ap.add_argument("--no-pin", action="store_true", help="do not pin the process to one core")
    ap.add_argument("--plot", type=Path, default=None, help="write a PNG bar chart here (needs matplotlib)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows and the machine as JSON")
    ap.add_argument("--network-only", action="store_true", help="time the network's session alone (see above)")
    ap.add_argument("--provider", choices=("cpu", "cuda"), default="cpu", help="onnxruntime provider (default cpu)")
    ap.add_argument(
        "--soft-masks", action="store_true", help="the network's masks softened as `run` sends them (bridge.remasked)"
    )
    args = ap.parse_args(argv)

    import numpy as np

    from bridge.engine import Processor
    from bridge.errors import DeviceError
    from bridge.model import OnnxModel, list_models, providers_for

    try:
        providers = providers_for(args.provider)
    except DeviceError as e:
        print(f"speed.py: error: {e}", file=sys.stderr)
        return 4
    if not args.no_pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    names = args.models or [m["name"] for m in list_models()]
    if args.network_only:
        if args.soft_masks:
            ap.error("--soft-masks softens what the Processor applies; --network-only times the session alone")
        return network_only(names, args.seconds, providers)
    n = int(args.seconds * args.rate)
    rng = np.random.default_rng(0)
    t = np.arange(n) / args.rate
    x = (0.1 * rng.standard_normal((2, n)) + 0.3 * np.sin(2 * np.pi * 110 * t)).astype(np.float32)

    print(
        f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"pinned to one: {not args.no_pin}, onnxruntime provider: {args.provider}"
    )
    print(f"# {args.seconds:g} s stereo at {args.rate} Hz, onnxruntime intra-op threads = 1, best of {args.repeats}")
    print(f"{'model':<12} {'block':>7} {'wall_s':>8} {'x_real_time':>12} {'latency_ms':>11}")
    rows = []
    records = []
    for name in names:
        proc = Processor(OnnxModel(name, n_threads=1, providers=providers))
        if args.soft_masks:
            from bridge.remasked import soften

            soften(proc)
        for block in args.blocks:
            proc.prepare(args.rate, block, 2)
            best = float("inf")
            for _ in range(args.repeats):
                proc.reset()
                t0 = time.perf_counter()
                for i in range(0, n, block):
                    proc.process(x[:, i : i + block])
                best = min(best, time.perf_counter() - t0)
            speed = args.seconds / best
            rows.append((name, block, speed))
            lat_ms = 1000 * proc.latency_samples / args.rate
            records.append(
                {"model": name, "model_version": proc.meta.version, "block_size": block, "wall_s": best}
                | {"x_real_time": speed, "latency_ms": lat_ms}
            )
            print(f"{name:<12} {block:>7} {best:>8.2f} {speed:>12.1f} {lat_ms:>11.2f}", flush=True)
    if args.json:
        import json

        import onnxruntime

        machine = {"processor": platform.processor() or platform.machine(), "n_cpus": os.cpu_count()}
        machine |= {"pinned_to_one_core": not args.no_pin, "python": platform.python_version()}
        machine |= {"onnxruntime": onnxruntime.__version__, "numpy": np.__version__, "provider": args.provider}
        run = {"seconds": args.seconds, "rate": args.rate, "repeats": args.repeats, "best_of": args.repeats}
        run["soft_masks"] = args.soft_masks
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine, "run": run, "rows": records}, indent=2) + "\n")
        print(f"json: {args.json}")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 3.5))
        labels = [f"{m}\n{b}" for m, b, _ in rows]
        ax.bar(labels, [s for _, _, s in rows])
        ax.axhline(30, color="r", ls="--", label="target 30x")
        ax.set_ylabel("x real time (one core)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"plot: {args.plot}")
    return 0


def network_only(names: list[str], seconds: float, providers: list[str] | None = None) -> int:
    """The session alone: microseconds per frame and the real-time multiple at the model's rate."""
    import numpy as np

    from bridge.model import OnnxModel

    print(f"{'model':<12} {'frames/call':>11} {'us/frame':>9} {'x_real_time':>12}")
    for name in names:
        model = OnnxModel(name, n_threads=1, providers=providers)
        meta = model.meta
        for t in (8, 32, 128, 512, 2048):
            mag = np.random.default_rng(0).random((1, t, meta.n_fft // 2 + 1), np.float32)
            state = model.zero_state(1)
            model.run(mag, None, state)  # warm-up
            n_calls, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds / 10:
                model.run(mag, None, state)
                n_calls += 1
            per_frame_s = (time.perf_counter() - t0) / (n_calls * t)
            speed = meta.hop / meta.sample_rate / per_frame_s
            print(f"{name:<12} {t:>11} {1e6 * per_frame_s:>9.1f} {speed:>12.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
