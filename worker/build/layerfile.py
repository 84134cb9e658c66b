"""Writing new layers: a tar written into the store's ingest directory, stored as an
uncompressed OCI layer blob (its digest is its diff id). The diff of a RUN is the overlay's
upper directory in OCI form: a whiteout char device becomes ``.wh.<name>``, an opaque
directory gets ``.wh..wh..opq``."""

from __future__ import annotations

import contextlib
import os
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from worker.build.reproducible import ClampedTar
from worker.build.state import Layer
from worker.images.oci import MT_OCI_LAYER, Descriptor
from worker.images.store import ImageStore

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"
OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")


@contextlib.contextmanager
def new_layer(store: ImageStore, *, mtime_limit: int | None = None
              ) -> Iterator[tuple[tarfile.TarFile, Callable[[], Layer]]]:
    """``with new_layer(store) as (tar, commit): ...; layer = commit()`` — entries written to
    ``tar`` become a blob once ``commit`` is called (the tar is closed then); without it,
    nothing is stored. With ``mtime_limit`` (a reproducible build's epoch) no entry's mtime
    is later than it."""
    fd, name = tempfile.mkstemp(dir=store.blobs.ingest, prefix="build-")
    path = Path(name)
    out = os.fdopen(fd, "wb")
    tar = ClampedTar(fileobj=out, mode="w", format=tarfile.PAX_FORMAT)
    tar.mtime_limit = mtime_limit
    done: list[Layer] = []

    def commit() -> Layer:
        tar.close()
        out.close()
        with path.open("rb") as f:
            digest, size = store.blobs.put(f)
        done.append(Layer(Descriptor(MT_OCI_LAYER, digest, size), digest))
        return done[0]

    try:
        yield tar, commit
    finally:
        if not done:
            tar.close()
            out.close()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _opaque(path: str) -> bool:
    for name in OPAQUE_XATTRS:
        with contextlib.suppress(OSError):
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
    return False


def add_path(tar: tarfile.TarFile, path: str, arcname: str, *,
             owner: tuple[int, int] | None = None, mode: int | None = None) -> None:
    """One file, directory or link as it is on disk (content included); ``owner`` and
    ``mode`` replace the disk's."""
    info = tar.gettarinfo(path, arcname)
    info.uname = info.gname = ""
    if owner is not None:
        info.uid, info.gid = owner
    if mode is not None and not info.issym():
        info.mode = mode
    if info.isreg():
        with open(path, "rb") as f:
            tar.addfile(info, f)
    else:
        tar.addfile(info)


def write_upper(tar: tarfile.TarFile, upper: Path) -> int:
    """The overlay upper directory as an OCI layer; returns how many entries it had."""
    count = 0
    for dirpath, dirnames, filenames in os.walk(upper):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, upper)
        prefix = "" if rel_dir == "." else rel_dir + "/"
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            count += 1
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                tar.addfile(tarfile.TarInfo(f"{prefix}{WHITEOUT_PREFIX}{name}"))
                continue
            add_path(tar, full, prefix + name)
            if stat.S_ISDIR(st.st_mode) and _opaque(full):
                marker = tarfile.TarInfo(f"{prefix}{name}/{OPAQUE}")
                tar.addfile(marker)
    return count
