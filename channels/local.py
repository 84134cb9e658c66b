"""The root-only local socket a daemon serves beside its tcp listener (as docker.sock).

An ``ipc://`` listener whose socket file is mode 0660, owned by root and by the ``shoal`` group
when that group exists: the kernel admits only those who may write the file, so the channel
needs no CURVE. The CLI tries the default sockets first
(``channels.credentials.default_ipc_path``), so root on the host needs no address and no keys.

Windows has no ``ipc://`` (ZeroMQ's ipc transport needs unix sockets there too, and shoal's
hands descriptors over them): a daemon there serves no local socket, and the CLI on the host
dials its tcp listener with the client keys the daemon publishes (``publish_local``).
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from channels._api import ChannelOptions, Listener, listen
from channels.credentials import HAS_LOCAL_SOCKET, MAX_SOCKET_PATH
from protocol.errors import AddressError

GROUP = "shoal"


async def listen_local(path: str, options: ChannelOptions | None = None) -> Listener:
    """Listen on the unix socket ``path``, readable and writable by root (and the ``shoal``
    group) only. A socket left by a dead daemon is replaced; a live one is refused."""
    if not HAS_LOCAL_SOCKET:
        raise AddressError(f"no local socket on this host ({sys.platform} has no ipc://): "
                           "give --ipc none; the CLI here dials the tcp listener with the "
                           "keys the daemon publishes")
    where = Path(path)
    if len(os.fsencode(where)) > MAX_SOCKET_PATH:
        raise AddressError(f"ipc socket path too long for a unix socket ({path}): give a "
                           "shorter --ipc")
    where.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if where.is_socket() and _answers(where):
        raise AddressError(f"another daemon listens on {path}")
    with contextlib.suppress(FileNotFoundError):
        where.unlink()
    listener = await listen(f"ipc://{where}", options)
    import grp  # POSIX only, as the socket is

    try:
        group = -1
        with contextlib.suppress(KeyError):
            group = grp.getgrnam(GROUP).gr_gid
        os.chown(where, 0 if os.geteuid() == 0 else -1, group)
        os.chmod(where, 0o660)
    except OSError as exc:
        await listener.close()
        raise AddressError(f"cannot restrict {path} to root: {exc.strerror}") from exc
    return listener


def _answers(path: Path) -> bool:
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True
