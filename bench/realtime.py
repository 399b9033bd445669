"""Real-time benchmark: worker time (p50/p99), deadline misses and xruns vs block size, rate
and worker mode (thread or child process).

For every rate and block size a private ``jackd -d dummy`` server (real clock, no sound card)
is started, ``stembridge run --backend jack`` runs in its own process for ``--seconds`` while a
test client in this process plays the shipped example into it, over and over: ``examples/demo/
mix.flac`` resampled to the server rate and its score ``score.mid`` as live MIDI on ``score_in``
(the same material as ``bench/soak.py``). The run's ``--stats`` JSON gives the figures. The
model is the registry default when it is registered, else ``test-tiny``. ``--no-realtime``
starts the server without real-time scheduling (to compare with ``-R``, the default).

    .venv/bin/python bench/realtime.py                       # 44100 and 48000 Hz x 64..1024 frames
    .venv/bin/python bench/realtime.py --rates 48000 --blocks 256 --seconds 60
    .venv/bin/python bench/realtime.py --workers process thread --blocks 256
    .venv/bin/python bench/realtime.py --plot out/bench_realtime.png
    .venv/bin/python bench/realtime.py --rates 48000 --blocks 256 --seconds 20 --no-realtime --json out/nort.json
    .venv/bin/python bench/realtime.py --rates 48000 --blocks 256 --workers process --classes-from parts

Python is soft real time; figures depend on the machine's load. Target: p99 worker time under
50% of the period at 48 kHz / 256 frames.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bridge.live.jackd import PrivateJackd  # noqa: E402
from bridge.live.loopback import Loopback, open_when_ready  # noqa: E402
from bridge.model import default_model_name, list_models  # noqa: E402


def pick_model(name: str | None) -> str:
    if name:
        return name
    names = {e["name"] for e in list_models()}
    default = default_model_name()
    return default if default in names else "test-tiny"


def one_run(
    model: str,
    rate: int,
    block: int,
    seconds: float,
    queue_blocks: int,
    worker: str,
    realtime: bool = True,
    classes_from: str = "network",
) -> dict:
    from bench.soak import load_demo  # here: bench.soak imports this module
    from bridge.model import read_metadata, resolve

    stems = (*read_metadata(resolve(model)[0]).stems, "other")
    mix, events = load_demo(rate)
    with tempfile.TemporaryDirectory() as tmp, PrivateJackd(rate, block, realtime=realtime) as server:
        stats = Path(tmp) / "stats.json"
        cfg = Path(tmp) / "cfg.toml"
        cfg.write_text(f"[realtime]\nqueue_blocks = {queue_blocks}\n")
        cmd = [sys.executable, "-m", "bridge", "run", "--backend", "jack", "--model", model, "--quiet"]
        cmd += ["--duration", str(seconds), "--stats", str(stats), "--config", str(cfg), "--worker", worker]
        cmd += ["--classes-from", classes_from]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=server.env(), stderr=subprocess.PIPE, text=True)
        import os

        os.environ["JACK_DEFAULT_SERVER"] = server.name
        lb = open_when_ready(lambda: Loopback(mix, events, 0, loop=True), stems, lambda: proc.poll() is None)
        lb.start()
        try:
            _, err = proc.communicate(timeout=seconds + 180)
        finally:
            lb.close()
        if proc.returncode != 0:
            raise RuntimeError(f"run failed at {rate}/{block}: {err.strip()}")
        return json.loads(stats.read_text())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default=None, help="model (default: registry default if registered, else test-tiny)")
    ap.add_argument("--rates", type=int, nargs="+", default=[44100, 48000])
    ap.add_argument("--blocks", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    ap.add_argument("--seconds", type=float, default=10.0, help="run length per configuration (default 10)")
    ap.add_argument("--workers", nargs="+", choices=("process", "thread"), default=["process", "thread"])
    ap.add_argument("--queue-blocks", type=int, default=2, help="bridge queue in blocks (default 2)")
    ap.add_argument("--no-realtime", action="store_true", help="start jackd --no-realtime instead of -R")
    ap.add_argument(
        "--classes-from", choices=("network", "parts"), default="network", help="run --classes-from (default network)"
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    ap.add_argument("--plot", type=Path, default=None, help="write a plot of p99 / period (needs matplotlib)")
    args = ap.parse_args(argv)
    model = pick_model(args.model)
    scheduling = "--no-realtime" if args.no_realtime else "-R"
    print(
        f"model {model}, jackd {scheduling} -d dummy, {args.seconds:g} s per row, queue {args.queue_blocks} blocks, "
        "playing examples/demo/mix.flac + score.mid in a loop"
    )
    header = f"{'worker':>7} {'rate':>6} {'block':>5} {'period ms':>9} {'p50 ms':>7} {'p99 ms':>7} {'p99/period':>10} "
    header += f"{'max ms':>7} {'cb p99':>6} {'cb max':>6} {'misses':>6} {'xruns':>5} {'blocks':>6} {'latency ms':>10}"
    print(header)
    rows = []
    for rate in args.rates:
        for block in args.blocks:
            for worker in args.workers:
                s = one_run(
                    model, rate, block, args.seconds, args.queue_blocks, worker, not args.no_realtime, args.classes_from
                )
                period = 1000.0 * block / rate
                rows.append(
                    dict(s, period_ms=period, model=model, worker=worker, jackd_realtime=not args.no_realtime)
                    | {"input": "examples/demo/mix.flac + score.mid, looped"}
                )
                print(
                    f"{worker:>7} {rate:>6} {block:>5} {period:>9.2f} "
                    f"{s['worker_ms_p50']:>7.2f} {s['worker_ms_p99']:>7.2f} "
                    f"{s['worker_ms_p99'] / period:>9.0%} {s['worker_ms_max']:>7.2f} "
                    f"{s['callback_ms_p99']:>6.2f} {s['callback_ms_max']:>6.2f} {s['deadline_misses']:>6} "
                    f"{s['xruns']:>5} {s['blocks']:>6} {s['latency_ms']:>10.1f}",
                    flush=True,
                )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for rate in args.rates:
            for worker in args.workers:
                r = [x for x in rows if x["sample_rate"] == rate and x["worker"] == worker]
                p99 = [x["worker_ms_p99"] / x["period_ms"] for x in r]
                ax.plot([x["block_size"] for x in r], p99, "o-", label=f"{rate} Hz, {worker}")
        ax.axhline(0.5, color="gray", ls="--", label="target 50%")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("block size (frames)")
        ax.set_ylabel("worker p99 / period")
        ax.legend()
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=120, bbox_inches="tight")
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
