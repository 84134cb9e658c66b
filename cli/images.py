"""The image commands of the CLI: ``images``, ``rmi``, and ``image import|inspect|ls|rm``.

``image import`` streams the archive (a file, ``-`` for stdin, or an OCI layout directory sent
as a tar) to the worker on a byte stream: credit flow control keeps what is in flight bounded,
so any size goes through in constant memory. Refusals print the worker's typed error and exit 1.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import tarfile
import threading
from pathlib import Path
from typing import BinaryIO

import click

import channels
from cli.containers import ask, call, host_option
from cli.log_config import configure_logging
from cli.output import ago, as_json, table
from protocol.errors import ChannelClosed, ChannelError, InvalidArgument, ShoalError
from protocol.messages import (
    ImageImported,
    ImageInspected,
    ImageList,
    ImageRemoved,
    ImportImage,
    InspectImage,
    ListImages,
    Message,
    RemoveImage,
)
from protocol.specs import ImageSummary

# Registers the image store's error codes, so refusals show as ImageNotFound, LayerRejected...
from worker.images import errors as _image_errors  # noqa: F401

READ_CHUNK = 1024 * 1024
LAYOUT_ENTRIES = ("oci-layout", "index.json", "blobs")


# --- import --------------------------------------------------------------------------------------
class _StreamSink:
    """A file-like object a thread writes a tar into; the bytes go to ``writer`` on the event
    loop, in batches, waiting for credit (so the thread is paced by the worker)."""

    def __init__(self, writer: channels.ByteWriter, loop: asyncio.AbstractEventLoop) -> None:
        self.writer = writer
        self.loop = loop
        self.stopped = threading.Event()
        self.buffer = bytearray()

    def write(self, data: bytes) -> int:
        self.buffer += data
        if len(self.buffer) >= READ_CHUNK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.stopped.is_set():
            raise ChannelClosed("the import was cancelled")
        if self.buffer:
            data, self.buffer = bytes(self.buffer), bytearray()
            asyncio.run_coroutine_threadsafe(self.writer.write(data), self.loop).result()


def _tar_layout(directory: Path, sink: _StreamSink) -> None:
    """Write the OCI layout ``directory`` as a tar into ``sink`` (runs in a thread)."""
    with tarfile.open(fileobj=sink, mode="w|") as tar:  # type: ignore[call-overload]
        for name in LAYOUT_ENTRIES:
            if (directory / name).exists():
                tar.add(directory / name, arcname=name)
    sink.flush()


async def _send_archive(path: Path | None, writer: channels.ByteWriter) -> None:
    """Stream the archive at ``path`` (stdin when None) on ``writer`` and end the stream."""
    sink: _StreamSink | None = None
    try:
        if path is not None and path.is_dir():
            sink = _StreamSink(writer, asyncio.get_running_loop())
            await asyncio.to_thread(_tar_layout, path, sink)
        else:
            source: BinaryIO = path.open("rb") if path is not None else sys.stdin.buffer
            try:
                while chunk := await asyncio.to_thread(source.read, READ_CHUNK):
                    await writer.write(chunk)
            finally:
                if path is not None:
                    source.close()
        writer.close()
    except ChannelError:
        return  # the worker stopped reading: its reply says why
    except OSError as exc:
        writer.abort(InvalidArgument(f"cannot read {path or 'stdin'}: {exc.strerror or exc}"))
    finally:
        if sink is not None:
            sink.stopped.set()


async def upload_image(conn: channels.Connection, path: Path | None, name: str = "",
                       fmt: str = "auto") -> ImageImported:
    """Import the archive at ``path`` (stdin when None) into the worker behind ``conn``."""
    writer, reader = channels.byte_pipe()
    reply_tx, reply_rx = channels.pipe(capacity=4)
    source = path.name if path is not None else "stdin"
    await conn.sender.send(ImportImage(name=name, format=fmt, data=reader,  # type: ignore[arg-type]
                                       source=source[:255], reply=reply_tx))
    sending = asyncio.ensure_future(_send_archive(path, writer))
    try:
        reply = await reply_rx.recv()
    finally:
        reply_rx.close()
        if not sending.done():
            writer.abort(ChannelClosed("the import was cancelled"))
            sending.cancel()
        await asyncio.gather(sending, return_exceptions=True)
    if not isinstance(reply, ImageImported):
        raise ChannelError(f"expected ImageImported, got {type(reply).__name__}")
    return reply


@click.command("import")
@host_option
@click.option("--format", "fmt", type=click.Choice(["auto", "oci", "docker", "rootfs"]),
              default="auto", show_default=True,
              help="What the archive is: an OCI layout, a docker save tarball, or a rootfs.")
@click.argument("file", type=click.Path(exists=False, path_type=Path))
@click.argument("reference", required=False, default="")
def import_(host: str, fmt: str, file: Path, reference: str) -> None:
    """Import an image from FILE (a tarball, an OCI layout directory, or - for stdin) and tag
    it REFERENCE (name[:tag]); without one an archive keeps its own tags."""
    path = None if str(file) == "-" else file
    if path is not None and not path.exists():
        raise click.BadParameter(f"{file} does not exist", param_hint="FILE")
    imported = call(host, lambda conn: upload_image(conn, path, reference, fmt))
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


@click.command()
@host_option
@click.option("-q", "--quiet", is_flag=True, help="Only image ids.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def images(host: str, quiet: bool, fmt: str) -> None:
    """List images."""
    listing = call(host, lambda conn: ask(conn, lambda r: ListImages(reply=r), ImageList))
    if fmt == "json":
        as_json(listing.images)
        return
    if quiet:
        for image in sorted(listing.images, key=lambda i: (-i.created, i.id)):
            click.echo(image.id.partition(":")[2][:12])
        return
    table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], image_rows(listing.images))


# --- remove and inspect --------------------------------------------------------------------------
def _remove_request(ref: str, force: bool, reply: channels.Sender) -> Message:
    return RemoveImage(ref=ref, force=force, reply=reply)


def _inspect_request(ref: str, reply: channels.Sender) -> Message:
    return InspectImage(ref=ref, reply=reply)


@click.command()
@host_option
@click.option("-f", "--force", is_flag=True,
              help="Remove an image with several tags by id, or the last tag of an image in use.")
@click.argument("refs", nargs=-1, required=True)
def rmi(host: str, force: bool, refs: tuple[str, ...]) -> None:
    """Remove images: untag them, and delete each once no tag is left."""

    async def work(conn: channels.Connection) -> int:
        failures = 0
        for ref in refs:
            try:
                removed = await ask(conn, functools.partial(_remove_request, ref, force),
                                    ImageRemoved)
            except ShoalError as exc:
                failures += 1
                click.echo(f"Error: {type(exc).__name__}: {exc}", err=True)
                continue
            for tag in removed.untagged:
                click.echo(f"Untagged: {tag}")
            for image_id in removed.deleted:
                click.echo(f"Deleted: {image_id}")
        return failures

    if call(host, work):
        sys.exit(1)


@click.command()
@host_option
@click.argument("refs", nargs=-1, required=True)
def inspect(host: str, refs: tuple[str, ...]) -> None:
    """Show everything about images, as JSON."""

    async def work(conn: channels.Connection) -> tuple[list[object], int]:
        found: list[object] = []
        failures = 0
        for ref in refs:
            try:
                found.append((await ask(conn, functools.partial(_inspect_request, ref),
                                        ImageInspected)).info)
            except ShoalError as exc:
                failures += 1
                click.echo(f"Error: {type(exc).__name__}: {exc}", err=True)
        return found, failures

    found, failures = call(host, work)
    as_json(found)
    if failures:
        sys.exit(1)


@click.group()
def image() -> None:
    """Manage images: import, inspect, ls, rm."""


image.add_command(import_)
image.add_command(inspect)
image.add_command(images, name="ls")
image.add_command(rmi, name="rm")

IMAGE_COMMANDS: list[click.Command] = [images, rmi, image]


@click.group()
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default=None, help="Log level (default: $SHOAL_LOG or info).")
def main(log_level: str | None) -> None:
    """shoal's image commands on their own (``python -m cli.images``)."""
    configure_logging(log_level)


for _command in IMAGE_COMMANDS:
    main.add_command(_command)


if __name__ == "__main__":
    main()
