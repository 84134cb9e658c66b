"""Store hygiene and archives in the CLI: ``image prune [-a]``, ``save`` (``image save``) and
``load`` (``image load``, the same stream as ``image import``)."""

from __future__ import annotations

from pathlib import Path

import click

from cli.client import ShoalCommand, connect, host_option
from cli.output import archive_output
from protocol.messages import ImageChunk, ImagesPruned, PruneImages, SaveImages

# Registers the image store's error codes, so refusals show as ImageNotFound...
from worker.images import errors as _image_errors  # noqa: F401


@click.command(cls=ShoalCommand)
@host_option
@click.option("-a", "--all", "all_images", is_flag=True,
              help="Remove every image no container uses, not just untagged ones.")
@click.option("-f", "--force", is_flag=True, help="Do not ask (shoal never asks; docker's flag).")
def prune(host: str | None, all_images: bool, force: bool) -> None:
    """Remove unused images and the build cache; collect unreferenced blobs."""
    del force  # accepted for docker's scripts: there is no prompt to skip
    with connect(host) as client:
        pruned = client.ask(lambda r: PruneImages(all=all_images, reply=r), ImagesPruned)
    if pruned.untagged or pruned.deleted:
        click.echo("Deleted Images:")
        for tag in pruned.untagged:
            click.echo(f"untagged: {tag}")
        for image_id in pruned.deleted:
            click.echo(f"deleted: {image_id}")
        click.echo("")
    click.echo(f"Total reclaimed space: {_human(pruned.reclaimed)}")


def _human(size: int) -> str:
    from cli.images import human_size

    return human_size(size)


@click.command(cls=ShoalCommand)
@host_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file instead of stdout.")
@click.option("--format", "fmt", type=click.Choice(["docker", "oci"]), default="docker",
              show_default=True, help="A docker save archive, or an OCI image layout tar.")
@click.argument("refs", nargs=-1, required=True)
def save(host: str | None, output: Path | None, fmt: str, refs: tuple[str, ...]) -> None:
    """Write images to a tar archive (stdout unless -o)."""
    with archive_output(output, "save") as out, connect(host) as client:
        for message in client.messages(lambda r: SaveImages(
                refs=list(refs), format=fmt, reply=r)):  # type: ignore[arg-type]
            if isinstance(message, ImageChunk):
                out.write(message.data)


@click.command(cls=ShoalCommand)
@host_option
@click.option("-i", "--input", "source", type=click.Path(exists=True, path_type=Path),
              default=None, help="Read from this file (or OCI layout directory), not stdin.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing.")
def load(host: str | None, source: Path | None, quiet: bool) -> None:
    """Load images from a docker save or OCI archive (what ``save`` writes)."""
    from cli.images import upload_image

    with connect(host) as client:
        imported = upload_image(client, source)
    if quiet:
        return
    for image in imported.images:
        for tag in image.tags:
            click.echo(f"Loaded image: {tag}")
        if not image.tags:
            click.echo(f"Loaded image ID: {image.id}")
