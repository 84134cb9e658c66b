"""``shoal cp`` (files between a container and this host, either way, as ``docker cp`` copies
them) and ``shoal export`` (a container's root filesystem as a tar).

The tars stream: out of a container, the worker's byte stream is extracted as it arrives; into
one, a local tree is written as a tar straight onto the stream the worker extracts from. Where
the copy lands follows docker's rules: into an existing directory under the source's name (its
contents for ``SRC/.``), else as the destination's name. Ownership is docker's too: files land
owned by whoever copies (root in the container) unless ``-a`` keeps the source's ids.
"""

from __future__ import annotations

import os
import posixpath
import stat
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cli.client import Client, ShoalCommand, connect, host_option
from cli.output import archive_output
from protocol.errors import ChannelError, InvalidArgument, NotFound
from protocol.messages import (
    ContainerArchive,
    ContainerPathStat,
    ExportContainer,
    GetContainerArchive,
    Ok,
    PutContainerArchive,
    StatContainerPath,
)

if TYPE_CHECKING:
    from cli.stream_sink import StreamSink

Fill = Callable[["StreamSink"], None]


class _StreamReader:
    """A received byte stream as the file ``tarfile`` reads."""

    def __init__(self, reader: object) -> None:
        read = getattr(reader, "read", None)
        if read is None:
            raise ChannelError("expected a byte stream with the tar")
        self._read = read
        self._pending = b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._pending) < n:
            chunk = self._read()
            if not chunk:
                break
            self._pending += chunk
        if n < 0:
            data, self._pending = self._pending, b""
        else:
            data, self._pending = self._pending[:n], self._pending[n:]
        return data


def _split(spec: str) -> tuple[str, str] | None:
    """``CONTAINER:PATH`` as its parts; None for a local path (``./a:b`` or ``/x:y`` too)."""
    if spec.startswith(("/", ".")) or ":" not in spec:
        return None
    container, _, path = spec.partition(":")
    return (container, path) if container else None


@click.command(cls=ShoalCommand)
@host_option
@click.option("-a", "--archive", "keep_owner", is_flag=True,
              help="Keep the source's uid/gid (else the copier's, root in a container).")
@click.argument("source")
@click.argument("destination")
def cp(host: str | None, keep_owner: bool, source: str, destination: str) -> None:
    """Copy files between a container and this host: ``cp CONTAINER:SRC DEST`` or ``cp SRC
    CONTAINER:DEST`` (``-`` is a tar on stdin or stdout)."""
    out, into = _split(source), _split(destination)
    if (out is None) == (into is None):
        raise click.UsageError("copy between a container and this host: exactly one of "
                               "SOURCE and DESTINATION is CONTAINER:PATH")
    with connect(host) as client:
        if out is not None:
            _copy_out(client, out[0], out[1], destination, keep_owner)
        elif into is not None:
            _copy_in(client, source, into[0], into[1], keep_owner)


def _copy_out(client: Client, container: str, path: str, destination: str,
              keep_owner: bool) -> None:
    answer = client.ask(lambda r: GetContainerArchive(id=container, path=path, reply=r),
                        ContainerArchive)
    data = _StreamReader(answer.data)
    if destination == "-":
        while chunk := data.read(1 << 16):
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return
    top, is_dir = answer.stat.name, stat.S_ISDIR(answer.stat.mode)
    target = Path(destination)
    if target.is_dir():
        target = target if top == "." else target / top
    elif destination.endswith("/"):
        raise InvalidArgument(f"destination directory {destination} does not exist")
    elif not target.parent.is_dir():
        raise InvalidArgument(f"destination directory {target.parent} does not exist")
    elif target.exists() and is_dir:
        raise InvalidArgument(f"cannot copy a directory to the file {destination}")
    _extract(data, top, target, keep_owner)


