"""Container logs in Docker's json-file format, with size-based rotation.

Each line a container writes becomes one JSON object per line:
``{"log":"hello\\n","stream":"stdout","time":"2026-11-29T08:00:00.123456000Z"}``. Output is cut
at newlines; a partial line is held until its newline, until it reaches 16 KiB (Docker's buffer),
or until the stream closes. With ``max_size`` the file rotates to ``NAME.1`` … ``NAME.(max_file-1)``
and the oldest is dropped; with ``compress`` the rotated files are gzipped (``NAME.1.gz`` …), as
Docker's. Reading returns entries oldest first across the rotated files.
"""

from __future__ import annotations

import calendar
import contextlib
import gzip
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import msgspec

Stream = Literal["stdout", "stderr"]
PARTIAL_LIMIT = 16 * 1024


class _Entry(msgspec.Struct):
    log: str
    stream: Stream
    time: str


@dataclass(frozen=True, slots=True)
class LogRecord:
    stream: Stream
    time: float
    data: bytes


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_Entry)


def format_time(timestamp: float) -> str:
    """RFC 3339 with nanoseconds in UTC, as Docker writes it."""
    seconds = int(timestamp)
    nanos = round((timestamp - seconds) * 1e9)
    if nanos >= 1_000_000_000:
        seconds, nanos = seconds + 1, nanos - 1_000_000_000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def parse_time(text: str) -> float:
    """The inverse of ``format_time``; ValueError when malformed."""
    if not text.endswith("Z") or "." not in text:
        raise ValueError(f"not an RFC 3339 UTC time: {text!r}")
    whole, frac = text[:-1].split(".", 1)
    base = time.strptime(whole, "%Y-%m-%dT%H:%M:%S")
    return calendar.timegm(base) + int(frac.ljust(9, "0")[:9]) / 1e9


