"""Container logs in Docker's json-file format, with size-based rotation.

Each line a container writes becomes one JSON object per line:
``{"log":"hello\\n","stream":"stdout","time":"2026-11-29T08:00:00.123456000Z"}``. Output is cut
at newlines; a partial line is held until its newline, until it reaches 16 KiB (Docker's buffer),
or until the stream closes. With ``max_size`` the file rotates to ``NAME.1`` … ``NAME.(max_file-1)``
and the oldest is dropped. Reading returns entries oldest first across the rotated files.
"""

from __future__ import annotations

import calendar
import contextlib
import os
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

    def __init__(self, path: Path, *, max_size: int = 0, max_file: int = 1) -> None:
        if max_size < 0 or max_file < 1:
            raise ValueError("max_size must be ≥ 0 and max_file ≥ 1")
        self.path = path
        self.max_size = max_size
        self.max_file = max_file
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
            oldest = self.path.with_name(f"{self.path.name}.{self.max_file - 1}")
            oldest.unlink(missing_ok=True)
            for n in range(self.max_file - 2, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{n}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{n + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._file = open(self.path, "ab")  # noqa: SIM115
        self._size = 0

    def close(self) -> None:
        self.flush_partial()
        self._file.close()


def log_files(path: Path) -> list[Path]:
    """The current file and its rotations, oldest first."""
    rotated = []
    for candidate in path.parent.glob(path.name + ".*"):
        suffix = candidate.name[len(path.name) + 1:]
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
        with contextlib.suppress(FileNotFoundError), open(file, "rb") as handle:
            for line in handle:
                record = _parse_line(line)
                if record is not None:
                    yield record


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
            self._handle.close()
            records += self._newer_rotated(held)
            self._open(at_end=False)
            records += self._drain()
        return records

    def _newer_rotated(self, held: int) -> list[LogRecord]:
        """Entries of the rotated files newer than the one with inode ``held`` (all of them
        when it is gone): rotations that came twice between two polls lose nothing."""
        newer: list[list[LogRecord]] = []
        for file in reversed([f for f in log_files(self.path) if f != self.path]):
            try:
                with open(file, "rb") as handle:
                    if os.fstat(handle.fileno()).st_ino == held:
                        break
                    newer.append([r for r in map(_parse_line, handle) if r is not None])
            except FileNotFoundError:
                continue
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


def follow_log(path: Path, *, since: float = 0.0, tail: int = -1
               ) -> tuple[list[LogRecord], LogFollower]:
    """The entries so far (as ``read_log`` selects them) and a follower that goes on exactly
    after them: the current file is read through the follower's own handle, so a line written
    meanwhile is in one or the other, never both, and none is missed."""
    follower = LogFollower(path, at_end=False)
    inode = follower.opened_inode()
    records: list[LogRecord] = []
    for file in (f for f in log_files(path) if f != path):  # the current one: the follower's
        with contextlib.suppress(FileNotFoundError), open(file, "rb") as handle:
            if os.fstat(handle.fileno()).st_ino == inode:
                continue  # rotated since the follower opened it: the follower reads it
            records.extend(r for r in map(_parse_line, handle) if r is not None)
    records.extend(follower.poll())
    records = [r for r in records if r.time >= since]
    if tail >= 0:
        records = records[len(records) - tail:] if tail else []
    return records, follower
