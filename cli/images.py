"""The image commands of the CLI: ``images``, ``rmi``, and ``image import|inspect|ls|rm`` (and
``image pull|push|tag``, which live in ``cli.registry``).

``image import`` streams the archive (a file, ``-`` for stdin, or an OCI layout directory sent
as a tar) to the worker on a byte stream: credit flow control keeps what is in flight bounded,
so any size goes through in constant memory. Refusals print the worker's typed error and exit 1.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from channels._blocking import ByteSource
from cli import registry
from cli.client import MAX_REDIRECTS, Client, ShoalCommand, connect, host_option, one_line
from cli.output import ago, as_json, table
from cli.stream_sink import READ_CHUNK, StreamSink
from cli.views import IMAGE_FIELDS, IMAGE_HEADERS, image_views
from protocol.errors import ChannelError, InvalidArgument, ShoalError, Unavailable
from protocol.messages import (
    ImageImported,
    ImageInspected,
    ImageList,
    ImageRemoved,
    ImportImage,
    InspectImage,
    ListImages,
    RemoveImage,
)
from protocol.observed import ImageSummary

# Registers the image store's error codes, so refusals show as ImageNotFound, LayerRejected...
from worker.images import errors as _image_errors  # noqa: F401

LAYOUT_ENTRIES = ("oci-layout", "index.json", "blobs")


# --- import --------------------------------------------------------------------------------------
def _send_archive(path: Path | None, source: ByteSource) -> None:
    """Stream the archive at ``path`` (stdin when None; a directory as a tar of its OCI
    layout) on ``source`` and end the stream."""
    try:
        if path is not None and path.is_dir():
            import tarfile  # only to send a directory

            sink = StreamSink(source)
            with tarfile.open(fileobj=sink, mode="w|") as tar:  # type: ignore[call-overload]
                for name in LAYOUT_ENTRIES:
                    if (path / name).exists():
                        tar.add(path / name, arcname=name)
            sink.flush()
        else:
            archive = path.open("rb") if path is not None else sys.stdin.buffer
            try:
                while chunk := archive.read(READ_CHUNK):
                    source.write(chunk)
            finally:
                if path is not None:
                    archive.close()
        source.close()
    except ChannelError:
        return  # the worker stopped reading: its reply says why
    except OSError as exc:
        source.abort(InvalidArgument(f"cannot read {path or 'stdin'}: {exc.strerror or exc}"))


def upload_image(client: Client, path: Path | None, name: str = "",
                 fmt: str = "auto") -> ImageImported:
    """Import the archive at ``path`` (stdin when None) into the service behind ``client``.
    Blocking: async code runs it in a thread."""
    for _ in range(MAX_REDIRECTS + 1):
        session = client.session
        source = session.byte_source()
        reply = session.reply_inbox()
        label = path.name if path is not None else "stdin"
        session.send(ImportImage(name=name, format=fmt,  # type: ignore[arg-type]
                                 data=source, source=label[:255], reply=reply))
        _send_archive(path, source)
        session.wait_for(reply.ready)
        if client.redirected(reply):
            if path is None:
                raise Unavailable("the import went to a standby and stdin cannot be read "
                                  "again: give the leader's address with -H")
            continue
        answer = reply.recv()
        reply.close()
        if not isinstance(answer, ImageImported):
            raise ChannelError(f"expected ImageImported, got {type(answer).__name__}")
        return answer
    raise Unavailable(f"no leader after {MAX_REDIRECTS} redirects")


def upload_to(address: str, path: Path | None, name: str = "",
              fmt: str = "auto") -> ImageImported:
    """``upload_image`` to the service at ``address`` (blocking: async code runs it in a
    thread with ``asyncio.to_thread``)."""
    with Client([address]) as client:
        return upload_image(client, path, name, fmt)


@click.command("import", cls=ShoalCommand)
@host_option
@click.option("--format", "fmt", type=click.Choice(["auto", "oci", "docker", "rootfs"]),
              default="auto", show_default=True,
              help="What the archive is: an OCI layout, a docker save tarball, or a rootfs.")
@click.argument("file", type=click.Path(exists=False, path_type=Path))
@click.argument("reference", required=False, default="")
def import_(host: str | None, fmt: str, file: Path, reference: str) -> None:
    """Import an image from FILE (a tarball, an OCI layout directory, or - for stdin) and tag
    it REFERENCE (name[:tag]); without one an archive keeps its own tags."""
    path = None if str(file) == "-" else file
    if path is not None and not path.exists():
        raise click.BadParameter(f"{file} does not exist", param_hint="FILE")
    with connect(host) as client:
        imported = upload_image(client, path, reference, fmt)
    for image in imported.images:
        for tag in image.tags:
            click.echo(f"Loaded image: {tag}")
        if not image.tags:
            click.echo(f"Loaded image ID: {image.id}")


# --- list ----------------------------------------------------------------------------------------
def human_size(size: int) -> str:
    """Docker's sizes: decimal units, three significant digits ("4.19MB", "512B")."""
    value = float(size)
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    unit = 0
    while unit < len(units) - 1 and float(f"{value:.3g}") >= 1000:
        value /= 1000
        unit += 1
    return f"{value:.3g}{units[unit]}"


