"""Copy a directory tree exactly: owners, modes, times, symlinks (never followed), hardlinks,
device nodes, fifos and extended attributes. Used to build per-container copies and
applied-layer snapshots where overlayfs is not available; Python-only so it runs anywhere.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat

CHUNK = 1024 * 1024


def _copy_xattrs(src: str, dst: str, *, symlink: bool) -> None:
    try:
        names = os.listxattr(src, follow_symlinks=not symlink)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EPERM):
            return
        raise
    for name in names:
        try:
            os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=not symlink),
                        follow_symlinks=not symlink)
        except OSError as exc:
            # Not every filesystem takes every namespace (e.g. trusted.* unprivileged).
            if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                raise


def copy_tree(src: str, dst: str) -> None:
    """Copy the contents of directory ``src`` into ``dst`` (created if missing)."""
    as_root = os.geteuid() == 0
    links: dict[tuple[int, int], str] = {}
    dirs: list[tuple[str, os.stat_result]] = []

    def meta(path: str, st: os.stat_result, *, symlink: bool) -> None:
        if as_root:
            os.chown(path, st.st_uid, st.st_gid, follow_symlinks=False)
        if not symlink:
            os.chmod(path, stat.S_IMODE(st.st_mode))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)

    def walk(s: str, d: str) -> None:
        with os.scandir(s) as entries:
            for entry in entries:
                sp, dp = entry.path, os.path.join(d, entry.name)
                st = entry.stat(follow_symlinks=False)
                mode = st.st_mode
                if stat.S_ISDIR(mode):
                    if not os.path.isdir(dp) or os.path.islink(dp):
                        os.mkdir(dp, 0o700)
                    _copy_xattrs(sp, dp, symlink=False)
                    walk(sp, dp)
                    dirs.append((dp, st))
                    continue
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(dp)
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in links:
                    os.link(links[key], dp, follow_symlinks=False)
                    continue
                if stat.S_ISLNK(mode):
                    os.symlink(os.readlink(sp), dp)
                elif stat.S_ISREG(mode):
                    with open(sp, "rb") as fin, open(dp, "xb") as fout:
                        shutil.copyfileobj(fin, fout, CHUNK)
                elif stat.S_ISFIFO(mode):
                    os.mkfifo(dp, 0o600)
                elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                    os.mknod(dp, stat.S_IFMT(mode) | 0o600, st.st_rdev)
                else:
                    continue  # sockets are not content
                links[key] = dp
                _copy_xattrs(sp, dp, symlink=stat.S_ISLNK(mode))
                meta(dp, st, symlink=stat.S_ISLNK(mode))

    os.makedirs(dst, exist_ok=True)
    walk(src, dst)
    for path, st in reversed(dirs):
        meta(path, st, symlink=False)
    top = os.stat(src)
    meta(dst, top, symlink=False)
