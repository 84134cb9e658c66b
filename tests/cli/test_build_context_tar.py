"""The context tar ``shoal build`` sends: headers from ``lstat`` alone, whole-second times (no
pax header per file), hard links kept as links, and what a context cannot carry left out."""

from __future__ import annotations

import io
import os
import socket
import tarfile
from pathlib import Path

from cli.build import send_context
from protocol.errors import ShoalError


class _Collected:
    """What ``send_context`` writes, in place of a channel's byte stream."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False
        self.error: ShoalError | None = None

    def write(self, data: bytes) -> None:
        self.data += data

    def close(self) -> None:
        self.closed = True

    def abort(self, error: ShoalError) -> None:
        self.error = error


def test_the_context_tar(tmp_path: Path) -> None:
    root = tmp_path / "ctx"
    (root / "dir").mkdir(parents=True)
    (root / "dir" / "file").write_bytes(b"content")
    os.utime(root / "dir" / "file", (1_600_000_000.75, 1_600_000_000.75))
    os.link(root / "dir" / "file", root / "twin")
    (root / "link").symlink_to("dir/file")
    os.mkfifo(root / "fifo")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(root / "sock"))
        sink = _Collected()
        send_context(root, [], sink)  # type: ignore[arg-type]
    assert sink.closed and sink.error is None
    with tarfile.open(fileobj=io.BytesIO(bytes(sink.data)), mode="r:") as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert sorted(members) == ["dir", "dir/file", "link", "twin"]
        # The root's files come before the subdirectory's: the first name of the pair is
        # the file, the second a link to it.
        file = members["twin"]
        assert file.isreg() and file.mtime == 1_600_000_000 and file.pax_headers == {}
        assert tar.extractfile(file).read() == b"content"  # type: ignore[union-attr]
        assert members["dir/file"].islnk() and members["dir/file"].linkname == "twin"
        assert members["link"].issym() and members["link"].linkname == "dir/file"
        assert members["dir"].isdir()
        assert file.uname == "" and file.mode == 0o644 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
