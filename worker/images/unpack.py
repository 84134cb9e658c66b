"""Extract one layer tarball (gzip, zstd or plain) into a directory, safely.

Every entry is first judged by ``tarsafety.LayerChecker``; the filesystem work then never
follows a symlink: paths are walked one component at a time with ``O_NOFOLLOW`` relative to
directory file descriptors, so even a link left by a lower layer cannot redirect a write. A
non-directory found where a directory is needed (a lower layer's symlink or file) is replaced by
a directory, which is what overlayfs shows in the same situation, so both storage forms agree.

Two output forms: ``OVERLAY`` keeps this layer alone, with whiteouts as overlayfs expects them
(a 0/0 character device; ``trusted.overlay.opaque=y`` on opaque directories); ``APPLIED``
extracts on top of a copy of the lower layers and carries the whiteouts out as deletions.

The compressed stream and the tar stream are both hashed as they are read, and checked against
the blob digest and the diff id when given. The caller extracts into a fresh temp directory and
discards it on any error (see ``layers``): a rejected layer leaves nothing behind.
"""

from __future__ import annotations

import enum
import errno
import gzip
import hashlib
import io
import os
import shutil
import stat
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO, cast

from isal import isal_zlib

from worker.images.digest import ALGORITHM
from worker.images.errors import LayerRejected
from worker.images.tarsafety import Action, Header, Kind, LayerChecker, LayerLimits, Path_

CHUNK = 1024 * 1024
OPAQUE_XATTR = "trusted.overlay.opaque"
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# Extended attributes a layer may carry (file capabilities, user data). trusted.* and
# security.selinux are refused: trusted.overlay.* in a tar would forge overlay metadata.
_XATTR_ALLOWED = ("security.capability", "user.")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Form(enum.Enum):
    OVERLAY = "overlay"
    APPLIED = "applied"


@dataclass(frozen=True, slots=True)
class LayerStats:
    blob_digest: str
    diff_id: str
    entries: int
    content_bytes: int


class HashingReader(io.RawIOBase):
    """Hashes and counts what passes through; refuses to pass more than ``limit`` bytes."""

    def __init__(self, raw: BinaryIO, limit: int | None, what: str) -> None:
        super().__init__()
        self.raw = raw
        self.limit = limit
        self.what = what
        self.hasher = hashlib.sha256()
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.raw.read(len(buffer))
        n = len(data)
        self.count += n
        if self.limit is not None and self.count > self.limit:
            raise reject_stream(f"{self.what} is larger than {self.limit} bytes")
        self.hasher.update(data)
        buffer[:n] = data
        return n

    @property
    def digest(self) -> str:
        return f"{ALGORITHM}:{self.hasher.hexdigest()}"

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


class ExpansionGuard(HashingReader):
    """The decompressed side of a layer: bounded in size, and refused as soon as it has grown
    past ``expansion_floor`` to more than ``max_expansion`` times the stored bytes read so far
    (a decompression bomb is caught early, whatever its size is spread over)."""

    def __init__(self, raw: BinaryIO, limits: LayerLimits, stored: HashingReader) -> None:
        super().__init__(raw, limits.max_stream_bytes, "uncompressed layer")
        self.stored = stored
        self.floor = limits.expansion_floor
        self.ratio = limits.max_expansion

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = super().readinto(buffer)
        if self.count > self.floor and self.count > self.ratio * max(1, self.stored.count):
            raise reject_stream(
                f"unpacks to more than {self.ratio} times its stored size ({self.count} bytes "
                f"from {self.stored.count}): a decompression bomb?")
        return n


def reject_stream(reason: str, entry: str = "") -> LayerRejected:
    where = f"after entry {entry[:300]!r}: " if entry else ""
    return LayerRejected(f"layer rejected: {where}{reason}", entry=entry[:300], reason=reason)


