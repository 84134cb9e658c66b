"""``python -m bench network``: container networking on one host. The names-and-ports half
(``bench._network_names``): the embedded resolver's lookup latency from inside a container and
connections per second through a published port beside the container directly."""

from __future__ import annotations

import argparse
import os
import sys

from bench import _network_names
from bench._report import print_table, write_results


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench network", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs, same keys")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench network needs root (namespaces, nftables)", file=sys.stderr)
        return 2
    figures = _network_names.measure(quick=args.quick)
    print_table("network: names and published ports", ["figure", "value", "beside"],
                _network_names.summary_rows(figures))
    path = write_results("network", figures, quick=args.quick)
    print(f"results: {path}")
    return 0