def _extract(data: _StreamReader, top: str, target: Path, keep_owner: bool) -> None:
    """The tar's entries under ``top`` extracted as ``target``; refused are absolute names,
    ``..``, writing through links outside ``target`` (tarfile's ``tar`` filter) and devices."""
    with tarfile.open(fileobj=data, mode="r|") as tar:  # type: ignore[call-overload]
        for member in tar:
            name = _rebased(member.name, top, target.name)
            if member.islnk():
                member.linkname = _rebased(member.linkname, top, target.name)
            if member.ischr() or member.isblk():
                raise InvalidArgument(f"{member.name}: device nodes are not copied")
            member.name = name
            if not keep_owner:
                member.uid, member.gid, member.uname, member.gname = \
                    os.getuid(), os.getgid(), "", ""
            tar.extract(member, path=target.parent, filter="tar", numeric_owner=True)


def _rebased(name: str, top: str, new_top: str) -> str:
    parts = [p for p in name.split("/") if p not in ("", ".")] if top == "." else \
        [p for p in name.split("/") if p]
    if top != ".":
        if not parts or parts[0] != top:
            raise InvalidArgument(f"the container's tar holds {name!r}, outside {top!r}")
        parts = parts[1:]
    return posixpath.join(new_top, *parts) if parts else new_top


def _copy_in(client: Client, source: str, container: str, path: str,
             keep_owner: bool) -> None:
    if source == "-":  # a tar on stdin, extracted into the directory as it is
        _send(client, container, path, _copy_stdin)
        return
    local = Path(source)
    if not local.exists() and not local.is_symlink():
        raise InvalidArgument(f"no such file or directory: {source}")
    try:
        found = client.ask(lambda r: StatContainerPath(id=container, path=path, reply=r),
                           ContainerPathStat).stat
        exists, is_dir = True, stat.S_ISDIR(found.mode)
    except NotFound as exc:
        if "path" not in exc.details:
            raise
        exists, is_dir = False, False
    contents = source.endswith(("/.", "/./")) or source == "."
    if is_dir:
        directory, name = path, "." if contents else local.name
    elif exists and local.is_dir():
        raise InvalidArgument(f"cannot copy a directory to the file {container}:{path}")
    elif path.endswith("/"):
        raise InvalidArgument(f"no such directory in the container: {path}")
    else:
        directory, name = posixpath.dirname(path.rstrip("/")) or "/", posixpath.basename(path)

    def owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
        if not keep_owner:
            info.uid = info.gid = 0
            info.uname = info.gname = ""
        return info

    _send(client, container, directory,
          lambda sink: _write_tar(sink, local, name, owned))


def _write_tar(sink: StreamSink, local: Path, name: str,
               owned: Callable[[tarfile.TarInfo], tarfile.TarInfo]) -> None:
    with tarfile.open(fileobj=sink, mode="w|",  # type: ignore[call-overload]
                      format=tarfile.PAX_FORMAT) as tar:
        tar.add(str(local), arcname=name, recursive=True, filter=owned)


def _copy_stdin(sink: StreamSink) -> None:
    while chunk := sys.stdin.buffer.read(1 << 20):
        sink.write(chunk)


def _send(client: Client, container: str, directory: str, fill: Fill) -> None:
    """PUT the tar ``fill(sink)`` writes into ``directory`` of the container."""
    from cli.stream_sink import StreamSink

    session = client.session
    source = session.byte_source()
    reply = session.reply_inbox()
    session.send(PutContainerArchive(id=container, path=directory, data=source, reply=reply))
    sink = StreamSink(source)
    try:
        fill(sink)
        sink.flush()
        source.close()
    except ChannelError:
        pass  # the worker stopped reading: its answer says why
    except OSError as exc:
        source.abort(InvalidArgument(f"cannot read what to copy: {exc.strerror or exc}"))
    answer = reply.recv()
    reply.close()
    if not isinstance(answer, Ok):
        raise ChannelError(f"expected Ok, got {type(answer).__name__}")


@click.command(cls=ShoalCommand)
@host_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file instead of stdout.")
@click.argument("container")
def export(host: str | None, output: Path | None, container: str) -> None:
    """Write a container's root filesystem as a tar (stdout unless -o)."""
    with archive_output(output, "export") as out, connect(host) as client:
        answer = client.ask(lambda r: ExportContainer(id=container, reply=r), ContainerArchive)
        data = _StreamReader(answer.data)
        while chunk := data.read(1 << 16):
            out.write(chunk)