class JsonFileLog:
    """Appends a container's output to ``path``, rotating by size."""

    def __init__(self, path: Path, *, max_size: int = 0, max_file: int = 1,
                 compress: bool = False) -> None:
        if max_size < 0 or max_file < 1:
            raise ValueError("max_size must be ≥ 0 and max_file ≥ 1")
        self.path = path
        self.max_size = max_size
        self.max_file = max_file
        self.compress = compress and max_file > 1
        self._partial: dict[Stream, bytes] = {"stdout": b"", "stderr": b""}
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "ab")  # noqa: SIM115 - held open for the container's life
        self._size = self._file.tell()

    def write(self, stream: Stream, data: bytes, now: float | None = None) -> list[LogRecord]:
        """Record ``data`` from ``stream``; returns the entries written (for followers)."""
        stamp = time.time() if now is None else now
        buffer = self._partial[stream] + data
        records: list[LogRecord] = []
        start = 0
        while True:
            newline = buffer.find(b"\n", start)
            if newline < 0:
                break
            records.append(LogRecord(stream, stamp, buffer[start:newline + 1]))
            start = newline + 1
        rest = buffer[start:]
        while len(rest) >= PARTIAL_LIMIT:
            records.append(LogRecord(stream, stamp, rest[:PARTIAL_LIMIT]))
            rest = rest[PARTIAL_LIMIT:]
        self._partial[stream] = rest
        self._append(records)
        return records

    def flush_partial(self, now: float | None = None) -> list[LogRecord]:
        """The streams closed: write what is left without its newline."""
        stamp = time.time() if now is None else now
        records = [LogRecord(s, stamp, rest) for s, rest in self._partial.items() if rest]
        self._partial = {"stdout": b"", "stderr": b""}
        self._append(records)
        return records

    def _append(self, records: list[LogRecord]) -> None:
        for record in records:
            line = _encoder.encode(_Entry(
                log=record.data.decode("utf-8", errors="replace"), stream=record.stream,
                time=format_time(record.time))) + b"\n"
            if self.max_size and self._size and self._size + len(line) > self.max_size:
                self._rotate()
            self._file.write(line)
            self._size += len(line)
        if records:
            self._file.flush()

    def _rotate(self) -> None:
        self._file.close()
        if self.max_file == 1:
            self.path.unlink(missing_ok=True)
        else:
            self._rotated(self.max_file - 1).unlink(missing_ok=True)
            for n in range(self.max_file - 2, 0, -1):
                older = self._rotated(n)
                if older.exists():
                    os.replace(older, self._rotated(n + 1))
            if self.compress:
                # Whole or not at all: a reader never meets a half-written NAME.1.gz. The
                # header's name field keeps the plain file's inode (``_read_rotated``).
                partial = self.path.with_name(f"{self.path.name}.1.gz.partial")
                with open(self.path, "rb") as plain, open(partial, "wb") as raw, \
                        gzip.GzipFile(filename=str(os.fstat(plain.fileno()).st_ino),
                                      mode="wb", fileobj=raw) as packed:
                    shutil.copyfileobj(plain, packed)
                os.replace(partial, self._rotated(1))
                self.path.unlink()
            else:
                os.replace(self.path, self._rotated(1))
        self._file = open(self.path, "ab")  # noqa: SIM115
        self._size = 0

    def _rotated(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{n}{'.gz' if self.compress else ''}")

    def close(self) -> None:
        self.flush_partial()
        self._file.close()


def log_files(path: Path) -> list[Path]:
    """The current file and its rotations, oldest first."""
    rotated = []
    for candidate in path.parent.glob(path.name + ".*"):
        suffix = candidate.name[len(path.name) + 1:].removesuffix(".gz")
        if suffix.isdigit():
            rotated.append((int(suffix), candidate))
    files = [p for _, p in sorted(rotated, reverse=True)]
    if path.exists():
        files.append(path)
    return files


def read_log(path: Path, *, since: float = 0.0, tail: int = -1) -> list[LogRecord]:
    """Entries oldest first; ``since`` drops older ones, ``tail`` ≥ 0 keeps the last N.

    A line that does not decode (a torn write, a hand edit) is skipped, never fatal.
    """
    records = [r for r in _iter_records(path) if r.time >= since]
    if tail >= 0:
        records = records[len(records) - tail:] if tail else []
    return records


def _iter_records(path: Path) -> Iterator[LogRecord]:
    for file in log_files(path):
        if file.suffix == ".gz":
            yield from _read_rotated(file)[1]
            continue
        with contextlib.suppress(FileNotFoundError), open(file, "rb") as handle:
            for line in handle:
                record = _parse_line(line)
                if record is not None:
                    yield record


def _read_rotated(file: Path) -> tuple[int, list[LogRecord]]:
    """A rotated file's entries, and the inode it was written under: its own, or for a
    gzipped one the inode its plain file had (kept in the gzip header's name field). A
    follower compares it with the file it holds open, whose inode no other file can take
    meanwhile. (-1, []) when the file is gone or unreadable."""
    try:
        with open(file, "rb") as handle:
            if file.suffix != ".gz":
                inode = os.fstat(handle.fileno()).st_ino
                return inode, [r for r in map(_parse_line, handle) if r is not None]
            inode = _gzip_name_inode(handle)
            handle.seek(0)
            with gzip.GzipFile(fileobj=handle, mode="rb") as packed:
                return inode, [r for r in map(_parse_line, packed) if r is not None]
    except (OSError, EOFError):  # gone, or a torn gzip (never renamed into place whole)
        return -1, []


def _gzip_name_inode(handle: BinaryIO) -> int:
    """The number in a gzip header's name field (RFC 1952 FNAME); -1 without one."""
    header = handle.read(10)
    if len(header) < 10 or header[:2] != b"\x1f\x8b":
        return -1
    flags = header[3]
    if flags & 0x04:  # FEXTRA: skip it
        handle.read(int.from_bytes(handle.read(2), "little"))
    if not flags & 0x08:
        return -1
    name = bytearray()
    while (byte := handle.read(1)) not in (b"", b"\0"):
        name += byte
    return int(name) if name.isdigit() and len(name) < 24 else -1


def _parse_line(line: bytes) -> LogRecord | None:
    try:
        entry = _decoder.decode(line)
        stamp = parse_time(entry.time)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
        return None
    return LogRecord(entry.stream, stamp, entry.log.encode())


class LogFollower:
    """Reads what is appended to a log after it was created, across rotations.

    It keeps the file open, so lines written just before the file is rotated away or removed
    (a container run with auto-remove) are still read.
    """

    def __init__(self, path: Path, *, at_end: bool = True) -> None:
        self.path = path
        self._handle: BinaryIO | None = None
        self._partial = b""
        self._open(at_end=at_end)

    def _open(self, *, at_end: bool) -> None:
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 - kept open across polls
        except FileNotFoundError:
            self._handle = None
            return
        if at_end:
            handle.seek(0, os.SEEK_END)
        self._handle = handle
        self._partial = b""

    def poll(self) -> list[LogRecord]:
        """Complete new lines since the last poll."""
        if self._handle is None:
            self._open(at_end=False)
            if self._handle is None:
                return []
        records = self._drain()
        try:
            current = self.path.stat().st_ino
        except FileNotFoundError:
            return records  # removed: what was written before is all there will be
        held = os.fstat(self._handle.fileno()).st_ino
        if current != held:  # rotated: the files made after the held one, then the new one
            # Closed after the scan: while it is held open, no other file takes its inode.
            records += self._newer_rotated(held)
            self._handle.close()
            self._open(at_end=False)
            records += self._drain()
        return records

    def _newer_rotated(self, held: int) -> list[LogRecord]:
        """Entries of the rotated files newer than the one with inode ``held`` (all of them
        when it is gone): rotations that came twice between two polls lose nothing."""
        newer: list[list[LogRecord]] = []
        for file in reversed([f for f in log_files(self.path) if f != self.path]):
            inode, records = _read_rotated(file)
            if inode == held:
                break
            newer.append(records)
        return [r for chunk in reversed(newer) for r in chunk]

    def _drain(self) -> list[LogRecord]:
        assert self._handle is not None
        data = self._partial + self._handle.read()
        lines = data.split(b"\n")
        self._partial = lines.pop()
        return [r for r in (_parse_line(line) for line in lines if line) if r is not None]

    def opened_inode(self) -> int | None:
        return os.fstat(self._handle.fileno()).st_ino if self._handle is not None else None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def follow_log(path: Path, *, since: float = 0.0, tail: int = -1
               ) -> tuple[list[LogRecord], LogFollower]:
    """The entries so far (as ``read_log`` selects them) and a follower that goes on exactly
    after them: the current file is read through the follower's own handle, so a line written
    meanwhile is in one or the other, never both, and none is missed."""
    follower = LogFollower(path, at_end=False)
    inode = follower.opened_inode()
    # The current file is the follower's. A rotated file it also holds (rotated since it
    # opened it: the follower reads it) is the newest with its inode, and only once its file
    # is no longer the current one: a gzipped rotation names the inode its plain file had,
    # which a later file may have taken since.
    rotated = [_read_rotated(f) for f in log_files(path) if f != path]
    held = -1
    if inode is not None and _inode(path) != inode:
        held = next((i for i in range(len(rotated) - 1, -1, -1) if rotated[i][0] == inode), -1)
    records = [r for i, (_, entries) in enumerate(rotated) if i != held for r in entries]
    records.extend(follower.poll())
    records = [r for r in records if r.time >= since]
    if tail >= 0:
        records = records[len(records) - tail:] if tail else []
    return records, follower