def split_tag(tag: str) -> tuple[str, str]:
    """``registry:5000/name:tag`` → (``registry:5000/name``, ``tag``)."""
    name, sep, label = tag.rpartition(":")
    if not sep or "/" in label:
        return tag, "<none>"
    return name, label


def image_rows(images: list[ImageSummary], now: float | None = None) -> list[list[str]]:
    """One row per tag (an untagged image gets one ``<none>`` row), newest image first."""
    rows = []
    for image in sorted(images, key=lambda i: (-i.created, i.id)):
        short = image.id.partition(":")[2][:12]
        for tag in image.tags or ["<none>:<none>"]:
            repository, label = split_tag(tag)
            rows.append([repository, label, short, ago(image.created, now) or "N/A",
                         human_size(image.size)])
    return rows


@click.command(cls=ShoalCommand)
@host_option
@click.option("-q", "--quiet", is_flag=True, help="Only image ids.")
@click.option("--format", "fmt", default="table",
              help="table, json, or a template: '{{.Repository}}:{{.Tag}}'.")
def images(host: str | None, quiet: bool, fmt: str) -> None:
    """List images."""
    if fmt not in ("table", "json"):
        from cli.formatting import parse  # only for a template

        parse(fmt, IMAGE_FIELDS)  # a bad template is refused before anything is asked
    with connect(host) as client:
        listing = client.ask(lambda r: ListImages(reply=r), ImageList)
    if fmt == "json":
        as_json(listing.images)
        return
    if fmt != "table" and not quiet:
        now = time.time()
        ordered = sorted(listing.images, key=lambda i: (-i.created, i.id))
        from cli.formatting import print_formatted

        print_formatted(fmt, [view for i in ordered
                              for view in image_views(i, now, human_size(i.size))],
                        IMAGE_FIELDS, IMAGE_HEADERS)
        return
    if quiet:
        for image in sorted(listing.images, key=lambda i: (-i.created, i.id)):
            click.echo(image.id.partition(":")[2][:12])
        return
    table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], image_rows(listing.images))


# --- remove and inspect --------------------------------------------------------------------------
@click.command(cls=ShoalCommand)
@host_option
@click.option("-f", "--force", is_flag=True,
              help="Remove an image with several tags by id, or the last tag of an image in use.")
@click.argument("refs", nargs=-1, required=True)
def rmi(host: str | None, force: bool, refs: tuple[str, ...]) -> None:
    """Remove images: untag them, and delete each once no tag is left."""
    failures = 0
    with connect(host) as client:
        for ref in refs:
            try:
                removed = client.ask(lambda r, ref=ref: RemoveImage(  # type: ignore[misc]
                    ref=ref, force=force, reply=r), ImageRemoved)
            except ShoalError as exc:
                failures += 1
                click.echo(f"Error: {one_line(exc)}", err=True)
                continue
            for tag in removed.untagged:
                click.echo(f"Untagged: {tag}")
            for image_id in removed.deleted:
                click.echo(f"Deleted: {image_id}")
    if failures:
        sys.exit(1)


@click.command(cls=ShoalCommand)
@host_option
@click.argument("refs", nargs=-1, required=True)
def inspect(host: str | None, refs: tuple[str, ...]) -> None:
    """Show everything about images, as JSON."""
    found: list[object] = []
    failures = 0
    with connect(host) as client:
        for ref in refs:
            try:
                found.append(client.ask(lambda r, ref=ref: InspectImage(  # type: ignore[misc]
                    ref=ref, reply=r), ImageInspected).info)
            except ShoalError as exc:
                failures += 1
                click.echo(f"Error: {one_line(exc)}", err=True)
    as_json(found)
    if failures:
        sys.exit(1)


@click.group()
def image() -> None:
    """Manage images: build, history, import, inspect, load, ls, prune, pull, push, rm, save,
    tag."""


image.add_command(import_)
image.add_command(inspect)
image.add_command(images, name="ls")
image.add_command(rmi, name="rm")
image.add_command(registry.pull)
image.add_command(registry.push)
image.add_command(registry.tag)


def _add_archive_commands() -> None:
    from cli.build import build
    from cli.disk_usage import history
    from cli.image_archives import load, prune, save

    for command in (build, history, load, prune, save):
        image.add_command(command)


_add_archive_commands()

IMAGE_COMMANDS: list[click.Command] = [images, rmi, image]


@click.group()
def main() -> None:
    """shoal's image commands on their own (``python -m cli.images``)."""


for _command in IMAGE_COMMANDS:
    main.add_command(_command)


if __name__ == "__main__":
    main()
