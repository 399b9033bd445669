"""The live status line and the stats file of a real-time run (main thread only).

Public API
----------
- ``meter_db(peak) -> str``: a peak level as a short dBFS string.
- ``status_line(host, stems, failure=None) -> str``: latency (ms and samples), input and
  per-stem meters, worker time vs the block budget, misses, xruns.
- ``write_stats(path, stats)``: the stats dict as JSON, written atomically (temp file +
  rename), so a reader never sees half a file, also on error exits.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bridge.atomic import atomic_write
from bridge.rt_host import RealtimeHost


def meter_db(peak: float) -> str:
    if peak <= 1e-5:
        return " -inf"
    return f"{20.0 * math.log10(peak):5.0f}"


def status_line(host: RealtimeHost, stems: Sequence[str]) -> str:
    """One line: latency, meters (dBFS peak since the last line), worker p99 vs budget, counters."""
    peaks = host.take_meters()
    t = host.worker_ms()[-2000:]
    p99 = float(np.percentile(t, 99)) if t.size else 0.0
    budget_ms = 1000.0 * host.block_size / host.sample_rate
    lat_ms = 1000.0 * host.latency_samples / host.sample_rate
    meters = " ".join(f"{s[:3]}{meter_db(float(p))}" for s, p in zip(stems, peaks[1:]))
    follow = host.follow_state()
    score = ""
    if follow is not None:
        pos, conf = follow
        bar_beat = host.follow_bar_beat(pos)
        where = "--" if pos is None else f"{pos:.2f} s"
        if bar_beat is not None:
            where = f"bar {bar_beat[0]} beat {bar_beat[1]:.1f} ({where})"
        score = f" | score {where} conf {conf:.2f}"
    return (
        f"lat {lat_ms:.1f} ms ({host.latency_samples} smp) | in{meter_db(float(peaks[0]))} | {meters} | "
        f"worker p99 {p99:.2f}/{budget_ms:.2f} ms | miss {host.deadline_misses} | xrun {host.xruns}{score}"
    )


def write_stats(path: Path, stats: dict[str, Any]) -> None:
    """Write ``stats`` as JSON to ``path`` atomically."""
    path = Path(path)
    with atomic_write(path, "w") as f:
        json.dump(stats, f, indent=2, sort_keys=True)
        f.write("\n")
