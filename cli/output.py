"""How the CLI prints: docker-like column tables, JSON with ``--format json``, and archives
written to a file (only whole) or to stdout."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import click
import msgspec


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest cell, three spaces apart, as docker prints them."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    for line in (headers, *rows):
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=True)]
        click.echo("   ".join(cells).rstrip())


def as_json(value: Any) -> None:
    import json  # only for --format json and inspect

    click.echo(json.dumps(msgspec.to_builtins(value), indent=2, sort_keys=True))


def ago(timestamp: float, now: float | None = None) -> str:
    """"3 seconds ago", "5 minutes ago", as docker says it."""
    if not timestamp:
        return ""
    seconds = max(0, int((now or time.time()) - timestamp))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "Less than a second ago" if seconds < 1 else f"{seconds} seconds ago"


def status_text(status: str, exit_code: int | None, started_at: float, finished_at: float,
                now: float | None = None, health: str = "") -> str:
    """docker ps's STATUS column; a running container's ``health`` (starting, healthy,
    unhealthy) in brackets after it, as docker shows it."""
    if status == "paused":
        return "Up " + ago(started_at, now).removesuffix(" ago") + " (Paused)"
    if status == "running":
        up = "Up " + ago(started_at, now).removesuffix(" ago")
        if health:
            return f"{up} ({'health: starting' if health == 'starting' else health})"
        return up
    if status == "restarting":
        return f"Restarting ({exit_code if exit_code is not None else 0}) " + \
            ago(finished_at, now)
    if status == "exited":
        return f"Exited ({exit_code if exit_code is not None else 0}) " + ago(finished_at, now)
    return status.capitalize()


@contextlib.contextmanager
def archive_output(output: Path | None, verb: str) -> Iterator[BinaryIO]:
    """Where a command's archive goes: the file ``output``, which appears only whole (written
    beside it as a hidden part, renamed at the end, removed on failure), or stdout, never a
    terminal (``verb`` says what was refused there)."""
    if output is None:
        if sys.stdout.isatty():
            raise click.UsageError(f"cowardly refusing to {verb} to a terminal: use -o or "
                                   "redirect")
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    part = output.with_name(f".{output.name}.part")
    out = part.open("wb")
    try:
        yield out
        out.close()
        part.replace(output)
    finally:
        out.close()
        part.unlink(missing_ok=True)