def compression_of(head: bytes) -> str:
    """``gzip``, ``zstd`` or ``none``, from the first bytes of a blob."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"


class GzipStream(io.RawIOBase):
    """A gzip stream (one member or several, back to back) inflated directly, a MiB of input
    at a time: ``gzip.GzipFile`` works in 8 KiB steps of Python code, which made a layer's
    decompression mostly interpreter overhead (and GIL time, while other threads wait for
    it). The inflater is ISA-L's (python-isal, zlib's API): 2 to 4.5 times zlib's speed on
    layers; it checks each member's CRC-32 and length as zlib does. Unpacking reads through
    it; a scan, which needs no file contents, reads gzip layers with ``gzipscan``."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self.raw = raw
        self.inflate = isal_zlib.decompressobj(wbits=31)
        self.in_member = False  # input fed to ``inflate`` and its member not ended yet
        self.input = b""  # compressed bytes read and not yet given to ``inflate``
        self.pending = b""
        self.ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self.pending and not self.ended:
            if not self.input:
                self.input = self.raw.read(CHUNK)
                if not self.input:
                    if self.in_member:
                        raise EOFError("compressed file ended before the end-of-stream "
                                       "marker was reached")
                    self.ended = True
                    break
            if not self.in_member:
                self.input = self.input.lstrip(b"\0")  # padding between or after members
                if not self.input:
                    continue
                self.in_member = True
            self.pending = self.inflate.decompress(self.input, CHUNK)
            if self.inflate.eof:  # a member ended; what follows may be another
                self.input = self.inflate.unused_data
                self.inflate = isal_zlib.decompressobj(wbits=31)
                self.in_member = False
            else:
                self.input = self.inflate.unconsumed_tail
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n


def decompressor(kind: str, stream: BinaryIO) -> BinaryIO:
    if kind == "gzip":
        return cast(BinaryIO, io.BufferedReader(GzipStream(stream), CHUNK))
    if kind == "zstd":
        try:
            import zstandard
        except ImportError as exc:  # optional dependency: say what is missing
            raise LayerRejected("zstd-compressed layer, but the 'zstandard' package is not "
                                "installed", reason="zstd unsupported") from exc
        reader = zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True,
                                                            closefd=False)
        return cast(BinaryIO, reader)
    return stream


class LayerStream:
    """A layer blob read once, as a tar stream: hashed as stored and once decompressed, the
    decompressed size bounded; ``finish`` reads what follows the tar, ``stats`` checks the
    digests against what the image says."""

    def __init__(self, blob: BinaryIO, limits: LayerLimits) -> None:
        self.outer = HashingReader(blob, None, "layer blob")
        self.buffered = io.BufferedReader(self.outer, CHUNK)
        self.kind = compression_of(self.buffered.peek(4)[:4])
        self.inner = ExpansionGuard(decompressor(self.kind, cast(BinaryIO, self.buffered)),
                                     limits, self.outer)

    def tar(self) -> tarfile.TarFile:
        return tarfile.open(fileobj=cast(BinaryIO, self.inner), mode="r|", errorlevel=2,
                            bufsize=CHUNK)

    def finish(self) -> None:
        self.inner.drain()
        self.buffered.read()  # anything after the compressed stream still belongs to the blob

    def corrupt(self, exc: BaseException, last: str) -> LayerRejected:
        return reject_stream(f"corrupt or truncated layer ({self.kind}): {exc}", last)

    def stats(self, checker: LayerChecker, blob_digest: str | None,
              diff_id: str | None) -> LayerStats:
        if blob_digest is not None and self.outer.digest != blob_digest:
            raise reject_stream(f"blob digest is {self.outer.digest}, expected {blob_digest}")
        if diff_id is not None and self.inner.digest != diff_id:
            raise reject_stream(f"diff id is {self.inner.digest}, expected {diff_id}")
        return LayerStats(self.outer.digest, self.inner.digest, checker.entries,
                          checker.total_bytes)


# isal's stubs declare its error as an instance; it is the exception class IsalError.
_ISAL_ERROR = cast(type[BaseException], isal_zlib.error)


def decompress_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [EOFError, zlib.error, _ISAL_ERROR,
                                         gzip.BadGzipFile, tarfile.TarError]
    try:
        import zstandard
        errors.append(zstandard.ZstdError)
    except ImportError:
        pass
    return tuple(errors)


