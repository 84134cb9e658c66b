"""The build context on the worker, and COPY/ADD from it (or from another stage's files).

The context arrives as a tar, is unpacked into a private directory (names that climb out,
links through which a later entry would land outside, and device files are refused or
skipped), and is then only read: sources are resolved inside it with Docker's rules and never
through a symlink that leaves it. ``plan_copy`` turns the instruction's sources and destination
into (file on disk, path in the image) pairs; ``content_digest`` keys the cache with what the
files hold (content, mode, owner, link target; not times); ``write_copy`` adds them to a layer.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from worker.build.errors import BuildContextError, BuildFailed
from worker.build.ignore import pattern_regex
from worker.build.layerfile import add_path

_WILDCARD = re.compile(r"[*?\[]")
_URL = re.compile(r"^(?:https?|git|ssh)://|^git@", re.IGNORECASE)


EntryFilter = Callable[[tarfile.TarInfo, str], tarfile.TarInfo | None]


def checked_name(member: tarfile.TarInfo) -> str:
    """The entry's name, normalised; refused if it names something outside the context."""
    name = posixpath.normpath(member.name)
    if name.startswith(("/", "../")) or name == "..":
        raise BuildContextError(f"the context holds {member.name!r}, outside the context")
    return name


def context_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    checked_name(member)
    if member.issym():
        return member  # kept as a link; reads never follow one out of the context
    if not (member.isreg() or member.isdir() or member.islnk()):
        return None  # devices and fifos are not build material
    try:
        tarfile.data_filter(member, dest)  # no entry may land outside through a link
    except tarfile.FilterError as exc:
        raise BuildContextError(f"the context holds {member.name!r}: {exc}") from exc
    return member


def unpack_context(archive: BinaryIO, dest: Path, *,
                   entry_filter: EntryFilter = context_filter,
                   tar_class: type[tarfile.TarFile] = tarfile.TarFile) -> None:
    """Unpack the context tar (plain or compressed) read front to back from ``archive`` (the
    client's stream as it arrives: nothing is spooled first) into ``dest``; ``entry_filter``
    judges each entry, ``tar_class`` writes them (``context_reuse`` adds its own work to
    both)."""
    try:
        with tar_class.open(fileobj=archive, mode="r|*") as tar:
            tar.extractall(dest, filter=entry_filter)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BuildContextError(f"the build context is not a readable tar: {exc}") from exc


@dataclass(frozen=True, slots=True)
class CopyItem:
    """One thing to put in the layer: ``source`` on disk, ``target`` (absolute) in the image;
    ``archive`` when ADD unpacks it instead."""

    source: Path
    target: str
    archive: bool = False


def _inside(root: Path, path: Path) -> bool:
    real = os.path.realpath(path)
    base = os.path.realpath(root)
    return real == base or real.startswith(base.rstrip("/") + "/")


def _all_paths(root: Path) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        for name in sorted(dirnames + filenames):
            found.append(name if rel == "." else f"{rel}/{name}")
    return found


def _glob(root: Path, pattern: str) -> list[str]:
    regex = pattern_regex(pattern)
    return [p for p in _all_paths(root) if regex.match(p)]


def is_archive(path: Path) -> bool:
    try:
        return path.is_file() and not path.is_symlink() and tarfile.is_tarfile(path)
    except OSError:
        return False


