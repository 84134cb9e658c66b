"""The root-only local socket a daemon serves beside its tcp listener (as docker.sock).

An ``ipc://`` listener whose socket file is mode 0660, owned by root and by the ``shoal`` group
when that group exists: the kernel admits only those who may write the file, so the channel
needs no CURVE. The CLI tries the default sockets first
(``channels.credentials.default_ipc_path``), so root on the host needs no address and no keys.
"""

from __future__ import annotations

import contextlib
import grp
import os
from pathlib import Path

from channels._api import ChannelOptions, Listener, listen
from channels.credentials import MAX_SOCKET_PATH
from protocol.errors import AddressError

GROUP = "shoal"


async def listen_local(path: str, options: ChannelOptions | None = None) -> Listener:
    """Listen on the unix socket ``path``, readable and writable by root (and the ``shoal``
    group) only. A socket left by a dead daemon is replaced; a live one is refused."""
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
