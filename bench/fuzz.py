"""Long fuzzing run: the properties of tests/test_fuzz_inputs.py with many more examples.

    .venv/bin/python bench/fuzz.py                     # 5000 examples per target
    .venv/bin/python bench/fuzz.py -n 20000 --targets audio metadata

Prints, per target, how many inputs were tried (every call of the property, shrinking
included), how many were accepted and how many refused with the one-line error, the time,
and the rate; the exit status is non-zero when a property failed (hypothesis prints the
smallest failing input). The figures go into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run_target(name: str, strategy: Any, check: Callable[[Any], str], n: int, seed: int) -> tuple[Counter, float, str]:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hseed

    outcomes: Counter = Counter()

    def prop(arg: Any) -> None:
        outcomes[check(arg)] += 1

    test = settings(
        max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck), print_blob=True
    )(given(strategy)(prop))
    test = hseed(seed)(test)
    t0 = time.perf_counter()
    status = "pass"
    try:
        test()
    except Exception as e:  # a failing property: hypothesis has printed the minimal example
        status = f"FAIL: {type(e).__name__}: {str(e).splitlines()[0][:100] if str(e) else ''}"
    return outcomes, time.perf_counter() - t0, status


def main(argv: list[str] | None = None) -> int:
    from tests.test_fuzz_inputs import TARGETS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--examples", type=int, default=5000, help="max examples per target (default 5000)")
    ap.add_argument("--targets", nargs="*", choices=sorted(TARGETS), default=list(TARGETS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = ap.parse_args(argv)

    rows = []
    failed = False
    for name in args.targets:
        strategy, check = TARGETS[name]
        outcomes, wall_s, status = run_target(name, strategy, check, args.examples, args.seed)
        failed |= status != "pass"
        tried = sum(outcomes.values())
        rows.append(
            (name, tried, outcomes["accepted"], outcomes["rejected"], wall_s, tried / max(wall_s, 1e-9), status)
        )
        print(f"{name}: {tried} inputs, {status}", file=sys.stderr, flush=True)

    print(f"\nfuzzing, max {args.examples} examples per target, seed {args.seed}\n")
    head = ("target", "inputs tried", "accepted", "refused", "time s", "inputs/s")
    print(f"| {head[0]:<12} | {head[1]:>12} | {head[2]:>8} | {head[3]:>8} | {head[4]:>7} | {head[5]:>8} | result")
    print(f"|{'-' * 14}|{'-' * 14}|{'-' * 10}|{'-' * 10}|{'-' * 9}|{'-' * 10}|-------")
    for name, tried, acc, rej, wall_s, rate, status in rows:
        print(f"| {name:<12} | {tried:>12} | {acc:>8} | {rej:>8} | {wall_s:>7.1f} | {rate:>8.0f} | {status}")
    if args.json:
        keys = ("target", "inputs_tried", "accepted", "refused", "time_s", "inputs_per_s", "result")
        doc = {"max_examples": args.examples, "seed": args.seed, "rows": [dict(zip(keys, r)) for r in rows]}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
