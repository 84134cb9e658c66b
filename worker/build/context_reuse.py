"""Unpacking a build context over the previous one, so that an unchanged context costs no
inode.

A cached rebuild sends the same context again. Unpacked into a fresh directory and removed
after the build, its files cost an inode allocation and a deletion each, every build: on
ext4 (online discard, a busy disk) that kernel work was the largest share of a fully cached
build's CPU, more than the whole Python side of it. So a worker keeps its last context
directory, and ``unpack_over`` writes the new context into it: a regular file or directory
already there with the right type is kept (same inode) and a file's bytes are written only
where they differ (truncating and rewriting it frees and allocates its blocks, which with
online discard cost as much wall time as the inodes did), anything of the
wrong type (a link, a file another name shares, a file where a directory must be) is removed
first, and whatever the new context does not hold is removed at the end. The result is what
a fresh unpack gives (names, types, content, modes, times), with the same refusals: old
entries are cleared before ``tarfile``'s checks look at a path, so an old link can neither
redirect a new entry nor make a good context look hostile.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from worker.build.context import checked_name, context_filter, unpack_context
from worker.build.errors import BuildContextError

if TYPE_CHECKING:
    from _typeshed import StrOrBytesPath

COMPARE_BYTES = 1024 * 1024


def unpack_over(archive: BinaryIO, dest: Path) -> None:
    """Unpack the context tar ``archive`` into ``dest``, which may hold an earlier context
    (see the module's docstring); on a refusal ``dest`` is emptied."""
    kept: set[str] = set()
    dir_times: dict[str, float] = {}

    def reuse_filter(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        name = checked_name(member)
        _make_room(path, name, member, kept)
        result = context_filter(member, path)
        if result is not None:
            kept.add(name)
            if result.isdir():
                dir_times[name] = result.mtime
        return result

    try:
        unpack_context(archive, dest, entry_filter=reuse_filter, tar_class=_OverTar)
        for parent in _remove_unlisted(dest, kept):
            if parent in dir_times:  # a removal touched it after tarfile set its time
                os.utime(os.path.join(dest, parent), (dir_times[parent], dir_times[parent]))
    except OSError as exc:
        _empty(dest)
        raise BuildContextError(f"cannot unpack the build context: {exc}") from exc
    except BaseException:
        _empty(dest)
        raise


class _OverTar(tarfile.TarFile):
    """Writes a file that is already there in place, and only the pieces that differ:
    truncating it and writing it again frees and allocates its blocks, which on a disk with
    online discard cost as much wall time as the inodes did."""

    def makefile(self, tarinfo: tarfile.TarInfo, targetpath: StrOrBytesPath) -> None:
        try:
            target = open(targetpath, "r+b")  # noqa: SIM115
        except FileNotFoundError:
            super().makefile(tarinfo, targetpath)
            return
        if tarinfo.sparse is not None:
            target.close()
            super().makefile(tarinfo, targetpath)
            return
        source = self.fileobj
        assert source is not None
        source.seek(tarinfo.offset_data)
        with target:
            left = tarinfo.size
            while left:
                new = source.read(min(left, COMPARE_BYTES))
                if not new:
                    raise tarfile.ReadError("unexpected end of data")
                old = target.read(len(new))
                if old != new:
                    target.seek(-len(old), os.SEEK_CUR)
                    target.write(new)
                left -= len(new)
            target.truncate()


def _make_room(dest: str, name: str, member: tarfile.TarInfo, kept: set[str]) -> None:
    """Clear what an earlier context left in the way of entry ``name``: a parent this context
    did not make goes, and the entry itself may stay only as a directory for a directory or a
    file (no other name on its inode) for a file."""
    if member.islnk() and posixpath.normpath(member.linkname) not in kept:
        # A fresh unpack fails on a link to nothing; here an old file would answer.
        raise BuildContextError(f"the context holds {member.name!r}, a hard link to "
                                f"{member.linkname!r}, which comes nowhere before it")
    parts = name.split("/")
    for depth in range(1, len(parts)):
        parent = "/".join(parts[:depth])
        if parent not in kept:
            # A parent this context does not name is made afresh, as a fresh unpack makes it
            # (an old directory there would keep its old mode).
            _clear(os.path.join(dest, parent), keep_dir=False, keep_file=False)
            kept.add(parent)
    _clear(os.path.join(dest, name), keep_dir=member.isdir(), keep_file=member.isreg())


def _clear(path: str, *, keep_dir: bool, keep_file: bool) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        if not keep_dir:
            shutil.rmtree(path)
    elif not (keep_file and stat.S_ISREG(st.st_mode) and st.st_nlink == 1):
        os.unlink(path)


def _remove_unlisted(dest: Path, kept: set[str]) -> set[str]:
    """Remove what the new context does not hold; the directories (relative) it removed
    something from."""
    touched: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(dest):
        rel = os.path.relpath(dirpath, dest)
        prefix = "" if rel == "." else rel + "/"
        for name in list(dirnames):
            if prefix + name not in kept:
                path = os.path.join(dirpath, name)
                if os.path.islink(path):  # a link to a directory is listed as one
                    os.unlink(path)
                else:
                    shutil.rmtree(path)
                dirnames.remove(name)
                touched.add(rel)
        for name in filenames:
            if prefix + name not in kept:
                os.unlink(os.path.join(dirpath, name))
                touched.add(rel)
    return touched


def _empty(dest: Path) -> None:
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True, exist_ok=True)
