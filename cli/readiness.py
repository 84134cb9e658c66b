"""Readiness notification on an inherited descriptor (``--ready-fd N``), as s6's notification-fd,
and to systemd's ``$NOTIFY_SOCKET`` (a ``Type=notify`` unit).

A daemon given ``--ready-fd N`` writes ``READY=1`` and a few facts (``LISTEN=tcp://…``), one
``KEY=VALUE`` a line, in a single write at the moment it is ready, then closes the descriptor.
Its supervisor holds the other end of a pipe and reads: a ``READY=1`` line means ready; end of
file without one means the daemon exited (or closed the descriptor) before it was ready.

The notification is one ``write`` under ``PIPE_BUF``, so it arrives whole: the reader decides
on the first ``READY=1`` it sees and needs no end of file (which a child that inherited the
descriptor could hold back).
"""

from __future__ import annotations

import asyncio
import os
import sys

import click
import structlog

log = structlog.get_logger("shoal.readiness")

READY = "READY"
MAX_NOTIFICATION = 4096  # PIPE_BUF on Linux: a write up to this size is atomic on a pipe


def fd_problem(fd: int) -> str | None:
    """Why ``fd`` cannot carry a notification (not open, not writable, stdio), or None."""
    if fd in (0, 1, 2):
        return (f"descriptor {fd} is standard input, output or error: give the notification one "
                "of its own (it is closed once ready)")
    if sys.platform == "win32":  # no fcntl: whether it is open is all that can be told
        try:
            os.fstat(fd)
        except OSError:
            return f"descriptor {fd} is not open"
        return None
    import fcntl

    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    except OSError:
        return f"descriptor {fd} is not open"
    if flags & os.O_ACCMODE == os.O_RDONLY:
        return f"descriptor {fd} is not open for writing"
    return None


def format_notification(facts: dict[str, str]) -> bytes:
    """``READY=1`` then one ``KEY=VALUE`` line per fact."""
    lines = [f"{READY}=1"]
    for key, value in facts.items():
        if not key.isidentifier() or "\n" in value or key == READY:
            raise ValueError(f"not a notification fact: {key}={value!r}")
        lines.append(f"{key}={value}")
    data = "".join(f"{line}\n" for line in lines).encode()
    if len(data) > MAX_NOTIFICATION:
        raise ValueError(f"a notification is at most {MAX_NOTIFICATION} bytes")
    return data


def parse_notification(data: bytes) -> dict[str, str] | None:
    """The facts of the complete lines in ``data`` once one says ``READY=1``; else None."""
    complete, _, _ = data.rpartition(b"\n")
    facts: dict[str, str] = {}
    for line in complete.decode(errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            facts[key] = value
    if facts.get(READY) != "1":
        return None
    del facts[READY]
    return facts


class ReadyNotifier:
    """The daemon's end: ``notify(**facts)`` once ready; later calls do nothing. Either on an
    inherited descriptor (``--ready-fd``) or, under systemd (``Type=notify``), as a datagram
    to ``$NOTIFY_SOCKET`` (``READY=1`` and a ``STATUS=`` line with the facts)."""

    def __init__(self, fd: int | None = None, *, notify_socket: str = "") -> None:
        self.notify_socket = notify_socket
        if fd is not None:
            problem = fd_problem(fd)
            if problem is not None:
                raise ValueError(problem)
            os.set_inheritable(fd, False)  # children we start never hold it open
        self.fd: int | None = fd

    def notify(self, **facts: str) -> None:
        if self.notify_socket:
            self._notify_systemd(facts)
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            os.write(fd, format_notification(facts))
        except OSError as exc:  # the supervisor went away: not a reason to stop serving
            log.warning("could not write the readiness notification", fd=fd, error=str(exc))
        finally:
            os.close(fd)


    def _notify_systemd(self, facts: dict[str, str]) -> None:
        import socket

        path, self.notify_socket = self.notify_socket, ""
        status = ", ".join(f"{key.lower()} {value}" for key, value in facts.items())
        message = f"{READY}=1\nSTATUS=ready: {status}\n".encode()
        address = "\0" + path[1:] if path.startswith("@") else path  # abstract or a file
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, address)
        except OSError as exc:  # systemd went away: not a reason to stop serving
            log.warning("could not notify systemd", socket=path, error=str(exc))


async def read_notification(fd: int) -> dict[str, str] | None:
    """The supervisor's end: the facts once ``READY=1`` arrives on ``fd`` (a pipe's read end),
    or None at end of file without it. Does not close ``fd``."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    outcome: asyncio.Future[dict[str, str] | None] = loop.create_future()
    received = bytearray()

    def readable() -> None:
        try:
            chunk = os.read(fd, MAX_NOTIFICATION)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        received.extend(chunk)
        facts = parse_notification(bytes(received))
        ended = not chunk or len(received) > 16 * MAX_NOTIFICATION  # EOF, or not a notifier
        if (facts is not None or ended) and not outcome.done():
            outcome.set_result(facts)

    loop.add_reader(fd, readable)
    try:
        return await outcome
    finally:
        loop.remove_reader(fd)


def notifier_option(ctx: click.Context, param: click.Parameter,
                    value: int | None) -> ReadyNotifier | None:
    """The ``--ready-fd`` option's callback: a bad descriptor is a usage error (exit 2). Under
    systemd (``$NOTIFY_SOCKET``, taken out of the environment so that children never see it)
    readiness also goes there."""
    notify_socket = os.environ.pop("NOTIFY_SOCKET", "")
    if value is None and not notify_socket:
        return None
    try:
        return ReadyNotifier(value, notify_socket=notify_socket)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from exc