def plan_copy(root: Path, sources: list[str], dest: str, workdir: str, *, keyword: str,
              is_dir_in_image: Callable[[str], bool], add: bool = False) -> list[CopyItem]:
    """What COPY/ADD ``sources`` ``dest`` copies, by Docker's rules: a directory's contents
    (not the directory), several sources only into a directory (``dest`` ending in ``/``),
    a relative ``dest`` under the WORKDIR, a wildcard matching by path."""
    if not dest.startswith("/"):
        dest = posixpath.join(workdir or "/", dest)
    into_dir = dest.endswith("/") or dest.endswith("/.") or is_dir_in_image(dest)
    dest = posixpath.normpath(dest)
    matched: list[str] = []
    for source in sources:
        if _URL.match(source):
            raise BuildFailed(f"{keyword} {source}: downloading needs the internet, which "
                              "shoal's builders do not reach; fetch it into the build context "
                              "and COPY it from there")
        clean = posixpath.normpath("/" + source).lstrip("/") or "."
        if _WILDCARD.search(clean):
            found = _glob(root, clean)
            if not found:
                raise BuildFailed(f"{keyword} failed: no source files were specified "
                                  f"(nothing matches {source!r})")
            matched.extend(found)
        else:
            if not os.path.lexists(root / clean):
                raise BuildFailed(f"{keyword} failed: file not found in build context or "
                                  f"excluded by .dockerignore: stat {source}: file does not "
                                  "exist")
            matched.append(clean)
    if len(matched) > 1 and not into_dir:
        raise BuildFailed(f"When using {keyword} with more than one source file, the "
                          "destination must be a directory and end with a /")
    items: list[CopyItem] = []
    for rel in matched:
        path = root / rel
        if not _inside(root, path.parent if path.is_symlink() else path):
            raise BuildFailed(f"{keyword} failed: {rel} is outside the build context")
        if path.is_dir() and not path.is_symlink():
            items.append(CopyItem(path, dest))
            for sub in _all_paths(path):
                items.append(CopyItem(path / sub, posixpath.join(dest, sub)))
        elif add and is_archive(path):
            items.append(CopyItem(path, dest, archive=True))
        else:
            name = posixpath.basename(rel) if rel != "." else ""
            items.append(CopyItem(path, posixpath.join(dest, name) if into_dir else dest))
    return items


def content_digest(items: list[CopyItem], owner: tuple[int, int] | None,
                   chmod: int | None) -> str:
    """The cache key's share of COPY/ADD: every entry's target, type, mode, owner and
    content (or link target), never its times."""
    h = hashlib.sha256()
    for item in items:
        st = os.lstat(item.source)
        mode = stat.S_IMODE(st.st_mode) if chmod is None else chmod
        uid, gid = owner or (0, 0)
        h.update(f"{item.target}\0{stat.S_IFMT(st.st_mode)}\0{mode:o}\0{uid}:{gid}\0"
                 f"{int(item.archive)}\0".encode())
        if stat.S_ISLNK(st.st_mode):
            h.update(os.readlink(item.source).encode())
        elif stat.S_ISREG(st.st_mode):
            with open(item.source, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
        h.update(b"\n")
    return f"sha256:{h.hexdigest()}"


def _parents(target: str) -> list[str]:
    parents = []
    parent = posixpath.dirname(target)
    while parent not in ("/", ""):
        parents.append(parent)
        parent = posixpath.dirname(parent)
    return list(reversed(parents))


def write_copy(tar: tarfile.TarFile, items: list[CopyItem], owner: tuple[int, int] | None,
               chmod: int | None, exists_in_image: Callable[[str], bool]) -> None:
    """Add ``items`` to the layer; missing parent directories are made (0755, root), as
    Docker makes them; an ADD archive is unpacked under its target."""
    made: set[str] = set()
    uid, gid = owner or (0, 0)
    for item in items:
        for parent in _parents(item.target):
            if parent not in made and not exists_in_image(parent):
                info = tarfile.TarInfo(parent.lstrip("/"))
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            made.add(parent)
        if item.archive:
            _unpack_into(tar, item.source, item.target)
            continue
        if item.target == "/":
            continue  # the root directory itself keeps its own mode and owner
        made.add(item.target)
        add_path(tar, str(item.source), item.target.lstrip("/"), owner=(uid, gid), mode=chmod)


def _unpack_into(tar: tarfile.TarFile, archive: Path, target: str) -> None:
    try:
        with tarfile.open(archive, mode="r:*") as src:
            for member in src:
                name = posixpath.normpath(posixpath.join(target, member.name)).lstrip("/")
                if not (name + "/").startswith(target.strip("/") + "/") and target != "/":
                    raise BuildFailed(f"ADD {archive.name}: the archive entry {member.name!r} "
                                      "climbs out of the destination")
                if member.islnk():
                    member.linkname = posixpath.normpath(
                        posixpath.join(target, member.linkname)).lstrip("/")
                member.name = name
                data = src.extractfile(member) if member.isreg() else None
                tar.addfile(member, data)
    except (tarfile.TarError, EOFError) as exc:
        raise BuildFailed(f"ADD {archive.name}: cannot unpack the archive: {exc}") from exc
