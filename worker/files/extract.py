"""A tar extracted into a directory of a container (``docker cp`` to it), read as it arrives.

Every entry is judged first by the layer checker (``worker.images.tarsafety``: no absolute
paths, no ``..``, no device nodes, no writing through a link the tar itself made, hardlinks
only to files it wrote, bounded sizes and counts); whiteout names have no meaning in a copy
and are refused. Each entry's parent directory is then opened inside the container's root
(``inroot``: the container's own symlinks are followed as the container would follow them,
never out of it) and the entry made relative to that descriptor, never through a path.
Directories the tar implies but does not list are made 0755. Directory times are set last
(their entries change them).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tarfile
from typing import BinaryIO

from protocol.errors import Conflict, InvalidArgument
from worker.files.inroot import open_dir, open_in_root
from worker.images.errors import LayerRejected
from worker.images.tarsafety import WHITEOUT_PREFIX, Action, Header, Kind, LayerChecker, LayerLimits

COPY_PIECE = 1 << 16
MAX_DEFERRED_TIMES = 100_000  # directory times set at the end; more are left as they fall


class Extraction:
    """One tar into the directory ``dest`` (a clean container path) under ``root_fd``."""

    def __init__(self, root_fd: int, dest: str, *, no_overwrite_dir_non_dir: bool,
                 owner: tuple[int, int] | None, limits: LayerLimits) -> None:
        self.root_fd = root_fd
        self.dest = dest.rstrip("/")
        self.no_overwrite = no_overwrite_dir_non_dir
        self.owner = owner
        self.checker = LayerChecker(limits)
        self._parent: tuple[str, int] | None = None  # the last parent opened, kept
        self._dir_times: list[tuple[str, int]] = []

    def run(self, stream: BinaryIO) -> int:
        """Extract every entry; returns how many. The destination must be a directory."""
        os.close(open_dir(self.root_fd, self.dest or "/"))
        count = 0
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    if any(p.startswith(WHITEOUT_PREFIX) for p in member.name.split("/")):
                        raise InvalidArgument(f"tar entry {member.name[:200]!r}: whiteout "
                                              "names cannot be copied into a container")
                    try:
                        action = self.checker.check(Header.of(member))
                    except LayerRejected as exc:  # said as a copy's refusal, not a layer's
                        raise LayerRejected(f"copied entry {exc.entry!r} refused: {exc.reason}",
                                            entry=exc.entry, reason=exc.reason) from None
                    if action.kind is Kind.SKIP:
                        continue
                    self._entry(tar, member, action)
                    count += 1
            for path, mtime in reversed(self._dir_times):
                self._set_time(path, mtime)
        except tarfile.TarError as exc:
            raise InvalidArgument(f"the copied archive is not a valid tar: {exc}") from None
        finally:
            self._drop_parent()
        return count

    # --- entries ---------------------------------------------------------------------------------
    def _entry(self, tar: tarfile.TarFile, member: tarfile.TarInfo, action: Action) -> None:
        parent = self._parent_fd(action.path[:-1])
        name = action.path[-1]
        self._make_room(parent, name, action)
        kind = action.kind
        if kind is Kind.DIR:
            with contextlib.suppress(FileExistsError):  # kept: it takes the tar's mode, owner
                os.mkdir(name, 0o700, dir_fd=parent)
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         dir_fd=parent)
            try:
                self._own(fd, member)
            finally:
                os.close(fd)
            if len(self._dir_times) < MAX_DEFERRED_TIMES:
                self._dir_times.append(("/".join(action.path), int(member.mtime)))
            return
        if kind is Kind.FILE:
            source = tar.extractfile(member)
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600, dir_fd=parent)
            try:
                if source is not None:
                    while piece := source.read(COPY_PIECE):
                        os.write(fd, piece)
                self._own(fd, member)
            finally:
                os.close(fd)
        elif kind is Kind.SYMLINK:
            os.symlink(action.target, name, dir_fd=parent)
            self._chown(parent, name, member)
        elif kind is Kind.HARDLINK:
            link_parent = open_in_root(self.root_fd, self._inside(action.link[:-1]),
                                       os.O_PATH | os.O_DIRECTORY)
            try:
                os.link(action.link[-1], name, src_dir_fd=link_parent, dst_dir_fd=parent,
                        follow_symlinks=False)
            finally:
                os.close(link_parent)
            return
        elif kind is Kind.FIFO:
            os.mkfifo(name, stat.S_IMODE(member.mode), dir_fd=parent)
            self._chown(parent, name, member)
        else:  # the checker refused devices; nothing else reaches here
            raise InvalidArgument(f"tar entry {member.name[:200]!r}: {kind.value} cannot be "
                                  "copied into a container")
        os.utime(name, (member.mtime, member.mtime), dir_fd=parent, follow_symlinks=False)

    def _make_room(self, parent: int, name: str, action: Action) -> None:
        """Remove what the entry replaces (a directory stays for a directory)."""
        try:
            existing = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return
        was_dir = stat.S_ISDIR(existing.st_mode)
        is_dir = action.kind is Kind.DIR
        if was_dir and is_dir:
            return
        if self.no_overwrite and was_dir != is_dir:
            shown = "/".join(action.path)
            raise Conflict(f"cannot overwrite {'directory' if was_dir else 'non-directory'} "
                           f"{self._inside(action.path)} with "
                           f"{'directory' if is_dir else 'non-directory'} {shown}",
                           details={"path": self._inside(action.path)})
        if was_dir:
            shutil.rmtree(name, dir_fd=parent)
        else:
            os.unlink(name, dir_fd=parent)

    def _own(self, fd: int, member: tarfile.TarInfo) -> None:
        uid, gid = self.owner if self.owner is not None else (member.uid, member.gid)
        os.fchown(fd, uid, gid)
        os.fchmod(fd, stat.S_IMODE(member.mode))  # after the chown, which clears set-id bits

    def _chown(self, parent: int, name: str, member: tarfile.TarInfo) -> None:
        uid, gid = self.owner if self.owner is not None else (member.uid, member.gid)
        os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False)

    def _set_time(self, relative: str, mtime: int) -> None:
        try:
            fd = open_in_root(self.root_fd, f"{self.dest}/{relative}",
                              os.O_PATH | os.O_DIRECTORY)
        except OSError:
            return  # replaced since: its time is not ours to set
        try:
            os.utime(f"/proc/self/fd/{fd}", (mtime, mtime))
        finally:
            os.close(fd)

    # --- parents ---------------------------------------------------------------------------------
    def _inside(self, parts: tuple[str, ...]) -> str:
        return "/".join((self.dest, *parts)) or "/"

    def _parent_fd(self, parts: tuple[str, ...]) -> int:
        """The entry's parent, opened inside the root (made, 0755, where missing)."""
        path = self._inside(parts)
        if self._parent is not None and self._parent[0] == path:
            return self._parent[1]
        self._drop_parent()
        try:
            try:
                fd = open_in_root(self.root_fd, path, os.O_PATH | os.O_DIRECTORY)
            except FileNotFoundError:
                fd = self._make_parents(parts)
        except NotADirectoryError:
            raise InvalidArgument(f"cannot extract below {path}: not a directory",
                                  details={"path": path}) from None
        self._parent = (path, fd)
        return fd

    def _make_parents(self, parts: tuple[str, ...]) -> int:
        """The directories ``parts`` below the destination (which exists), made as needed."""
        fd = open_in_root(self.root_fd, self.dest or "/", os.O_PATH | os.O_DIRECTORY)
        for depth in range(1, len(parts) + 1):
            os.close(fd)
            path = self._inside(parts[:depth])
            try:
                fd = open_in_root(self.root_fd, path, os.O_PATH | os.O_DIRECTORY)
            except FileNotFoundError:
                above = open_in_root(self.root_fd, self._inside(parts[:depth - 1]),
                                     os.O_PATH | os.O_DIRECTORY)
                try:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(parts[depth - 1], 0o755, dir_fd=above)
                finally:
                    os.close(above)
                fd = open_in_root(self.root_fd, path, os.O_PATH | os.O_DIRECTORY)
        return fd

    def _drop_parent(self) -> None:
        if self._parent is not None:
            os.close(self._parent[1])
            self._parent = None
