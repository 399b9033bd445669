#!/usr/bin/env python3
"""Check that every results file BENCHMARKS.md (and README.md) names exists in ``bench/results/``.

A figure in the text is backed by a kept raw output; this fails (exit 1, one line per missing
file) when the text names a ``bench/results/...`` file that is not there. A name with ``*`` must
match at least one file. Run by ``make test``.

    .venv/bin/python bench/check_results.py                  # BENCHMARKS.md and README.md
    .venv/bin/python bench/check_results.py OTHER.md
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = "bench/results/"
_NAME = re.compile(r"bench/results/[A-Za-z0-9_.*\-/{}]+")


def named_results(text: str) -> list[str]:
    """``bench/results/...`` paths named in ``text``, in order, without repeats or trailing dots."""
    seen: dict[str, None] = {}
    for m in _NAME.finditer(text):
        name = m.group(0).rstrip(".,;:)")
        if name.rstrip("/") + "/" == RESULTS:
            continue  # the folder itself
        seen[name] = None
    return list(seen)


def missing(names: list[str], root: Path = ROOT) -> list[str]:
    out = []
    for name in names:
        if "*" in name:
            if not any(p.is_file() for p in root.glob(name)):
                out.append(name)
        elif not (root / name).is_file():
            out.append(name)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path, default=[ROOT / "BENCHMARKS.md", ROOT / "README.md"])
    ap.add_argument("--root", type=Path, default=ROOT, help="where bench/results/ is (default: the repository)")
    args = ap.parse_args(argv)
    bad = 0
    n_named = 0
    for doc in args.files:
        names = named_results(doc.read_text(encoding="utf-8"))
        n_named += len(names)
        for name in missing(names, args.root):
            print(f"{doc.name}: names {name}, which does not exist", file=sys.stderr)
            bad += 1
    if bad:
        return 1
    print(f"check_results: {n_named} results files named, all present")
    return 0


if __name__ == "__main__":
    sys.exit(main())
