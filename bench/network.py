"""``python -m bench network [--quick] [--seconds S] [--rounds N]``: container networking.

Four parts in one run, one JSON (``bench/results/network.json``):

- what a bridge network costs a container's start (``bench._network_attach``): the worker's
  network setup per container (``attach_ms``) beside the runtime's create of it
  (``create_ms``), and a whole start on ``none`` and on ``bridge``;
- ``run --rm`` on a bridge network beside ``docker run --rm --network bridge``
  (``bench._network_docker``: a private dockerd inside a network namespace of its own);
- names and published ports on one host (``bench._network_names``): the embedded resolver's
  lookup latency from inside a container, connections per second through a published port
  beside the container directly;
- the overlay across network-namespace hosts (``bench._network_overlay``): iperf3 between
  containers on two hosts beside iperf3 between the hosts directly.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from bench import _network_attach, _network_docker, _network_names, _network_overlay
from bench._report import print_table, write_results


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench network", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs, same keys")
    parser.add_argument("--seconds", type=float, default=5.0, help="each iperf3 run")
    parser.add_argument("--rounds", type=int, default=3, help="direct/overlay iperf3 pairs")
    args = parser.parse_args(argv)
    if os.geteuid() != 0 or shutil.which("iperf3") is None:
        print("bench network needs root (namespaces, nftables) and iperf3 "
              "(deploy/setup.sh installs it)", file=sys.stderr)
        return 2
    attach = _network_attach.measure(quick=args.quick)
    print_table("network: a bridge network at container start", ["figure", "value", "beside"],
                _network_attach.summary_rows(attach))
    versus = _network_docker.measure(quick=args.quick)
    print_table("network: run --rm on a bridge, beside docker", ["command", "median", "note"],
                _network_docker.summary_rows(versus))
    figures = _network_names.measure(quick=args.quick)
    print_table("network: names and published ports", ["figure", "value", "beside"],
                _network_names.summary_rows(figures))
    seconds, rounds = (2.0, 1) if args.quick else (args.seconds, args.rounds)
    with tempfile.TemporaryDirectory(prefix="shoal-bench-network-") as tmp:
        overlay = _network_overlay.measure(Path(tmp), seconds, rounds)
    print_table("overlay throughput (iperf3, one TCP stream)",
                ["path", "Gbit/s (median)", "runs"],
                [["hosts directly (reference)", overlay["direct_gbit_s"],
                  str(overlay["direct_runs_gbit_s"])],
                 ["containers over the overlay", overlay["overlay_gbit_s"],
                  str(overlay["overlay_runs_gbit_s"])],
                 ["overlay_throughput_ratio (goal >= 0.7)",
                  overlay["overlay_throughput_ratio"], ""]])
    path = write_results("network", {**attach, **versus, **figures, **overlay},
                         quick=args.quick)
    print(f"results: {path}")
    return 0
