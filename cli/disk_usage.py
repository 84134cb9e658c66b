"""``shoal history`` (an image's steps, newest first, with the size of the layer each made) and
``shoal system df`` (what images, containers, volumes and the build cache take on disk, and
how much of it nothing uses), printed as docker prints them."""

from __future__ import annotations

import time

import click

from cli.client import ShoalCommand, connect, host_option
from cli.output import ago, as_json, table
from protocol.messages import DiskUsage, GetDiskUsage, ImageHistory, ImageHistoryList

# Registers the image store's error codes, so refusals show as ImageNotFound...
from worker.images import errors as _image_errors  # noqa: F401

CREATED_BY_WIDTH = 45


def _size(size: int) -> str:
    from cli.images import human_size

    return human_size(size)


@click.command(cls=ShoalCommand)
@host_option
@click.option("-q", "--quiet", is_flag=True, help="Only the ids of the steps' images.")
@click.option("--no-trunc", is_flag=True, help="Show the whole of each step.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.argument("image")
def history(host: str | None, quiet: bool, no_trunc: bool, fmt: str, image: str) -> None:
    """Show an image's history: its steps, newest first."""
    with connect(host) as client:
        entries = client.ask(lambda r: ImageHistory(ref=image, reply=r),
                             ImageHistoryList).entries
    if fmt == "json":
        as_json(entries)
        return
    now = time.time()

    def shown_id(entry_id: str) -> str:
        if not entry_id:
            return "<missing>"
        return entry_id if no_trunc else entry_id.removeprefix("sha256:")[:12]

    if quiet:
        for entry in entries:
            click.echo(shown_id(entry.image_id))
        return
    rows = []
    for entry in entries:
        created_by = " ".join(entry.created_by.split()) if not no_trunc else entry.created_by
        if not no_trunc and len(created_by) > CREATED_BY_WIDTH:
            created_by = created_by[:CREATED_BY_WIDTH - 1] + "…"
        rows.append([shown_id(entry.image_id), ago(entry.created, now) or "N/A", created_by,
                     _size(entry.size), entry.comment])
    table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], rows)


def summary_rows(usage: DiskUsage) -> list[list[str]]:
    """docker's ``system df`` table: per kind, the total, the active, the size and what
    could be reclaimed (what nothing uses)."""
    def reclaimable(free: int, total: int) -> str:
        share = f" ({free * 100 // total}%)" if total else ""
        return f"{_size(free)}{share}"

    images_size = usage.layers_size
    unused_images = sum(i.size - i.shared for i in usage.images if not i.containers)
    containers_size = sum(c.size_rw for c in usage.containers)
    idle = sum(c.size_rw for c in usage.containers if c.status != "running")
    volumes_size = sum(v.size for v in usage.volumes)
    unused_volumes = sum(v.size for v in usage.volumes if not v.containers)
    cache_size = sum(b.size for b in usage.build_cache)
    return [
        ["Images", str(len(usage.images)), str(sum(1 for i in usage.images if i.containers)),
         _size(images_size), reclaimable(min(unused_images, images_size), images_size)],
        ["Containers", str(len(usage.containers)),
         str(sum(1 for c in usage.containers if c.status == "running")),
         _size(containers_size), reclaimable(idle, containers_size)],
        ["Local Volumes", str(len(usage.volumes)),
         str(sum(1 for v in usage.volumes if v.containers)), _size(volumes_size),
         reclaimable(unused_volumes, volumes_size)],
        ["Build Cache", str(len(usage.build_cache)), "0", _size(cache_size),
         _size(cache_size)],
    ]


@click.command(cls=ShoalCommand)
@host_option
@click.option("-v", "--verbose", is_flag=True, help="Every image, container and volume.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def df(host: str | None, verbose: bool, fmt: str) -> None:
    """Show what images, containers, volumes and the build cache take on disk."""
    with connect(host) as client:
        usage = client.ask(lambda r: GetDiskUsage(reply=r), DiskUsage)
    if fmt == "json":
        as_json(usage)
        return
    table(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], summary_rows(usage))
    if not verbose:
        return
    now = time.time()
    click.echo("\nImages space usage:\n")
    table(["IMAGE ID", "TAGS", "CREATED", "SIZE", "SHARED SIZE", "CONTAINERS"],
          [[i.id.removeprefix("sha256:")[:12], ",".join(i.tags) or "<none>",
            ago(i.created, now), _size(i.size), _size(i.shared), str(i.containers)]
           for i in usage.images])
    click.echo("\nContainers space usage:\n")
    table(["CONTAINER ID", "NAME", "IMAGE", "STATUS", "SIZE", "NODE"],
          [[c.id[:12], c.name, c.image, c.status, _size(c.size_rw), c.node_id]
           for c in usage.containers])
    click.echo("\nLocal Volumes space usage:\n")
    table(["VOLUME NAME", "LINKS", "SIZE", "NODE"],
          [[v.name, str(v.containers), _size(v.size), v.node_id] for v in usage.volumes])


@click.group()
def system() -> None:
    """System-wide views: df."""


system.add_command(df)
