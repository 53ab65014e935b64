"""Run the benchmarks: `.venv/bin/python -m bench [--quick] [--only NAME,...] [--keep]`.

Each prints its figures next to their baselines, the ratio, and PASS or MISS against the goal.
Data goes to a temporary folder (about 2.5 GB of real bytes at the peak, plus sparse files)
that is removed at the end. Timing goals live here, never in the test suite.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Figure, say

BENCHES = ("startup", "hashing", "header", "scale", "upload", "signed", "apply", "fleet")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller data, fewer runs")
    parser.add_argument("--only", default=",".join(BENCHES), help="comma-separated subset")
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    parser.add_argument("--tmp", type=Path, default=None, help="where to put the data")
    parser.add_argument("--strict", action="store_true", help="exit 1 if any goal is missed")
    args = parser.parse_args()
    chosen = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = sorted(set(chosen) - set(BENCHES))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {BENCHES}")

    tmp = Path(tempfile.mkdtemp(prefix="reconciler-bench-", dir=args.tmp))
    say(f"reconciler benchmarks{' (quick)' if args.quick else ''}: data in {tmp}")
    say(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    figures: list[Figure] = []
    started = time.perf_counter()
    try:
        for name in chosen:
            say(f"\n== {name}")
            module = importlib.import_module(f"bench.{name}_bench")
            here = tmp / name
            here.mkdir()
            try:
                got = module.run(here, args.quick)
            finally:
                if not args.keep:
                    shutil.rmtree(here, ignore_errors=True)  # the disk back before the next
            for figure in got:
                say(figure.line())
            figures.extend(got)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    say(f"\n== summary ({time.perf_counter() - started:.0f}s)")
    for figure in figures:
        say(figure.line())
    missed = [f for f in figures if not f.passed]
    say(f"{len(figures) - len(missed)} of {len(figures)} goals met")
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