def unpack_layer(blob: BinaryIO, dest: str, *, form: Form, limits: LayerLimits,
                 blob_digest: str | None = None, diff_id: str | None = None) -> LayerStats:
    """Extract ``blob`` into the existing directory ``dest``; raises ``LayerRejected``."""
    stream = LayerStream(blob, limits)
    checker = LayerChecker(limits)
    last = ""
    root_fd = os.open(dest, _DIR_FLAGS)
    try:
        writer = _Writer(root_fd, form, checker)
        try:
            with stream.tar() as archive:
                for member in archive:
                    last = member.name
                    action = checker.check(Header.of(member))
                    writer.apply(action, member, archive)
                writer.finish()
            stream.finish()
        except LayerRejected:
            raise
        except decompress_errors() as exc:
            raise stream.corrupt(exc, last) from exc
        except OSError as exc:
            raise LayerRejected(f"layer entry {last[:300]!r} could not be written: {exc}",
                                entry=last[:300], reason=exc.strerror or str(exc)) from exc
    finally:
        os.close(root_fd)
    return stream.stats(checker, blob_digest, diff_id)


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


class _Writer:
    """Carries out checked actions below ``root_fd``; never follows a symlink."""

    def __init__(self, root_fd: int, form: Form, checker: LayerChecker) -> None:
        self.root_fd = root_fd
        self.form = form
        self.checker = checker
        self.as_root = os.geteuid() == 0
        self.dir_meta: list[tuple[Path_, tarfile.TarInfo]] = []

    # --- walking ---------------------------------------------------------------------------
    @contextmanager
    def _dir(self, path: Path_, *, create: bool = True) -> Iterator[int | None]:
        """An fd for directory ``path``, made (replacing a non-directory) when ``create``."""
        fd = os.dup(self.root_fd)
        try:
            for name in path:
                nxt = self._open_child_dir(fd, name, create)
                os.close(fd)
                fd = nxt
                if fd < 0:
                    break
            yield fd if fd >= 0 else None
        finally:
            if fd >= 0:
                os.close(fd)

    def _open_child_dir(self, fd: int, name: str, create: bool) -> int:
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            if not create:
                return -1
            os.mkdir(name, 0o755, dir_fd=fd)
        except OSError as exc:
            if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise
            if not create:
                return -1
            # A lower layer's symlink/file (or a whiteout) where this layer needs a
            # directory: replace it, as overlayfs would show this layer's directory.
            was_whiteout = _is_whiteout(os.stat(name, dir_fd=fd, follow_symlinks=False))
            os.unlink(name, dir_fd=fd)
            os.mkdir(name, 0o755, dir_fd=fd)
            if was_whiteout:
                self._mark_opaque(fd, name)
        return os.open(name, _DIR_FLAGS, dir_fd=fd)

    def _mark_opaque(self, parent_fd: int, name: str) -> None:
        # A directory that replaces a whiteout must hide the lower directory's contents.
        if self.form is Form.OVERLAY:
            child = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
            try:
                os.setxattr(child, OPAQUE_XATTR, b"y")
            finally:
                os.close(child)

    @staticmethod
    def _clear(parent_fd: int, name: str, keep_dir: bool) -> bool:
        """Remove what is at ``name``; returns True if it was a whiteout device."""
        try:
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if not keep_dir:
                shutil.rmtree(name, dir_fd=parent_fd)
            return False
        os.unlink(name, dir_fd=parent_fd)
        return _is_whiteout(st)

    # --- actions ---------------------------------------------------------------------------
    def apply(self, action: Action, member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
        kind = action.kind
        if kind is Kind.SKIP:
            return
        if kind is Kind.WHITEOUT:
            self._whiteout(action.path)
            return
        if kind is Kind.OPAQUE:
            self._opaque(action.path)
            return
        with self._dir(action.path[:-1]) as pfd:
            assert pfd is not None
            name = action.path[-1]
            was_whiteout = self._clear(pfd, name, keep_dir=kind is Kind.DIR)
            if kind is Kind.DIR:
                if not _exists(pfd, name):
                    os.mkdir(name, 0o700, dir_fd=pfd)
                if was_whiteout:
                    self._mark_opaque(pfd, name)
                self.dir_meta.append((action.path, member))  # modes/times once children exist
                return
            if kind is Kind.FILE:
                self._file(pfd, name, member, archive)
                return
            if kind is Kind.SYMLINK:
                os.symlink(action.target, name, dir_fd=pfd)
            elif kind is Kind.HARDLINK:
                with self._dir(action.link[:-1], create=False) as sfd:
                    if sfd is None:
                        raise FileNotFoundError(errno.ENOENT, "hardlink target vanished")
                    os.link(action.link[-1], name, src_dir_fd=sfd, dst_dir_fd=pfd,
                            follow_symlinks=False)
                return  # a hardlink shares its target's metadata
            elif kind is Kind.FIFO:
                os.mkfifo(name, 0o600, dir_fd=pfd)
            else:
                node = stat.S_IFCHR if kind is Kind.CHAR else stat.S_IFBLK
                os.mknod(name, node | 0o600, os.makedev(member.devmajor, member.devminor),
                         dir_fd=pfd)
            self._meta_path(pfd, name, member, symlink=kind is Kind.SYMLINK)

    def _file(self, pfd: int, name: str, member: tarfile.TarInfo,
              archive: tarfile.TarFile) -> None:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=pfd)
        try:
            source = archive.extractfile(member)
            if source is not None:
                with os.fdopen(os.dup(fd), "wb") as out:
                    shutil.copyfileobj(source, out, CHUNK)
            if self.as_root:
                os.fchown(fd, member.uid, member.gid)
            self._xattrs(fd, member)
            os.fchmod(fd, member.mode & 0o7777)  # after chown, which clears setuid bits
            os.utime(fd, (member.mtime, member.mtime))
        finally:
            os.close(fd)

    def _meta_path(self, pfd: int, name: str, member: tarfile.TarInfo, *, symlink: bool) -> None:
        if self.as_root:
            os.chown(name, member.uid, member.gid, dir_fd=pfd, follow_symlinks=False)
        if not symlink:  # Linux has no symlink modes
            os.chmod(name, member.mode & 0o7777, dir_fd=pfd)
        os.utime(name, (member.mtime, member.mtime), dir_fd=pfd, follow_symlinks=False)

    def _xattrs(self, fd: int, member: tarfile.TarInfo) -> None:
        for key, value in member.pax_headers.items():
            if not key.startswith("SCHILY.xattr."):
                continue
            attr = key[len("SCHILY.xattr."):]
            if not attr.startswith(_XATTR_ALLOWED):
                continue
            try:
                os.setxattr(fd, attr, value.encode("utf-8", "surrogateescape"))
            except OSError as exc:
                if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise

    def _whiteout(self, path: Path_) -> None:
        if self.form is Form.OVERLAY:
            with self._dir(path[:-1]) as pfd:
                assert pfd is not None
                self._clear(pfd, path[-1], keep_dir=False)
                os.mknod(path[-1], stat.S_IFCHR | 0o600, os.makedev(0, 0), dir_fd=pfd)
            return
        with self._dir(path[:-1], create=False) as pfd:
            if pfd is not None:  # nothing below a missing directory to delete
                self._clear(pfd, path[-1], keep_dir=False)

    def _opaque(self, path: Path_) -> None:
        if self.form is Form.OVERLAY:
            with self._dir(path) as fd:
                assert fd is not None
                os.setxattr(fd, OPAQUE_XATTR, b"y")
            return
        with self._dir(path, create=False) as fd:
            if fd is not None:
                self._prune(fd, path)

    def _prune(self, fd: int, path: Path_) -> None:
        """Delete what lower layers put below ``path``; keep what this layer made."""
        for name in os.listdir(fd):
            child = (*path, name)
            if child not in self.checker.created:
                self._clear(fd, name, keep_dir=False)
            elif _is_real_dir(fd, name):
                sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
                try:
                    self._prune(sub, child)
                finally:
                    os.close(sub)

    def finish(self) -> None:
        """Directory modes, owners and times, deepest first so children do not disturb them."""
        for path, member in sorted(self.dir_meta, key=lambda pm: -len(pm[0])):
            with self._dir(path[:-1], create=False) as pfd:
                if pfd is not None and _is_real_dir(pfd, path[-1]):
                    self._meta_path(pfd, path[-1], member, symlink=False)


def _exists(fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _is_real_dir(fd: int, name: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False

