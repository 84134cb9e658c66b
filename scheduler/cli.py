"""The ``shoal`` command line."""

from __future__ import annotations

import click
import uvloop

from protocol.errors import ShoalError
from protocol.version import PROTOCOL_VERSION, package_version
from scheduler.logs import configure_logging
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


main.add_command(runtime)


@main.command()
def version() -> None:
    """Print the package and protocol versions."""
    click.echo(f"shoal {package_version()} (protocol {PROTOCOL_VERSION})")
