"""The live status line and the stats file of a real-time run (main thread only).

Public API
----------
- ``meter_db(peak) -> str``: a peak level as a short dBFS string.
- ``status_line(host, stems, failure=None) -> str``: latency (ms and samples), input and
  per-stem meters, worker time vs the block budget, misses, xruns.
- ``FollowWatch()``: ``update(host, dt_s) -> str | None``, one line when a followed score stops
  matching the audio (its confidence, averaged over ``FOLLOW_WATCH_S`` after a first
  ``FOLLOW_WATCH_S`` of listening, under ``FOLLOW_LOST``) and one when it matches again (over
  ``FOLLOW_FOUND``); ``None`` otherwise, and past the score's last note.
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
from bridge.live.host import RealtimeHost


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


FOLLOW_WATCH_S = 5.0
FOLLOW_LOST = 0.3  # bench/align.py's renders: own score median 0.58-0.68, another piece's 0.19-0.27
FOLLOW_FOUND = 0.45


class FollowWatch:
    """Says when the followed score stops (and starts again) matching the live audio."""

    def __init__(self) -> None:
        self.lost = False
        self._avg = FOLLOW_FOUND  # a run starts as matching: a mismatch has to last to be told
        self._heard_s = 0.0

    def update(self, host: RealtimeHost, dt_s: float) -> str | None:
        follow = host.follow_state()
        if follow is None or follow[0] is None:
            return None
        pos, conf = follow
        self._heard_s += dt_s
        if self._heard_s < FOLLOW_WATCH_S:  # the follower's confidence is still building up
            return None
        end_s = getattr(host.processor, "end_s", None)
        if end_s is not None and pos >= end_s:  # the score is over: whatever comes next is not in it
            return None
        self._avg += min(1.0, dt_s / FOLLOW_WATCH_S) * (conf - self._avg)
        bar_beat = host.follow_bar_beat(pos)
        where = f"bar {bar_beat[0]}" if bar_beat is not None else f"{pos:.1f} s"
        if not self.lost and self._avg < FOLLOW_LOST:
            self.lost = True
            return (
                f"stembridge: warning: the audio does not match the followed score near {where} "
                f"(confidence {self._avg:.2f}); its parts are unreliable until it does"
            )
        if self.lost and self._avg > FOLLOW_FOUND:
            self.lost = False
            return f"stembridge: following the score again at {where} (confidence {self._avg:.2f})"
        return None


def write_stats(path: Path, stats: dict[str, Any]) -> None:
    """Write ``stats`` as JSON to ``path`` atomically."""
    path = Path(path)
    with atomic_write(path, "w") as f:
        json.dump(stats, f, indent=2, sort_keys=True)
        f.write("\n")
