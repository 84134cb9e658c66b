"""The runtime helper's protocol: typed requests and replies, one msgpack datagram each.

Client and helper talk over a ``SOCK_SEQPACKET`` unix socket, so every message is one datagram
and descriptors (a container's stdio, a pty master) ride along with it as ``SCM_RIGHTS``. A
request carries a request id (``rid``); its reply carries the same id. Replies may come out of
order: ``Wait`` is answered only when the container exits, while other requests go on.

Pure: structs and the codec only, no sockets.
"""

from __future__ import annotations

import msgspec

from protocol.errors import ErrorInfo
from worker.runtime.records import Record, decode_into, to_builtins
from worker.runtime.state import ExitRecord, OciState

# Large enough for ``list`` over some thousands of containers; both ends size their buffers to it.
MAX_DATAGRAM = 4 << 20
MAX_FDS = 3


class _Op(msgspec.Struct, frozen=True, tag_field="op", forbid_unknown_fields=True):
    pass


class Hello(_Op, frozen=True, tag="hello"):
    """First request of a connection: the helper answers with its pid."""


class Create(_Op, frozen=True, tag="create"):
    """Create ``id`` from ``bundle``. ``stdio`` says which of stdin/stdout/stderr are attached
    descriptors, in that order; the others are /dev/null."""

    id: str
    bundle: str
    stdio: tuple[bool, bool, bool] = (False, False, False)


class Start(_Op, frozen=True, tag="start"):
    id: str


class Kill(_Op, frozen=True, tag="kill"):
    id: str
    signal: int
    all: bool = False


class Delete(_Op, frozen=True, tag="delete"):
    id: str
    force: bool = False


class Wait(_Op, frozen=True, tag="wait"):
    """Answered when the container's init has exited (at once if it already has)."""

    id: str


class Exec(_Op, frozen=True, tag="exec"):
    id: str
    args: list[str]
    env: list[str] | None = None
    cwd: str | None = None
    uid: int | None = None
    gid: int | None = None
    tty: bool = False
    stdio: tuple[bool, bool, bool] = (False, False, False)
    console_size: tuple[int, int] | None = None  # (rows, cols) of the new pty, with tty


class WaitExec(_Op, frozen=True, tag="wait_exec"):
    """Answered when the exec'd process ``pid`` of container ``id`` has exited."""

    id: str
    pid: int


class State(_Op, frozen=True, tag="state"):
    id: str


class List(_Op, frozen=True, tag="list"):
    pass


class Ps(_Op, frozen=True, tag="ps"):
    id: str


class Shutdown(_Op, frozen=True, tag="shutdown"):
    """Stop the helper. Containers keep running; a new helper adopts them."""


class KeepInput(_Op, frozen=True, tag="keep_input"):
    """Keep a copy of the descriptor sent with this request, the client's end of the
    container's input (a pty master, or the write end of its stdin), until the container
    exits or is deleted: a client that goes away (a worker restarting) then closes only its
    own copy, so the container's terminal does not hang up and its stdin does not end."""

    id: str


class DropInput(_Op, frozen=True, tag="drop_input"):
    """Close the copy kept by ``KeepInput``: the client closed the container's stdin, which
    must now read EOF."""

    id: str


class TakeInput(_Op, frozen=True, tag="take_input"):
    """A copy of the descriptor kept by ``KeepInput`` (answered ``Input``)."""

    id: str


Op = (Hello | Create | Start | Kill | Delete | Wait | Exec | WaitExec | State | List | Ps
      | Shutdown | KeepInput | DropInput | TakeInput)


class Request(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    rid: int
    op: Op


class _Result(msgspec.Struct, frozen=True, tag_field="r"):
    pass


class Done(_Result, frozen=True, tag="done"):
    pass


class HelperInfo(_Result, frozen=True, tag="hello"):
    pid: int
    root: str


class Started(_Result, frozen=True, tag="started"):
    """A created container (``pid`` of its init) or an exec'd process; ``pty`` says whether a
    pty master descriptor is attached."""

    pid: int
    pty: bool = False


class ExitStatus(_Result, frozen=True, tag="exit"):
    """How a process ended. ``code`` is the shell-style status (128 + signal when killed), or
    None when the exit was seen but its status was lost (nobody reaped it: its helper had died).
    ``signal`` is the signal that killed it, if one did."""

    code: int | None
    signal: int | None = None


class States(_Result, frozen=True, tag="states"):
    states: list[OciState]


class Pids(_Result, frozen=True, tag="pids"):
    pids: list[int]


class Input(_Result, frozen=True, tag="input"):
    """``kept``: whether a descriptor is attached (none was kept, or the container ended)."""

    kept: bool


Result = Done | HelperInfo | Started | ExitStatus | States | Pids | Input


class Reply(msgspec.Struct, frozen=True):
    rid: int
    result: Result | None = None
    error: ErrorInfo | None = None


def _encode_record(value: object) -> object:
    """The runtime's records (``OciState``) cross as their JSON form; any other type msgspec
    does not know is refused with the TypeError msgspec itself raises for one."""
    if isinstance(value, Record):
        return to_builtins(value)
    raise TypeError(f"Encoding objects of type {type(value).__name__} is unsupported")


def _decode_record(kind: type, value: object) -> object:
    """A record from its JSON form; a bad one is a ValidationError, as msgspec's own are. (The
    messages name no other type msgspec needs a hook for: anything else is a bug here.)"""
    if isinstance(kind, type) and issubclass(kind, Record):
        try:
            return decode_into(kind, value)
        except ValueError as exc:
            raise msgspec.ValidationError(str(exc)) from exc
    raise TypeError(f"Decoding objects of type {getattr(kind, '__name__', kind)} is unsupported")


_request_decoder = msgspec.msgpack.Decoder(Request, dec_hook=_decode_record)
_reply_decoder = msgspec.msgpack.Decoder(Reply, dec_hook=_decode_record)
_encoder = msgspec.msgpack.Encoder(enc_hook=_encode_record)


def encode(message: Request | Reply) -> bytes:
    return _encoder.encode(message)


def decode_request(data: bytes) -> Request:
    return _request_decoder.decode(data)


def decode_reply(data: bytes) -> Reply:
    return _reply_decoder.decode(data)


def exit_status(record: ExitRecord) -> ExitStatus:
    return ExitStatus(code=record.status, signal=record.signal)
