"""Waiting for a phrase in a cluster process's log, for what no notification tells: a standby
taking over after a failover, an image synced, an old copy stopped. (Start-up readiness is
``--ready-fd``: ``DevCluster.launch``.)

The wait is on events, not a polling loop: inotify says when the log's directory changes (the
log written, or created), a pidfd when the process has exited."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import subprocess
from pathlib import Path

_libc = ctypes.CDLL(None, use_errno=True)
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
IN_MODIFY = 0x002
IN_CREATE = 0x100
IN_MOVED_TO = 0x080


def _inotify(directory: Path) -> int:
    fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "inotify_init1")
    if _libc.inotify_add_watch(fd, os.fsencode(directory),
                               IN_MODIFY | IN_CREATE | IN_MOVED_TO) < 0:
        err = ctypes.get_errno()
        os.close(fd)
        raise OSError(err, f"inotify_add_watch {directory}")
    return fd


async def wait_for_log(path: Path, needle: str, proc: subprocess.Popen[bytes],
                       timeout: float = 60.0) -> None:
    """Until ``needle`` is in the log at ``path``; AssertionError if ``proc`` exits first or
    ``timeout`` passes. The log is read again each time its directory changes."""
    loop = asyncio.get_running_loop()
    changed = asyncio.Event()
    watch = _inotify(path.parent)
    pidfd = os.pidfd_open(proc.pid)

    def drain() -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(watch, 4096):
                pass
        changed.set()

    loop.add_reader(watch, drain)
    loop.add_reader(pidfd, changed.set)
    try:
        async with asyncio.timeout(timeout):
            while True:
                changed.clear()
                with contextlib.suppress(FileNotFoundError):
                    if needle in path.read_text(errors="replace"):
                        return
                if proc.poll() is not None:
                    raise AssertionError(f"exited (status {proc.returncode}) before "
                                         f"{needle!r}; see {path}")
                await changed.wait()
    except TimeoutError:
        raise AssertionError(f"no {needle!r} within {timeout:g} s; see {path}") from None
    finally:
        loop.remove_reader(watch)
        loop.remove_reader(pidfd)
        os.close(watch)
        os.close(pidfd)
