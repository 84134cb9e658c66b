"""The CLI's way to a worker or a scheduler: one blocking session, found by trying each address
in turn and following a standby's redirect to its leader.

``-H``/``$SHOAL_HOST`` may name several addresses (``tcp://a:7375,tcp://b:7375``). A dead
address is passed over at once (its connection refused) or after the connect timeout (no
answer); a standby scheduler answers a verb with ``Unavailable`` naming its leader, and the
request goes there instead. When nothing answers, one line says what was tried.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from channels._blocking import BlockingSession, ReplyInbox
from protocol.addresses import DEFAULT_SCHEDULER, DEFAULT_WORKER
from protocol.errors import (
    AddressError,
    ChannelError,
    ConnectFailed,
    EndOfChannel,
    ProtocolError,
    ShoalError,
    Unavailable,
)
from protocol.messages import Message
from protocol.refs import SenderRef

if TYPE_CHECKING:
    from channels._curve import CurveClient  # tcp only: channels.credentials loads it

M = TypeVar("M", bound=Message)
MAX_REDIRECTS = 3
CONNECT_TIMEOUT = 5.0


def default_hosts() -> str:
    """Where the CLI looks when told nowhere: this host's scheduler, then its standalone
    worker, by their root-only sockets (no keys needed), then the scheduler's default tcp
    address (with the keys it leaves for root, or the user's enrollment). Where daemons serve
    no socket (Windows), the scheduler's and then the worker's default tcp addresses."""
    from channels.credentials import (
        HAS_LOCAL_SOCKET,
        default_ipc_path,
        scheduler_state_dir,
        worker_state_dir,
    )

    if not HAS_LOCAL_SOCKET:
        return ",".join([DEFAULT_SCHEDULER, DEFAULT_WORKER])
    sockets = [f"ipc://{default_ipc_path(d)}"
               for d in (scheduler_state_dir(), worker_state_dir())]
    return ",".join([*sockets, DEFAULT_SCHEDULER])


def host_addresses(value: str | None) -> list[str]:
    """The addresses in ``-H`` (or ``$SHOAL_HOST``, or the default), in order, without repeats."""
    text = value or os.environ.get("SHOAL_HOST") or default_hosts()
    addresses: list[str] = []
    for part in text.split(","):
        address = part.strip()
        if address and address not in addresses:
            addresses.append(address)
    if not addresses:
        raise AddressError(f"no address in {text!r}")
    return addresses


class Client:
    """A session with the first service that answers, redirected to the leader when needed."""

    def __init__(self, addresses: Sequence[str], *,
                 connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self.addresses = list(addresses)
        self.connect_timeout = connect_timeout
        self._session: BlockingSession | None = None
        self._tried: list[str] = []  # what each address we gave up on said, for the last word
        self._visited: set[str] = set()
        self._next = 0  # the next address of the list to try
        self._curves: dict[BlockingSession, CurveClient | None] = {}

    @property
    def session(self) -> BlockingSession:
        if self._session is None:
            self._session = self._connect_next()
        return self._session

    def _connect_next(self) -> BlockingSession:
        while self._next < len(self.addresses):
            address = self.addresses[self._next]
            self._next += 1
            if address in self._visited:
                continue
            session = self._dial(address)
            if session is not None:
                return session
        raise ConnectFailed(self._nothing_answered())

    def _dial(self, address: str, same_cluster: CurveClient | None = None
              ) -> BlockingSession | None:
        """A session with ``address``: CURVE over tcp with the keys known for it (or, for a
        leader a standby named, those of the standby's cluster)."""
        self._visited.add(address)
        curve = None
        if address.startswith("tcp://"):
            from channels.credentials import find

            found = find(address)
            curve = found.curve if found is not None else same_cluster
        try:
            session = BlockingSession(address, connect_timeout=self.connect_timeout,
                                      curve=curve)
            self._curves[session] = curve
            return session
        except ProtocolError:
            raise  # a peer that is not shoal, or speaks another version: its own words
        except (ConnectFailed, AddressError) as exc:
            reason = str(exc).removeprefix(f"no shoal session with {address}: ")
            self._tried.append(f"{address} ({reason})")
            return None

    def _nothing_answered(self) -> str:
        return "cannot reach a shoal service: tried " + ", ".join(self._tried)

    def redirected(self, reply: ReplyInbox) -> bool:
        """Whether ``reply`` is a standby's refusal, after which this client has moved to the
        leader it names (or to the next address it was given): send the request again."""
        refusal = reply.refusal()
        if not isinstance(refusal, Unavailable) or "leader" not in refusal.details:
            return False
        self._redirect(refusal)
        return True

    def _redirect(self, error: Unavailable) -> None:
        assert self._session is not None
        self._tried.append(f"{self._session.address} (a standby)")
        curve = self._curves.pop(self._session, None)
        self._session.close()
        self._session = None
        leader = error.details.get("leader", "")
        session = (self._dial(leader, curve) if leader and leader not in self._visited
                   else None)
        if session is None and self._next >= len(self.addresses):
            raise error  # no leader elected, or none we can reach, and nowhere else to ask
        self._session = session or self._connect_next()

    def open(self, make: Callable[[SenderRef], Message]) -> ReplyInbox:
        """Send the request ``make(reply)`` and return its reply channel once the service has
        accepted it (its first answer is waiting there), redirected to the leader if a standby
        refused it."""
        for _ in range(MAX_REDIRECTS + 1):
            session = self.session
            reply = session.reply_inbox()
            session.send(make(reply))
            session.wait_for(reply.ready)
            if not self.redirected(reply):
                return reply
        raise Unavailable(f"no leader after {MAX_REDIRECTS} redirects: " + ", ".join(self._tried))

    def messages(self, make: Callable[[SenderRef], Message]) -> Iterator[Message]:
        """Every answer to a streaming request (``logs -f``, ``events``) until the service ends
        the stream; a standby's refusal, which can only come first, is followed to the
        leader. Nothing waits for a first answer, which may be long in coming."""
        for _ in range(MAX_REDIRECTS + 1):
            session = self.session
            reply = session.reply_inbox()
            session.send(make(reply))
            try:
                first = True
                while True:
                    try:
                        message = reply.recv()
                    except EndOfChannel:
                        return
                    except Unavailable:
                        if first and self.redirected(reply):
                            break  # ask the leader
                        raise
                    first = False
                    yield message
            finally:
                reply.close()
        raise Unavailable(f"no leader after {MAX_REDIRECTS} redirects: " + ", ".join(self._tried))

    def ask(self, make: Callable[[SenderRef], Message], expect: type[M]) -> M:
        """One request, one reply of type ``expect``; a refusal raises the service's error."""
        reply = self.open(make)
        try:
            answer = reply.recv()
        except EndOfChannel:
            raise ChannelError("the service closed the reply channel without answering") \
                from None
        finally:
            reply.close()
        if not isinstance(answer, expect):
            raise ChannelError(f"expected {expect.__name__}, got {type(answer).__name__}")
        return answer

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def host_option(function: Callable[..., None]) -> Callable[..., None]:
    """``-H`` on a verb; ``shoal -H ADDR VERB`` works too (the verb's own wins)."""
    return click.option(
        "-H", "--host", default=None, metavar="ADDR[,ADDR...]",
        help="Scheduler(s) or worker to talk to, tried in order (default: $SHOAL_HOST, else "
             "this host's scheduler and worker sockets, then "
             f"{DEFAULT_SCHEDULER}).")(function)


def connect(host: str | None) -> Client:
    """A client for ``host``, or for the ``-H`` given before the verb, or the environment's."""
    if host is None:
        context = click.get_current_context(silent=True)
        if context is not None:
            given = context.find_root().params.get("host")
            host = given if isinstance(given, str) else None
    return Client(host_addresses(host))


class ShoalCommand(click.Command):
    """A verb whose shoal errors end it with one line and exit status 1 (never a traceback)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ShoalError as exc:
            raise click.ClickException(one_line(exc)) from None


def one_line(error: ShoalError) -> str:
    """``NotFound: no container web``: the error's class (its code when it is not known here)
    and its message, on one line."""
    name = type(error).__name__ if type(error) is not ShoalError else error.wire_code
    return f"{name}: {' '.join(str(error).split())}"
