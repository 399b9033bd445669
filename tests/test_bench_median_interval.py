"""``bench/median_interval.py``: bootstrap intervals of a quality run's medians."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from median_interval import STEMS, intervals, medians, stems_of, track_scores  # noqa: E402

NAMES = (*STEMS, "other")


def doc_of(values: np.ndarray) -> dict:
    """A quality.py-shaped result: track i's stem s of ``NAMES`` scores values[i, s] (NaN: not scored)."""
    per = []
    for i, row in enumerate(values):
        sep = {s: {"si_sdri": float(v)} for s, v in zip(NAMES, row) if not np.isnan(v)}
        per.append({"track": f"Track{i:05d}", "model blind": {"sep": sep}})
    return {"per_track": per, "summary": {"model blind": {"stems": {s: {} for s in NAMES}}}}


def test_medians_leave_other_out_as_quality_does_and_the_intervals_hold_them() -> None:
    rng = np.random.default_rng(3)
    vals = rng.normal(4.0, 3.0, (40, len(NAMES)))
    vals[:, -1] = -50.0  # `other`: would pull the overall median down if it entered it
    vals[::5, 4] = np.nan  # strings not scored on some tracks
    doc = doc_of(vals)
    stems = stems_of(doc, "model blind")
    assert stems == STEMS
    tracks = track_scores(doc, "model blind", stems)
    m = medians(tracks, stems)
    five = vals[:, :5]
    assert m["overall"] == np.median(five[~np.isnan(five)])
    assert m["strings"] == np.median(vals[~np.isnan(vals[:, 4]), 4])
    wide, half = intervals(tracks, 400, 0.9, stems), intervals(tracks, 400, 0.5, stems)
    for name, (value, lo, hi) in wide.items():
        assert lo <= half[name][1] <= value <= half[name][2] <= hi, name
    narrow = intervals(track_scores(doc_of(0.1 * vals), "model blind", stems), 400, 0.9, stems)
    assert narrow["bass"][2] - narrow["bass"][1] < wide["bass"][2] - wide["bass"][1]


def test_command_prints_intervals_and_refuses_other_files(tmp_path: Path) -> None:
    good = tmp_path / "q.json"
    good.write_text(json.dumps(doc_of(np.arange(36.0).reshape(6, 6))))
    run = [sys.executable, str(ROOT / "bench" / "median_interval.py")]
    out = subprocess.run([*run, str(good), "--draws", "50"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "6 tracks" in out.stdout and "strings" in out.stdout and "other" not in out.stdout
    cases = {"list.json": "[1, 2]", "tracks.json": '{"per_track": [1, 2]}', "none.json": '{"summary": {}}'}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
    for path, extra in [(tmp_path / n, []) for n in cases] + [(tmp_path / "gone.json", []), (good, ["--row", "x"])]:
        out = subprocess.run([*run, str(path), *extra], capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, (path, out.stderr)
        assert out.stderr.startswith("median_interval: error:"), out.stderr


def test_against_gives_paired_changes_of_the_same_tracks_only(tmp_path: Path) -> None:
    vals = np.arange(36.0).reshape(6, 6)
    up = vals.copy()
    up[:, 4] += 1.0  # strings up by 1 dB on every track
    up[0, 1] -= 2.0  # bass down on one
    a, b, short = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "short.json"
    a.write_text(json.dumps(doc_of(vals)))
    b.write_text(json.dumps(doc_of(up)))
    short.write_text(json.dumps(doc_of(vals[:5])))
    run = [sys.executable, str(ROOT / "bench" / "median_interval.py")]
    out = subprocess.run(
        [*run, str(b), "--against", str(a), "--draws", "20"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    last = out.stdout.strip().splitlines()[-1]
    assert "strings +1.00 (6+ 0-)" in last and "bass -0.33 (0+ 1-)" in last and "other +0.00 (0+ 0-)" in last
    out = subprocess.run([*run, str(b), "--against", str(short)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "not the same tracks" in out.stderr
