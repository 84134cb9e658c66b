"""The ``shoal`` command line."""

from __future__ import annotations

from pathlib import Path

import click
import uvloop

from protocol.errors import ShoalError
from protocol.version import PROTOCOL_VERSION, package_version
from scheduler.cli_cluster import CLUSTER_COMMANDS
from scheduler.cli_containers import COMMANDS, DEFAULT_HOST, parse_memory
from scheduler.cli_images import IMAGE_COMMANDS
from scheduler.cli_scheduler import scheduler_command
from scheduler.logs import configure_logging
from worker.daemon import DEFAULT_LISTEN
from worker.runtime.cli import runtime


@click.group()
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default=None, help="Log level (default: $SHOAL_LOG or info).")
def main(log_level: str | None) -> None:
    """shoal: a message-driven distributed container scheduler."""
    configure_logging(log_level)


@main.command()
@click.option("--blob-mib", type=click.IntRange(1, 4096), default=64, show_default=True,
              help="Size of the byte stream sent across two hops.")
def demo(blob_mib: int) -> None:
    """Run the foundation end to end: private etcd, a worker, a scheduler hop, a client."""
    from rich.console import Console

    from scheduler.demo import run_demo

    try:
        uvloop.run(run_demo(Console(), blob_mib))
    except ShoalError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc


@main.command()
@click.option("--workers", type=click.IntRange(1, 16), default=3, show_default=True)
@click.option("--listen", default=DEFAULT_HOST, show_default=True,
              help="The scheduler's address (the CLI's default host).")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep state and logs here (default: a temporary dir, removed at the end).")
@click.option("--example", is_flag=True,
              help="Run an example job, show ps and nodes, then stop everything.")
def dev(workers: int, listen: str, state_dir: Path | None, example: bool) -> None:
    """A one-host cluster: a private etcd, a scheduler and N workers, as real processes."""
    from rich.console import Console

    from scheduler.dev import run_dev

    try:
        uvloop.run(run_dev(Console(), workers=workers, address=listen, state_dir=state_dir,
                           run_example=example))
    except ShoalError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc


main.add_command(runtime)
main.add_command(scheduler_command, "scheduler")
for _command in [*COMMANDS, *IMAGE_COMMANDS, *CLUSTER_COMMANDS]:
    main.add_command(_command)


@main.command()
@click.option("--listen", default=DEFAULT_LISTEN, show_default=True,
              help="Address to serve the container verbs on.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where containers, logs and state live (default: /var/lib/shoal/worker "
                   "as root).")
@click.option("--driver", type=click.Choice(["auto", "native", "process"]), default="auto",
              show_default=True, help="How containers run.")
@click.option("--join", default="", help="Schedulers to join (tcp://A:P[,tcp://B:P]); "
              "without it the worker stands alone.")
@click.option("--name", default="", help="Node id in the cluster (default: host name).")
@click.option("--label", "labels", multiple=True, help="Node label KEY=VALUE (repeatable).")
@click.option("--log-max-size", default="0", show_default=True,
              help="Rotate a container's json-file log at this size (e.g. 10m; 0: never).")
@click.option("--log-max-file", type=click.IntRange(1, 100), default=1, show_default=True,
              help="How many log files to keep per container when rotating.")
def worker(listen: str, state_dir: Path | None, driver: str, join: str, name: str,
           labels: tuple[str, ...], log_max_size: str, log_max_file: int) -> None:
    """Run a worker: standalone, or part of a cluster with --join."""
    from worker.daemon import default_state_dir, run_worker

    for item in labels:
        if "=" not in item:
            raise click.BadParameter(f"label {item!r} is not KEY=VALUE", param_hint="--label")
    schedulers = [a.strip() for a in join.split(",") if a.strip()]
    try:
        uvloop.run(run_worker(listen, state_dir or default_state_dir(), driver,
                              join=schedulers, name=name,
                              labels=dict(item.split("=", 1) for item in labels),
                              log_max_size=parse_memory(log_max_size),
                              log_max_file=log_max_file))
    except ShoalError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc


@main.command()
def version() -> None:
    """Print the package and protocol versions."""
    click.echo(f"shoal {package_version()} (protocol {PROTOCOL_VERSION})")


if __name__ == "__main__":
    main()
