#!/usr/bin/env python3
"""Soak: a long real-time run on a private ``jackd -d dummy`` server, memory and counters.

``stembridge run --backend jack`` runs in its own process for ``--seconds`` while a test client
in this process plays the shipped example (``examples/demo/mix.flac`` resampled to the server
rate, and its score ``score.mid`` as live MIDI) into it in a loop. Every ``--every`` seconds the
resident memory (VmRSS from /proc) of the bridge process and of its inference worker process is
sampled. Growth is measured from the end of ``--warmup`` seconds to the end of the run. The
run's ``--stats`` JSON gives blocks, xruns, deadline misses and worker times.

    .venv/bin/python bench/soak.py                           # 600 s at 48 kHz / 128 frames
    .venv/bin/python bench/soak.py --seconds 60 --json out/soak.json
    .venv/bin/python bench/soak.py --parts 8 --block 256 --seconds 120   # run --parts, 8 score parts

With ``--parts N`` the bridge runs ``run --parts`` instead of the class stems: one stem per MIDI
channel of the example score (its six parts), then copies of its pitched parts on unused channels
until there are N, each copy a part of its own (issue 11: eight parts live at 48 kHz / 256).

Targets (Reliability issue): resident memory growth under 5 MB after warm-up, zero xruns.
Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.realtime import pick_model  # noqa: E402
from bridge.live.jackd import PrivateJackd  # noqa: E402
from bridge.live.loopback import Loopback, open_when_ready  # noqa: E402

DEMO = ROOT / "examples" / "demo"
TARGET_GROWTH_MB = 5.0


def rss_kb(pid: int) -> int | None:
    """Resident set size of ``pid`` in KiB (None once it has exited)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def load_demo(rate: int) -> tuple[np.ndarray, list[tuple[int, bytes]]]:
    """The example mix (2, n) at ``rate`` and its score as ``(sample, bytes)`` events."""
    import soundfile as sf
    import soxr

    from bridge.score import score_file_messages

    x, sr = sf.read(DEMO / "mix.flac", dtype="float32", always_2d=True)
    if sr != rate:
        x = soxr.resample(x, sr, rate)
    mix = np.ascontiguousarray(x.T[:2] if x.shape[1] >= 2 else np.repeat(x.T, 2, axis=0), np.float32)
    events = [
        (int(round(t * rate)), bytes(m.bytes()))
        for t, m in score_file_messages(DEMO / "score.mid")
        if not m.is_meta and t * rate < mix.shape[1]
    ]
    return mix, events


def parts_channels(events: list[tuple[int, bytes]], n_parts: int) -> tuple[list[int], list[tuple[int, bytes]]]:
    """The score's channels (0-based, those with notes) and copies of its pitched ones on unused
    channels until there are ``n_parts``: (channels sorted, events with the copies added)."""
    used = sorted({m[0] & 0x0F for _, m in events if m[0] & 0xF0 == 0x90})
    pitched = [c for c in used if c != 9]
    if n_parts < len(used):
        raise SystemExit(f"soak: --parts {n_parts}: the example score has {len(used)} parts; ask for at least that")
    free = [c for c in range(16) if c not in used and c != 9]
    if n_parts > len(used) + len(free):
        raise SystemExit(f"soak: --parts {n_parts}: at most {len(used) + len(free)} parts fit in 16 MIDI channels")
    copies = dict(zip(free[: n_parts - len(used)], [pitched[k % len(pitched)] for k in range(n_parts - len(used))]))
    extra = [
        (t, bytes((m[0] & 0xF0 | new, *m[1:])))
        for new, src in copies.items()
        for t, m in events
        if m[0] < 0xF0 and m[0] & 0x0F == src
    ]
    return sorted([*used, *copies]), sorted(events + extra, key=lambda e: e[0])


def soak(
    model: str,
    rate: int,
    block: int,
    seconds: float,
    warmup: float,
    every: float,
    worker: str,
    queue_blocks: int | None = None,
    worker_priority: int | None = None,
    n_parts: int = 0,
    kit_from: str = "network",
) -> dict:
    from bridge.model import read_metadata, resolve

    stems = (*read_metadata(resolve(model)[0]).stems, "other")
    mix, events = load_demo(rate)
    channels: list[int] = []
    if n_parts:
        channels, events = parts_channels(events, n_parts)
        stems = (*(f"ch{c + 1}" for c in channels), "residual")
    note_stems: tuple[str, ...] | None = () if channels else None  # run --parts sends notes_out only
    samples: list[tuple[float, int, int]] = []  # (t_s, bridge kB, worker kB)
    with tempfile.TemporaryDirectory() as tmp, PrivateJackd(rate, block) as server:
        stats_path = Path(tmp) / "stats.json"
        cmd = [sys.executable, "-m", "bridge", "run", "--backend", "jack", "--model", model, "--quiet"]
        cmd += ["--duration", str(seconds), "--stats", str(stats_path), "--worker", worker]
        if channels:
            cmd += ["--parts", ",".join(str(c + 1) for c in channels), "--kit-from", kit_from]
        realtime = {"queue_blocks": queue_blocks, "worker_priority": worker_priority}
        if any(v is not None for v in realtime.values()):
            config = Path(tmp) / "soak.toml"
            config.write_text("[realtime]\n" + "".join(f"{k} = {v}\n" for k, v in realtime.items() if v is not None))
            cmd += ["--config", str(config)]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=server.env(), stderr=subprocess.PIPE, text=True)
        os.environ["JACK_DEFAULT_SERVER"] = server.name
        try:
            lb = open_when_ready(
                lambda: Loopback(mix, events, 0, loop=True), stems, lambda: proc.poll() is None, note_stems=note_stems
            )
        except RuntimeError as e:
            if proc.poll() is None:  # it did not come up in time: stop it
                proc.kill()
                raise SystemExit(f"soak: {e}") from None
            _, err = proc.communicate(timeout=60)
            raise SystemExit(f"soak: the bridge exited before it was ready: {err.strip()}") from None
        lb.start()
        t0 = time.monotonic()
        tty, next_line = sys.stdout.isatty(), 0.0
        try:
            while proc.poll() is None:
                kids = children(proc.pid)
                main_kb = rss_kb(proc.pid)
                worker_kb = sum(rss_kb(c) or 0 for c in kids)
                if main_kb is not None:
                    samples.append((time.monotonic() - t0, main_kb, worker_kb))
                    t = samples[-1][0]
                    line = f"{t:6.0f} s  bridge {main_kb / 1024:7.1f} MB  worker {worker_kb / 1024:7.1f} MB"
                    if tty:
                        print("\r" + line, end="", flush=True)
                    elif t >= next_line:
                        print(line, flush=True)
                        next_line += 60.0
                time.sleep(every)
            _, err = proc.communicate(timeout=60)
        finally:
            lb.close()
            if proc.poll() is None:
                proc.kill()
        if tty:
            print()
        if proc.returncode != 0:
            raise SystemExit(f"soak: the run failed: {err.strip()}")
        stats = json.loads(stats_path.read_text())
    after = [s for s in samples if s[0] >= warmup]
    if len(after) < 2:
        raise SystemExit(f"soak: too few samples after the {warmup:g} s warm-up; run longer")
    first, last = after[0], after[-1]
    peak_main = max(s[1] for s in after)
    peak_worker = max(s[2] for s in after)
    return {
        "model": model,
        "sample_rate": rate,
        "block_size": block,
        "seconds": seconds,
        "warmup_s": warmup,
        "worker": worker,
        "parts": len(channels),
        "kit_from": kit_from if channels else None,
        "rss_mb_after_warmup": {"bridge": first[1] / 1024, "worker": first[2] / 1024},
        "rss_mb_end": {"bridge": last[1] / 1024, "worker": last[2] / 1024},
        "rss_growth_mb": {"bridge": (last[1] - first[1]) / 1024, "worker": (last[2] - first[2]) / 1024},
        "rss_peak_growth_mb": {"bridge": (peak_main - first[1]) / 1024, "worker": (peak_worker - first[2]) / 1024},
        "rss_samples": samples,
        "stats": stats,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default=None, help="model (default: registry default if registered, else test-tiny)")
    ap.add_argument("--seconds", type=float, default=600.0, help="run length (default 600)")
    ap.add_argument("--rate", type=int, default=48000)
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--warmup", type=float, default=60.0, help="seconds before memory growth is counted (60)")
    ap.add_argument("--every", type=float, default=2.0, help="memory sampling interval in seconds (2)")
    ap.add_argument("--worker", choices=("process", "thread"), default="process")
    ap.add_argument(
        "--queue-blocks", type=int, default=None, help="[realtime] queue_blocks for the run (default: the bridge's)"
    )
    ap.add_argument(
        "--worker-priority",
        type=int,
        default=None,
        help="[realtime] worker_priority for the run: SCHED_FIFO priority, 0 none (default: the bridge's)",
    )
    ap.add_argument(
        "--parts", type=int, default=0, help="run --parts with N score parts instead of the class stems (default 0)"
    )
    ap.add_argument(
        "--kit-from",
        choices=("network", "score"),
        default="network",
        help="with --parts: the drum part from the network's drums (default) or from the score alone",
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the result as JSON")
    args = ap.parse_args(argv)
    if not Path("/proc/self/status").exists():
        raise SystemExit("soak: needs Linux /proc to read resident memory")
    model = pick_model(args.model)
    print(
        f"soak: model {model}, jackd -d dummy {args.rate} Hz / {args.block} frames, {args.seconds:g} s, "
        f"{args.worker} worker, {f'{args.parts} score parts, ' if args.parts else ''}{platform.node()} "
        f"({os.cpu_count()} CPUs)"
    )
    r = soak(
        model,
        args.rate,
        args.block,
        args.seconds,
        args.warmup,
        args.every,
        args.worker,
        args.queue_blocks,
        args.worker_priority,
        args.parts,
        args.kit_from,
    )
    s = r["stats"]
    g = r["rss_growth_mb"]
    print(
        f"blocks {s['blocks']}  xruns {s['xruns']}  deadline misses {s['deadline_misses']}  "
        f"worker p50 {s['worker_ms_p50']:.2f} ms  p99 {s['worker_ms_p99']:.2f} ms  (period {s['budget_ms']:.2f} ms)  "
        f"queue {s.get('queue_blocks')} blocks, latency {s.get('latency_ms', float('nan')):.1f} ms, "
        f"worker real-time priority {s.get('worker_rt_priority', 0)}"
    )
    print(
        f"resident memory after {args.warmup:g} s warm-up: bridge {r['rss_mb_after_warmup']['bridge']:.1f} MB, "
        f"worker {r['rss_mb_after_warmup']['worker']:.1f} MB; growth to the end: bridge {g['bridge']:+.2f} MB, "
        f"worker {g['worker']:+.2f} MB (peak {r['rss_peak_growth_mb']['bridge']:+.2f} / "
        f"{r['rss_peak_growth_mb']['worker']:+.2f} MB)"
    )
    ok_mem = max(g["bridge"], g["worker"]) < TARGET_GROWTH_MB
    print(
        f"target: growth < {TARGET_GROWTH_MB:g} MB: {'PASS' if ok_mem else 'MISS'}; zero xruns: "
        f"{'PASS' if s['xruns'] == 0 else 'MISS'}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(r, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
