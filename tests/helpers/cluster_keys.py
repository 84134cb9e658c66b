"""Keys for tests that talk to real daemons: what root's CLI on this host uses (the daemons
leave a client key for their tcp address in the runtime dir), and the cluster's worker token."""

from __future__ import annotations

import channels
from channels._blocking import BlockingSession
from channels.credentials import find
from protocol.messages import GetJoinToken, JoinToken


def local_curve(address: str) -> channels.CurveClient | None:
    """The keys root on this host dials ``address`` with (None: an ipc or insecure daemon)."""
    found = find(address) if address.startswith("tcp://") else None
    return found.curve if found is not None else None


async def connect(address: str,
                  options: channels.ChannelOptions | None = None) -> channels.Connection:
    """``channels.connect`` to a daemon on this host, as root's CLI would."""
    return await channels.connect(address, options, local_curve(address))


def join_token(address: str, role: str = "worker") -> str:
    """The join token of the cluster whose scheduler listens at ``address`` (blocking)."""
    session = BlockingSession(address, curve=local_curve(address), connect_timeout=10)
    try:
        answer = session.request(lambda r: GetJoinToken(role=role, reply=r), timeout=10)
    finally:
        session.close()
    assert isinstance(answer, JoinToken), answer
    return answer.token
