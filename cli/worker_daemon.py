"""``shoal worker``: run a worker, standalone or joined to schedulers with ``--join``.

A joined worker tells the schedulers where it serves its verbs: the ``--listen`` address, or
``--advertise`` (needed with a wildcard ``--listen``, which nobody can reach by that name).
With ``--ready-fd N`` it writes ``READY=1`` and ``LISTEN=ADDR`` to that descriptor once joined
(or, alone, serving), then closes it.
"""

from __future__ import annotations

from pathlib import Path

import click
import uvloop

from cli.arguments import advertise_option, key_values, parse_memory, require_advertise
from cli.readiness import ReadyNotifier, notifier_option
from protocol.addresses import DEFAULT_WORKER
from protocol.errors import ShoalError
from worker.daemon import default_state_dir, run_worker


@click.command("worker")
@click.option("--listen", default=DEFAULT_WORKER, show_default=True,
              help="Address to serve the container verbs on.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where containers, logs and state live (default: /var/lib/shoal/worker "
                   "as root).")
@click.option("--driver", type=click.Choice(["auto", "native", "process"]), default="auto",
              show_default=True, help="How containers run.")
@click.option("--join", default="", help="Schedulers to join (tcp://A:P[,tcp://B:P]); "
              "without it the worker stands alone.")
@advertise_option("With --join: where the schedulers and other hosts reach this worker: "
                  "tcp://HOST:PORT, tcp://HOST or HOST (the listener's port); needed with a "
                  "wildcard --listen (default: the listen address).")
@click.option("--name", default="", help="Node id in the cluster (default: host name).")
@click.option("--label", "labels", multiple=True, help="Node label KEY=VALUE (repeatable).")
@click.option("--log-max-size", default="0", show_default=True,
              help="Rotate a container's json-file log at this size (e.g. 10m; 0: never).")
@click.option("--log-max-file", type=click.IntRange(1, 100), default=1, show_default=True,
              help="How many log files to keep per container when rotating.")
@click.option("--ready-fd", "ready", type=click.IntRange(min=0), default=None, metavar="N",
              callback=notifier_option,
              help="Once joined (or, without --join, serving), write READY=1 and "
                   "LISTEN=ADDR to this inherited descriptor, then close it.")
def worker_command(listen: str, state_dir: Path | None, driver: str, join: str,
                   advertise: str, name: str, labels: tuple[str, ...], log_max_size: str,
                   log_max_file: int, ready: ReadyNotifier | None) -> None:
    """Run a worker: standalone, or part of a cluster with --join."""
    label_map = key_values(labels, "label", "--label")
    schedulers = [a.strip() for a in join.split(",") if a.strip()]
    if schedulers:
        require_advertise(listen, advertise, "worker")
    elif advertise:
        raise click.UsageError("--advertise is the address a worker tells the schedulers it "
                               "joins: give --join too")
    try:
        uvloop.run(run_worker(listen, state_dir or default_state_dir(), driver,
                              join=schedulers, name=name, advertise=advertise,
                              labels=label_map,
                              log_max_size=parse_memory(log_max_size),
                              log_max_file=log_max_file,
                              on_ready=(lambda address: ready.notify(LISTEN=address))
                              if ready else None))
    except ShoalError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc
