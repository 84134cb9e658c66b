"""Decide, without touching the disk, whether each entry of a layer tarball is safe, and what it
becomes (a file, a directory, a whiteout...). This is the pure core of layer extraction.

The checker sees entries in archive order and keeps just enough state to catch escapes that
only show across entries: a symlink (or file) created earlier in this layer that a later entry
tries to write *through*, and hardlinks that point anywhere but a regular file already written
by this layer. Symlink targets themselves are not judged: the extractor never follows a link,
and the runtime resolves them inside the container root, so ``/etc -> /host`` is harmless.
Lower layers are the extractor's business: it walks without following links (see ``unpack``).
"""

from __future__ import annotations

import enum
import tarfile
from dataclasses import dataclass

from worker.images.errors import LayerRejected

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
MiB = 1024 ** 2
GiB = 1024 ** 3

Path_ = tuple[str, ...]  # a normalised path inside the layer, as components


@dataclass(frozen=True, slots=True)
class LayerLimits:
    """Bounds on what a layer and an image may contain; all checked while the layer is scanned
    at import or fetch (and again at unpack), before bytes hit the disk.

    The defaults leave room for the largest images in common use (CUDA and ML framework images
    hold single layers of 3-5 GiB unpacked and reach 10-15 GiB in all) and refuse what only an
    attack needs: docker itself sets no bound, so these follow what real images need. The
    expansion bound catches a decompression bomb however its size is spread over files: gzip
    cannot do better than ~1000:1, real layers unpack to 2-10 times their stored size, and
    text-heavy ones to some tens; so a layer that has unpacked to more than ``expansion_floor``
    bytes and to more than ``max_expansion`` times the bytes read to get there is refused
    then, without reading the rest.
    """

    max_total_bytes: int = 8 * GiB       # one layer: sum of its regular file sizes
    max_file_bytes: int = 4 * GiB        # one regular file
    max_entries: int = 500_000           # entries of one layer
    max_path_bytes: int = 4096
    allow_devices: bool = False          # char/block nodes in the tar (whiteouts never count)
    max_image_bytes: int = 16 * GiB      # one image: sum of its layers' regular file sizes
    max_expansion: int = 100             # unpacked tar bytes per stored (compressed) byte
    expansion_floor: int = 64 * MiB      # a layer unpacked to no more than this is never judged

    def __post_init__(self) -> None:
        for name in ("max_total_bytes", "max_file_bytes", "max_entries", "max_path_bytes",
                     "max_image_bytes", "max_expansion"):
            if getattr(self, name) < 1:
                raise ValueError(f"image limit {name} must be at least 1")
        if self.expansion_floor < 0:
            raise ValueError("image limit expansion_floor must not be negative")

    @property
    def max_stream_bytes(self) -> int:
        """Bytes of uncompressed tar allowed: contents plus headers and padding."""
        return self.max_total_bytes + (self.max_entries + 16) * 2048


class Kind(enum.Enum):
    DIR = "dir"
    FILE = "file"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    FIFO = "fifo"
    CHAR = "char"
    BLOCK = "block"
    WHITEOUT = "whiteout"   # hide ``path`` of the lower layers
    OPAQUE = "opaque"       # hide everything below directory ``path`` in the lower layers
    SKIP = "skip"           # nothing to do (the root's own entry, aufs metadata, shadowed whiteout)


@dataclass(frozen=True, slots=True)
class Header:
    """The parts of a tar header the decision needs (so tests can make them without tarfile)."""

    name: str
    type: bytes
    size: int = 0
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0

    @classmethod
    def of(cls, member: tarfile.TarInfo) -> Header:
        return cls(member.name, member.type, member.size, member.linkname, member.devmajor,
                   member.devminor)


@dataclass(frozen=True, slots=True)
class Action:
    kind: Kind
    path: Path_
    link: Path_ = ()        # hardlink target
    target: str = ""        # symlink target, verbatim


_FILE_TYPES = {tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE}


def reject(entry: str, reason: str) -> LayerRejected:
    shown = entry[:300]
    return LayerRejected(f"layer entry {shown!r} rejected: {reason}", entry=shown, reason=reason)


def normalise(name: str, *, entry: str, limits: LayerLimits) -> Path_:
    """Components of an archive name, refusing absolute paths and any ``..``."""
    if "\x00" in name:
        raise reject(entry, "NUL byte in path")
    if len(name.encode("utf-8", "surrogateescape")) > limits.max_path_bytes:
        raise reject(entry, f"path longer than {limits.max_path_bytes} bytes")
    if name.startswith("/"):
        raise reject(entry, "absolute path")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise reject(entry, "path traversal ('..')")
    return parts


def _describe(kind: Kind) -> str:
    return {Kind.SYMLINK: "a symlink", Kind.HARDLINK: "a hardlink"}.get(kind, f"a {kind.value}")


class LayerChecker:
    """Validates one layer's entries in order; ``check`` returns the action or raises."""

    def __init__(self, limits: LayerLimits) -> None:
        self.limits = limits
        self.entries = 0
        self.total_bytes = 0
        self._non_dirs: dict[Path_, Kind] = {}   # paths that cannot be a parent (this layer)
        self._files: set[Path_] = set()          # regular files: valid hardlink targets
        self._dirs: set[Path_] = set()
        self.created: set[Path_] = set()         # everything this layer put in place

    def check(self, header: Header) -> Action:
        entry = header.name
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise reject(entry, f"more than {self.limits.max_entries} entries")
        path = normalise(header.name, entry=entry, limits=self.limits)
        if path and path[-1].startswith(WHITEOUT_PREFIX):
            return self._whiteout(entry, path)
        if not path:
            if header.type == tarfile.DIRTYPE:
                return Action(Kind.SKIP, ())
            raise reject(entry, "names the layer root but is not a directory")
        self._check_parents(entry, path)
        kind = self._kind(entry, header)
        action = Action(kind, path)
        if kind is Kind.FILE:
            if header.size > self.limits.max_file_bytes:
                raise reject(entry, f"file of {header.size} bytes is over the "
                                    f"{self.limits.max_file_bytes}-byte limit")
            self.total_bytes += header.size
            if self.total_bytes > self.limits.max_total_bytes:
                raise reject(entry, f"layer contents exceed {self.limits.max_total_bytes} bytes")
        elif kind is Kind.SYMLINK:
            if not header.linkname:
                raise reject(entry, "symlink with an empty target")
            if len(header.linkname.encode("utf-8", "surrogateescape")) > self.limits.max_path_bytes:
                raise reject(entry, "symlink target too long")
            if "\x00" in header.linkname:
                raise reject(entry, "NUL byte in symlink target")
            action = Action(kind, path, target=header.linkname)
        elif kind is Kind.HARDLINK:
            link = normalise(header.linkname, entry=entry, limits=self.limits)
            if link not in self._files or link == path:
                raise reject(entry, f"hardlink target {header.linkname[:200]!r} is not a "
                                    "regular file earlier in this layer")
            action = Action(kind, path, link=link)
        elif kind in (Kind.CHAR, Kind.BLOCK) and not self.limits.allow_devices:
            raise reject(entry, f"device node ({kind.value} {header.devmajor}:"
                                f"{header.devminor}) not allowed")
        self._record(path, kind)
        return action

    def _kind(self, entry: str, header: Header) -> Kind:
        t = header.type
        if t in _FILE_TYPES:
            return Kind.FILE
        kinds = {tarfile.DIRTYPE: Kind.DIR, tarfile.SYMTYPE: Kind.SYMLINK,
                 tarfile.LNKTYPE: Kind.HARDLINK, tarfile.FIFOTYPE: Kind.FIFO,
                 tarfile.CHRTYPE: Kind.CHAR, tarfile.BLKTYPE: Kind.BLOCK}
        kind = kinds.get(t)
        if kind is None:
            raise reject(entry, f"unsupported entry type {t!r}")
        return kind

    def _check_parents(self, entry: str, path: Path_) -> None:
        for depth in range(1, len(path)):
            prefix = path[:depth]
            kind = self._non_dirs.get(prefix)
            if kind is not None:
                raise reject(entry, f"parent {'/'.join(prefix)!r} is {_describe(kind)} created "
                                    "earlier in this layer; writing through it could escape")

    def _record(self, path: Path_, kind: Kind) -> None:
        # Parents exist as directories from now on, made explicitly or not.
        self._dirs.update(path[:depth] for depth in range(1, len(path)))
        if kind is Kind.DIR:
            self._non_dirs.pop(path, None)
            self._files.discard(path)
            self._dirs.add(path)
        else:
            if path in self._dirs:
                # A non-directory replaces a directory: what was below it is gone.
                n = len(path)
                self._dirs = {d for d in self._dirs if d[:n] != path}
                self._files = {f for f in self._files if f[:n] != path}
                self.created = {c for c in self.created if c[:n] != path or c == path}
                self._non_dirs = {p: k for p, k in self._non_dirs.items() if p[:n] != path}
            self._non_dirs[path] = kind
            if kind in (Kind.FILE, Kind.HARDLINK):
                self._files.add(path)
            else:
                self._files.discard(path)
        self.created.add(path)

    def _whiteout(self, entry: str, path: Path_) -> Action:
        base = path[-1]
        parent = path[:-1]
        self._check_parents(entry, path)
        if base == OPAQUE_MARKER:
            return Action(Kind.OPAQUE, parent)
        if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return Action(Kind.SKIP, path)  # aufs bookkeeping (.wh..wh.plnk etc.): no meaning here
        hidden = base[len(WHITEOUT_PREFIX):]
        if hidden in ("", ".", ".."):
            raise reject(entry, "whiteout names no file")
        target = (*parent, hidden)
        if target in self.created:
            # Whiteouts hide lower layers only; this layer's own entry already does that.
            return Action(Kind.SKIP, target)
        return Action(Kind.WHITEOUT, target)
