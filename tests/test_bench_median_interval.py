"""``bench/median_interval.py``: bootstrap intervals of a quality run's medians."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from median_interval import STEMS, intervals, medians, track_scores  # noqa: E402


def doc_of(values: np.ndarray) -> dict:
    """A quality.py-shaped result: track i's stem s scores values[i, s] (NaN: stem not scored)."""
    per = []
    for i, row in enumerate(values):
        sep = {s: {"si_sdri": None if np.isnan(v) else float(v)} for s, v in zip(STEMS, row)}
        per.append({"track": f"Track{i:05d}", "model blind": {"sep": sep}})
    return {"per_track": per}


def test_medians_match_numpy_and_the_interval_holds_them() -> None:
    rng = np.random.default_rng(3)
    vals = rng.normal(4.0, 3.0, (40, len(STEMS)))
    vals[::5, 4] = np.nan  # strings missing on some tracks
    tracks = track_scores(doc_of(vals), "model blind")
    m = medians(tracks)
    assert m["overall"] == np.median(vals[~np.isnan(vals)])
    assert m["strings"] == np.median(vals[~np.isnan(vals[:, 4]), 4])
    wide = intervals(tracks, 400, 0.9)
    for name, (value, lo, hi) in wide.items():
        assert lo <= value <= hi, name
    narrow = intervals(track_scores(doc_of(0.1 * vals), "model blind"), 400, 0.9)
    assert narrow["bass"][2] - narrow["bass"][1] < wide["bass"][2] - wide["bass"][1]


def test_command_prints_intervals_and_refuses_other_files(tmp_path: Path) -> None:
    good = tmp_path / "q.json"
    good.write_text(json.dumps(doc_of(np.arange(30.0).reshape(6, 5))))
    run = [sys.executable, str(ROOT / "bench" / "median_interval.py")]
    out = subprocess.run([*run, str(good), "--draws", "50"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "6 tracks" in out.stdout and "strings" in out.stdout
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    out = subprocess.run([*run, str(bad)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "not a bench/quality.py result" in out.stderr
