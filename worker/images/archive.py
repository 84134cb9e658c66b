"""Read-only access to the files of an image archive: a directory or a tar (optionally
compressed), looked up by the names that ``index.json``/``manifest.json`` give.

Nothing is extracted to disk here: files are streamed straight into the blob store, so a hostile
name can at most fail to be found. Names are normalised and must stay inside the archive; a
symlink member (old ``docker save`` links duplicate layers) is followed inside the archive only.
"""

from __future__ import annotations

import os
import posixpath
import tarfile
from pathlib import Path
from typing import BinaryIO, Protocol, cast

from worker.images.errors import InvalidImage

MAX_LINK_HOPS = 8


def clean_name(name: str) -> str | None:
    """``name`` as a relative archive path, or None if it is absolute or climbs out."""
    if not name or name.startswith("/") or "\x00" in name:
        return None
    norm = posixpath.normpath(name)
    if norm == ".." or norm.startswith("../") or norm == ".":
        return None
    return norm


class ArchiveSource(Protocol):
    def names(self) -> set[str]: ...
    def open(self, name: str) -> BinaryIO: ...
    def read(self, name: str, limit: int) -> bytes: ...
    def close(self) -> None: ...


def _missing(name: str) -> InvalidImage:
    return InvalidImage(f"archive has no file {name[:300]!r}", details={"file": name[:300]})


def _read_limited(f: BinaryIO, name: str, limit: int) -> bytes:
    data = f.read(limit + 1)
    if len(data) > limit:
        raise InvalidImage(f"{name[:300]!r} is larger than {limit} bytes")
    return data


class DirSource:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, name: str) -> Path:
        clean = clean_name(name)
        if clean is None:
            raise _missing(name)
        path = (self.root / clean).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            raise _missing(name)
        return path

    def names(self) -> set[str]:
        return {p.name for p in self.root.iterdir()}

    def open(self, name: str) -> BinaryIO:
        return self._path(name).open("rb")

    def read(self, name: str, limit: int) -> bytes:
        with self.open(name) as f:
            return _read_limited(f, name, limit)

    def close(self) -> None:
        return None


class TarSource:
    def __init__(self, path: Path) -> None:
        try:
            self.tar = tarfile.open(path, "r:*")  # noqa: SIM115 - lives as long as the source
            self.members: dict[str, tarfile.TarInfo] = {}
            for member in self.tar.getmembers():
                clean = clean_name(member.name)
                if clean is not None:
                    self.members[clean] = member
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise InvalidImage(f"{path.name}: not a readable tar archive: {exc}") from exc

    def names(self) -> set[str]:
        return set(self.members)

    def _member(self, name: str) -> tarfile.TarInfo:
        clean = clean_name(name)
        for _ in range(MAX_LINK_HOPS):
            member = self.members.get(clean) if clean is not None else None
            if member is None:
                raise _missing(name)
            if member.isreg():
                return member
            if not member.issym() or clean is None:
                raise _missing(name)
            clean = clean_name(posixpath.join(posixpath.dirname(clean), member.linkname))
        raise _missing(name)

    def open(self, name: str) -> BinaryIO:
        f = self.tar.extractfile(self._member(name))
        if f is None:
            raise _missing(name)
        return cast(BinaryIO, f)

    def read(self, name: str, limit: int) -> bytes:
        with self.open(name) as f:
            return _read_limited(f, name, limit)

    def close(self) -> None:
        self.tar.close()


def open_source(path: Path) -> ArchiveSource:
    if path.is_dir():
        return DirSource(path)
    if not os.path.isfile(path):
        raise InvalidImage(f"{path}: no such file or directory")
    return TarSource(path)
