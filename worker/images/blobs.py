"""Content-addressed blobs under ``blobs/sha256/<hex>`` of an OCI image layout.

A blob is streamed into a temp file in a private ingest directory on the same filesystem,
hashed as it is written, checked against the expected digest and size, and only then renamed
into place. So a blob file that exists is always complete and correct, a crash leaves at most
an ingest temp file (removed by ``recover``), and a blob already present is never rewritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from worker.images.digest import ALGORITHM, check_digest, hex_of, is_digest
from worker.images.errors import BlobNotFound, DigestMismatch

CHUNK = 1024 * 1024


class BlobStore:
    """Blobs of one layout; all methods block on disk I/O (run them in a thread if slow)."""

    def __init__(self, layout: Path, ingest: Path) -> None:
        self.dir = layout / "blobs" / ALGORITHM
        self.ingest = ingest
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ingest.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.dir / hex_of(digest)

    def has(self, digest: str) -> bool:
        return is_digest(digest) and self.path(digest).is_file()

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(f"no blob {digest}", details={"digest": digest}) from None

    def open(self, digest: str) -> BinaryIO:
        try:
            return self.path(digest).open("rb")
        except FileNotFoundError:
            raise BlobNotFound(f"no blob {digest}", details={"digest": digest}) from None

    def read(self, digest: str, limit: int) -> bytes:
        """The whole blob, for small documents; refuses blobs over ``limit`` bytes."""
        with self.open(digest) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise DigestMismatch(f"blob {digest} is larger than {limit} bytes",
                                 details={"digest": digest})
        return data

    def put(self, stream: BinaryIO, expected: str | None = None, size: int | None = None,
            *, limit: int | None = None) -> tuple[str, int]:
        """Store what ``stream`` yields; returns (digest, size).

        With ``expected``/``size`` the content must match them; ``limit`` caps the bytes read
        (so an endless stream cannot fill the disk). The stream is read to its end.
        """
        if expected is not None:
            check_digest(expected)
            if self.has(expected) and (size is None or self.size(expected) == size):
                # Each blob is stored once; the caller's stream is simply not needed.
                return expected, self.size(expected)
        hasher = hashlib.sha256()
        written = 0
        fd, tmp = tempfile.mkstemp(dir=self.ingest, prefix="blob-")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(CHUNK):
                    written += len(chunk)
                    if limit is not None and written > limit:
                        raise DigestMismatch(f"blob is larger than the {limit}-byte limit",
                                             details={"digest": expected or ""})
                    if size is not None and written > size:
                        break
                    hasher.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = f"{ALGORITHM}:{hasher.hexdigest()}"
            if size is not None and written != size:
                raise DigestMismatch(
                    f"blob {expected or digest}: {written}{'+' if written > size else ''} "
                    f"bytes, descriptor says {size}",
                    details={"digest": expected or digest, "size": str(size)})
            if expected is not None and digest != expected:
                raise DigestMismatch(f"blob content has digest {digest}, expected {expected}",
                                     details={"digest": expected, "actual": digest})
            target = self.path(digest)
            if target.exists():
                os.unlink(tmp)
            else:
                os.chmod(tmp, 0o644)
                os.replace(tmp, target)
            return digest, written
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def put_bytes(self, data: bytes, expected: str | None = None) -> str:
        return self.put(io.BytesIO(data), expected, len(data) if expected else None)[0]

    def delete(self, digest: str) -> bool:
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            return False
        return True

    def digests(self) -> Iterator[str]:
        for entry in os.scandir(self.dir):
            name = f"{ALGORITHM}:{entry.name}"
            if is_digest(name) and entry.is_file(follow_symlinks=False):
                yield name

    def recover(self) -> int:
        """Remove ingest leftovers of an interrupted ``put``; returns how many."""
        count = 0
        for entry in os.scandir(self.ingest):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                count += 1
        return count

