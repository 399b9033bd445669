"""``bench/check_results.py``: a results file named in the text must exist (run by ``make test``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECK = ROOT / "bench" / "check_results.py"


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(CHECK), *map(str, args)], capture_output=True, text=True, timeout=60)


def test_a_named_results_file_that_does_not_exist_fails(tmp_path: Path) -> None:
    (tmp_path / "bench" / "results").mkdir(parents=True)
    (tmp_path / "bench" / "results" / "speed.json").write_text("{}")
    (tmp_path / "bench" / "results" / "sel_a.json").write_text("{}")
    doc = tmp_path / "B.md"
    doc.write_text("Kept in `bench/results/`: `bench/results/speed.json`, bench/results/sel_*.json.\n")
    ok = run(doc, "--root", tmp_path)
    assert ok.returncode == 0, ok.stderr
    doc.write_text(doc.read_text() + "See (bench/results/gone.json) and bench/results/none_*.json.\n")
    bad = run(doc, "--root", tmp_path)
    assert bad.returncode == 1
    assert bad.stderr.splitlines() == [
        "B.md: names bench/results/gone.json, which does not exist",
        "B.md: names bench/results/none_*.json, which does not exist",
    ]


def test_the_shipped_texts_name_only_kept_results() -> None:
    res = run()
    assert res.returncode == 0, res.stderr
