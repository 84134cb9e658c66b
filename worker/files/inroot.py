"""Paths of a container looked up on the host without ever leaving the container's root.

A container path is cleaned as Docker cleans it (joined to ``/``, ``..`` at the top stays
there), and every open goes through openat2 with ``RESOLVE_IN_ROOT``: the kernel resolves
``..`` and absolute symlinks inside the root, so a link the container made (``/etc ->
/host/etc``), or one it swaps in while we walk, cannot lead out of it. ``resolve`` spells out
where a symlink leads, in the container's terms (the ``linkTarget`` ``docker cp -L`` follows).
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from dataclasses import dataclass

from protocol.errors import InvalidArgument, NotFound
from worker.runtime import syscalls

MAX_LINKS = 40  # symlinks followed in one path, as the kernel's own limit
IN_ROOT = syscalls.RESOLVE_IN_ROOT | syscalls.RESOLVE_NO_MAGICLINKS


@dataclass(frozen=True, slots=True)
class ContainerPath:
    """A cleaned container path: ``parent`` and ``base`` (``""`` for ``/``), and whether it
    was written as a directory (a trailing ``/`` or ``/.``: its last symlink is followed)."""

    path: str
    parent: str
    base: str
    as_directory: bool
    current_dir: bool  # written ending in "/." : the directory's contents, named "."


def parse(path: str) -> ContainerPath:
    if "\x00" in path:
        raise InvalidArgument("a container path cannot hold a NUL byte")
    current_dir = path == "." or path.endswith("/.")
    as_directory = path.endswith("/") or current_dir
    clean = posixpath.normpath("/" + path)
    if clean.startswith("//"):
        clean = "/" + clean.lstrip("/")
    parent, base = posixpath.split(clean)
    return ContainerPath(clean, parent, base, as_directory, current_dir)


def open_in_root(root_fd: int, path: str, flags: int, mode: int = 0) -> int:
    """``path`` (a container path) opened under ``root_fd`` as if it were ``/``."""
    relative = path.lstrip("/") or "."
    return syscalls.openat2(root_fd, relative, flags | os.O_CLOEXEC, IN_ROOT, mode)


def open_dir(root_fd: int, path: str) -> int:
    """The directory ``path`` (symlinks followed inside the root) as an O_PATH descriptor;
    NotFound or InvalidArgument (not a directory) said in the container's terms."""
    try:
        return open_in_root(root_fd, path, os.O_PATH | os.O_DIRECTORY)
    except FileNotFoundError:
        raise NotFound(f"no such file or directory in the container: {path}",
                       details={"path": path}) from None
    except NotADirectoryError:
        raise InvalidArgument(f"not a directory in the container: {path}",
                              details={"path": path}) from None


def lstat_at(root_fd: int, where: ContainerPath) -> tuple[int, str, os.stat_result]:
    """``(fd, name, stat)`` of the path: the lstat of ``name`` in the directory ``fd``, or,
    with ``name`` "", of ``fd`` itself (an O_PATH directory: ``/``, or a symlink followed
    because the path was written as a directory, which it must then be). The caller closes
    ``fd``."""
    parent_fd = open_dir(root_fd, where.parent)
    try:
        if not where.base:
            return parent_fd, "", os.stat(parent_fd)
        try:
            found = os.stat(where.base, dir_fd=parent_fd, follow_symlinks=False)
            if where.as_directory and stat.S_ISLNK(found.st_mode):
                fd = open_in_root(root_fd, where.path, os.O_PATH | os.O_DIRECTORY)
                os.close(parent_fd)
                parent_fd = fd
                return fd, "", os.stat(fd)
        except FileNotFoundError:
            raise NotFound(f"no such file or directory in the container: {where.path}",
                           details={"path": where.path}) from None
        except NotADirectoryError:
            raise InvalidArgument(f"not a directory in the container: {where.path}",
                                  details={"path": where.path}) from None
        if where.as_directory and not stat.S_ISDIR(found.st_mode):
            raise InvalidArgument(f"not a directory in the container: {where.path}",
                                  details={"path": where.path})
        return parent_fd, where.base, found
    except BaseException:
        os.close(parent_fd)
        raise


def resolve(root_fd: int, path: str) -> str:
    """Where ``path`` leads once every symlink in it is followed inside the root, as a clean
    container path (a missing tail is kept as written)."""
    pending = [p for p in parse(path).path.split("/") if p]
    pending.reverse()
    done: list[str] = []
    links = 0
    while pending:
        part = pending.pop()
        if part == "..":
            if done:
                done.pop()
            continue
        if part == ".":
            continue
        candidate = "/" + "/".join([*done, part])
        parent_fd = open_in_root(root_fd, "/" + "/".join(done), os.O_PATH | os.O_DIRECTORY)
        try:
            found = os.stat(part, dir_fd=parent_fd, follow_symlinks=False)
            target = os.readlink(part, dir_fd=parent_fd) if stat.S_ISLNK(found.st_mode) \
                else None
        except FileNotFoundError:
            return "/" + "/".join([*done, part, *reversed(pending)])
        finally:
            os.close(parent_fd)
        if target is None:
            done.append(part)
            continue
        links += 1
        if links > MAX_LINKS:
            raise InvalidArgument(f"too many levels of symbolic links: {candidate}",
                                  details={"path": path, "errno": str(errno.ELOOP)})
        if target.startswith("/"):
            done = []
        pending.extend(reversed([p for p in target.split("/") if p]))
    return "/" + "/".join(done)
