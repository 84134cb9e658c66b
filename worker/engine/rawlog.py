"""Container output that survives the worker: raw append-only files, copied into json-file.

The container writes its stdout and stderr straight into ``stdout.raw`` and ``stderr.raw``
(opened O_APPEND), so it never blocks on, or dies with, a worker. The worker copies new bytes
into the json-file log, remembers how far it got (``raw.offsets``), and punches out what it has
copied so the raw files take no disk space. A worker that restarts carries on from the saved
offsets; lines written while it was away get the time at which they were copied.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import threading
from pathlib import Path

from worker.engine.logfile import JsonFileLog, Stream

PUNCH_EVERY = 1 << 20
_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]


def _punch(fd: int, offset: int, length: int) -> None:
    """Free the blocks of [offset, offset + length); the file's size and offsets stay."""
    if length > 0:
        _libc.fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, length)


class RawLogCopier:
    """Copies one container's raw output files into its json-file log."""

    STREAMS: tuple[Stream, ...] = ("stdout", "stderr")

    def __init__(self, directory: Path, log_path: Path, *, max_size: int = 0,
                 max_file: int = 1, compress: bool = False, raw_chunks: bool = False) -> None:
        """``raw_chunks``: a terminal's output; each copied chunk is an entry of its own, so a
        prompt without a newline reaches ``logs -f`` and attached clients at once."""
        self.directory = directory
        self.raw_chunks = raw_chunks
        directory.mkdir(parents=True, exist_ok=True)
        self._offsets_path = directory / "raw.offsets"
        self.offsets: dict[str, int] = {"stdout": 0, "stderr": 0}
        self._punched: dict[str, int] = {"stdout": 0, "stderr": 0}
        try:
            saved = json.loads(self._offsets_path.read_bytes())
            self.offsets.update({k: int(v) for k, v in saved.items() if k in self.offsets})
            self._punched.update(self.offsets)
        except (OSError, ValueError):
            pass
        self.log = JsonFileLog(log_path, max_size=max_size, max_file=max_file,
                               compress=compress)
        self._lock = threading.Lock()
        self._readers = {s: os.open(self._raw(s), os.O_RDWR | os.O_CREAT, 0o600)
                         for s in self.STREAMS}

    def _raw(self, stream: str) -> Path:
        return self.directory / f"{stream}.raw"

    def sinks(self) -> tuple[int, int]:
        """Fresh write ends for a new container process (the caller closes them)."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        return os.open(self._raw("stdout"), flags, 0o600), os.open(self._raw("stderr"), flags,
                                                                   0o600)

    def pump(self) -> int:
        """Copy what is new; returns how many bytes were copied. Thread-safe: a pump still
        running in a worker thread and a final pump at close never copy the same bytes."""
        with self._lock:
            return self._pump()

    def _pump(self) -> int:
        if not self._readers:
            return 0
        copied = 0
        for stream in self.STREAMS:
            fd = self._readers[stream]
            while True:
                data = os.pread(fd, 1 << 16, self.offsets[stream])
                if not data:
                    break
                self.log.write(stream, data)
                if self.raw_chunks:
                    self.log.flush_partial()
                self.offsets[stream] += len(data)
                copied += len(data)
            if self.offsets[stream] - self._punched[stream] >= PUNCH_EVERY:
                _punch(fd, self._punched[stream], self.offsets[stream] - self._punched[stream])
                self._punched[stream] = self.offsets[stream]
        if copied:
            self._save()
        return copied

    def _save(self) -> None:
        tmp = self._offsets_path.with_name("raw.offsets.tmp")
        tmp.write_text(json.dumps(self.offsets))
        os.replace(tmp, self._offsets_path)

    def close(self) -> None:
        """Flush partial lines and close; the raw files stay for a later copier."""
        with self._lock:
            if not self._readers:
                return
            self._pump()
            self.log.close()
            for fd in self._readers.values():
                os.close(fd)
            self._readers = {}

    def discard(self) -> None:
        """The run is over and copied: start the next run from empty raw files."""
        for stream in self.STREAMS:
            self._raw(stream).unlink(missing_ok=True)
        self._offsets_path.unlink(missing_ok=True)
