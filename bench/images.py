"""Images: ``python -m bench images [--quick]``.

Registry transfers (``bench/_registry_transfer.py``): ``pull_mb_per_s`` and ``push_mb_per_s``
of shoal's registry client beside ``skopeo copy`` of the same image against the same local
registry, in one run (``pull_vs_skopeo``, ``push_vs_skopeo``; goals ≥ 1.0). Writes
bench/results/images.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
from pathlib import Path

from bench._registry_server import available
from bench._registry_transfer import measure
from bench._report import print_table, write_results


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench images")
    parser.add_argument("--quick", action="store_true", help="one round of a smaller image")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--layer-mb", type=int, default=None,
                        help="MiB of random data per layer (default 32; --quick: 8)")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    missing = available()
    if missing is not None or shutil.which("skopeo") is None:
        print(f"bench images needs {missing or 'skopeo'}", file=sys.stderr)
        return 1
    layer_mb = args.layer_mb or (8 if args.quick else 32)
    rounds = 1 if args.quick else 3
    with tempfile.TemporaryDirectory(prefix="shoal-bench-images-") as tmp:
        figures = measure(Path(tmp), rounds=rounds, layers=args.layers, layer_mb=layer_mb)
    pull_ratio = figures.pull_mb_per_s / figures.skopeo_pull_mb_per_s
    push_ratio = figures.push_mb_per_s / figures.skopeo_push_mb_per_s
    print_table(f"registry transfers: one image of {figures.image_mb} MB "
                f"({args.layers} gzipped layers of random data), median of {rounds}",
                ["transfer", "shoal MB/s", "skopeo MB/s", "shoal / skopeo", "goal",
                 "shoal CPU s", "skopeo CPU s"],
                [["pull", figures.pull_mb_per_s, figures.skopeo_pull_mb_per_s, pull_ratio,
                  "≥ 1.0", figures.pull_cpu_s, figures.skopeo_pull_cpu_s],
                 ["push", figures.push_mb_per_s, figures.skopeo_push_mb_per_s, push_ratio,
                  "≥ 1.0", figures.push_cpu_s, figures.skopeo_push_cpu_s]])
    path = write_results("images", {
        **dataclasses.asdict(figures), "rounds": rounds, "layers": args.layers,
        "layer_mib": layer_mb,
        "pull_vs_skopeo": round(pull_ratio, 3), "push_vs_skopeo": round(push_ratio, 3),
        "goals": {"pull_vs_skopeo": ">= 1.0", "push_vs_skopeo": ">= 1.0"},
        "goals_met": {"pull_vs_skopeo": pull_ratio >= 1.0, "push_vs_skopeo": push_ratio >= 1.0},
        "load_average_at_start": round(load, 2),
        "reference": "skopeo copy (containers/image) of the same image, same registry, same run",
    }, quick=args.quick)
    print(f"wrote {path}")
    return 0
