"""``python -m bench build [--quick]``: ``shoal build`` beside ``docker build`` (see
``bench/_build_bench.py``). Root only (the native runtime and dockerd)."""

from __future__ import annotations

import argparse
import os
import sys

from bench._report import print_table, write_results


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench build", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs, same keys")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench build needs root (the native runtime and dockerd)", file=sys.stderr)
        return 2
    from bench._build_bench import run

    figures = run(3 if args.quick else 9)
    rows = [[key, value] for key, value in figures.items() if key != "goals_met"]
    print_table("shoal build vs docker build (classic builder), medians", ["figure", "value"],
                rows)
    print_table("goals", ["goal", "met"], [[k, v] for k, v in
                                            dict(figures["goals_met"]).items()])  # type: ignore[call-overload]
    path = write_results("build", figures, quick=args.quick)
    print(f"wrote {path}")
    return 0
