"""A tree of a container written as a tar stream, the way ``docker cp`` and ``docker export``
read it: entries named from the copied path's last component, numeric owners, hardlinks kept
as links, nothing read twice and nothing held whole (files are copied through in pieces).

The walk goes by descriptors: each directory is opened ``O_NOFOLLOW`` relative to its
parent's descriptor, so a symlink swapped in for a directory mid-walk is not followed. A file
that changes size while it is read is cut or padded to the size its header announced (the
tar stays readable). Sockets are skipped (a tar cannot hold them); the contents of ``/proc``
and ``/sys`` are never walked (a live container's kernel views, not its files).
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from protocol.errors import InvalidArgument
from worker.files.inroot import ContainerPath, lstat_at

READ_PIECE = 1 << 16
MAX_DEPTH = 256  # directories open at once while walking
KERNEL_VIEWS = ("/proc", "/sys")


class _Exactly:
    """A file read as exactly ``size`` bytes: cut if it grew, zero-padded if it shrank."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self._left = size

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        want = self._left if n < 0 else min(n, self._left)
        data = os.read(self._fd, min(want, READ_PIECE))
        if not data:
            data = bytes(min(want, READ_PIECE))
        self._left -= len(data)
        return data


class TreeWriter:
    """Writes entries to ``tar``; remembers inodes already written (hardlinks)."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self._linked: dict[tuple[int, int], str] = {}

    def entry(self, dir_fd: int, name: str, info: os.stat_result, arcname: str,
              container_path: str) -> bool:
        """Write one entry (a file's contents too); True when it is a directory to walk."""
        mode = info.st_mode
        if stat.S_ISSOCK(mode):
            return False
        header = tarfile.TarInfo(arcname)
        header.mode = stat.S_IMODE(mode)
        header.uid, header.gid = info.st_uid, info.st_gid
        header.mtime = int(info.st_mtime)
        key = (info.st_dev, info.st_ino)
        if not stat.S_ISDIR(mode) and info.st_nlink > 1 and key in self._linked:
            header.type, header.linkname = tarfile.LNKTYPE, self._linked[key]
            self.tar.addfile(header)
            return False
        if stat.S_ISDIR(mode):
            header.type = tarfile.DIRTYPE
            self.tar.addfile(header)
            return container_path not in KERNEL_VIEWS
        if stat.S_ISLNK(mode):
            header.type, header.linkname = tarfile.SYMTYPE, os.readlink(name, dir_fd=dir_fd)
        elif stat.S_ISFIFO(mode):
            header.type = tarfile.FIFOTYPE
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            header.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            header.devmajor, header.devminor = os.major(info.st_rdev), os.minor(info.st_rdev)
        elif stat.S_ISREG(mode):
            self._file(dir_fd, name, header, info)
            if info.st_nlink > 1:
                self._linked[key] = arcname
            return False
        else:
            return False
        self.tar.addfile(header)
        return False

    def _file(self, dir_fd: int, name: str, header: tarfile.TarInfo,
              info: os.stat_result) -> None:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=dir_fd)
        try:
            opened = os.fstat(fd)
            if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
                header.size = 0  # replaced between the listing and the open: written empty
                self.tar.addfile(header)
                return
            header.size = opened.st_size
            self.tar.addfile(header, _Exactly(fd, opened.st_size))
        finally:
            os.close(fd)

    def walk(self, dir_fd: int, arcname: str, container_path: str, depth: int = 0) -> None:
        """Every entry below the directory ``dir_fd``, in name order."""
        if depth >= MAX_DEPTH:
            raise InvalidArgument(f"directories nest deeper than {MAX_DEPTH} levels at "
                                  f"{container_path}", details={"path": container_path})
        with os.scandir(dir_fd) as listing:
            names = sorted(entry.name for entry in listing)
        for name in names:
            try:
                info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed meanwhile
            path = f"{container_path.rstrip('/')}/{name}"
            if self.entry(dir_fd, name, info, f"{arcname}/{name}", path):
                with _opened_dir(dir_fd, name) as sub:
                    if sub is not None:
                        self.walk(sub, f"{arcname}/{name}", path, depth + 1)


@contextmanager
def _opened_dir(dir_fd: int, name: str) -> Iterator[int | None]:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=dir_fd)
    except (FileNotFoundError, NotADirectoryError, OSError):
        yield None  # gone or replaced by a symlink meanwhile: its header is all there is
        return
    try:
        yield fd
    finally:
        os.close(fd)


def write_path(root_fd: int, where: ContainerPath, out: BinaryIO) -> None:
    """``where`` under ``root_fd`` as a tar on ``out``, its entries named from its last
    component (``.`` for ``/`` and for a path written ending in ``/.``)."""
    fd, name, info = lstat_at(root_fd, where)
    try:
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            writer = TreeWriter(tar)
            arcname = "." if where.current_dir or not where.base else where.base
            if name:
                if writer.entry(fd, name, info, arcname, where.path):
                    with _opened_dir(fd, name) as sub:
                        if sub is not None:
                            writer.walk(sub, arcname, where.path)
                return
            header = tarfile.TarInfo(arcname)  # a directory reached as itself
            header.type, header.mode = tarfile.DIRTYPE, stat.S_IMODE(info.st_mode)
            header.uid, header.gid, header.mtime = info.st_uid, info.st_gid, int(info.st_mtime)
            tar.addfile(header)
            if where.path not in KERNEL_VIEWS:
                with _opened_dir(fd, ".") as sub:
                    if sub is not None:
                        writer.walk(sub, arcname, where.path)
    finally:
        os.close(fd)


def write_root(root_fd: int, out: BinaryIO) -> None:
    """The whole tree under ``root_fd`` (``docker export``): entries named without a
    leading ``./``, as docker's are."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        writer = TreeWriter(tar)
        with _opened_dir(root_fd, ".") as top:
            if top is not None:
                _walk_top(writer, top)


def _walk_top(writer: TreeWriter, top: int) -> None:
    with os.scandir(top) as listing:
        names = sorted(entry.name for entry in listing)
    for name in names:
        try:
            info = os.stat(name, dir_fd=top, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if writer.entry(top, name, info, name, f"/{name}"):
            with _opened_dir(top, name) as sub:
                if sub is not None:
                    writer.walk(sub, name, f"/{name}", 1)
