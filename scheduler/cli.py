"""The ``shoal`` command line."""

from __future__ import annotations

import click

from protocol.version import PROTOCOL_VERSION, package_version


@click.group()
def main() -> None:
    """shoal: a message-driven distributed container scheduler."""


@main.command()
def version() -> None:
    """Print the package and protocol versions."""
    click.echo(f"shoal {package_version()} (protocol {PROTOCOL_VERSION})")
