"""The shoal error tree: one root class, a few branches, stable codes that cross the wire.

Every error has a dotted ``code`` ("channel.closed"). Codes are stable: a peer that receives an
``ErrorInfo`` rebuilds an exception of the same class; a code it does not know (a newer peer's)
maps to the nearest known ancestor ("channel.closed.by_peer" → ``ChannelClosed``), keeping the
original code and message, so nothing is lost and nothing crashes.
"""

from __future__ import annotations

# The wire form (``ErrorInfo``, a msgspec struct) lives in protocol.error_info and is imported
# on first use: raising and catching shoal errors costs no msgspec and no typing (a runtime
# command, run once per container operation, raises them and never sends one).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import ClassVar

    from protocol.error_info import ErrorInfo as ErrorInfo

_REGISTRY: dict[str, type[ShoalError]] = {}


def __getattr__(name: str) -> object:
    if name == "ErrorInfo":
        from protocol.error_info import ErrorInfo

        return ErrorInfo
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ShoalError(Exception):
    """Root of every error shoal raises on purpose."""

    code: ClassVar[str] = "shoal"

    def __init__(self, message: str = "", *, details: dict[str, str] | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, str] = dict(details or {})
        # A peer may send a more specific code than we know; keep it for display and re-send.
        self.wire_code = code or type(self).code

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        code = cls.__dict__.get("code")
        if not isinstance(code, str):
            raise TypeError(f"{cls.__name__} must define its own wire code")
        if code in _REGISTRY:
            raise TypeError(f"wire code {code!r} is already used by {_REGISTRY[code].__name__}")
        _REGISTRY[code] = cls

    def __str__(self) -> str:
        return self.message or self.wire_code

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.wire_code!r})"

    def to_info(self) -> ErrorInfo:
        from protocol.error_info import ErrorInfo
        from protocol.limits import MAX_ERROR_DETAILS, MAX_TEXT_LEN

        return ErrorInfo(code=self.wire_code, message=self.message[:MAX_TEXT_LEN],
                         details=dict(list(self.details.items())[:MAX_ERROR_DETAILS]))


_REGISTRY[ShoalError.code] = ShoalError


# --- protocol: bytes that do not make a valid message -------------------------------------------
class ProtocolError(ShoalError):
    """A peer sent bytes that are not a valid shoal frame or message."""

    code = "protocol"


class VersionMismatch(ProtocolError):
    """The peers share no protocol version."""

    code = "protocol.version"


class LimitExceeded(ProtocolError):
    """A frame or message is larger, deeper or longer than the limits allow."""

    code = "protocol.limit"


class EventsOverflow(LimitExceeded):
    """An events subscriber fell too far behind and was ended; ``details["since"]`` is the
    time of the first event it did not get (subscribe again from there)."""

    code = "protocol.limit.events"


# --- channel: the transport of messages --------------------------------------------------------
class ChannelError(ShoalError):
    """A channel can no longer carry messages."""

    code = "channel"


class ChannelClosed(ChannelError):
    """The channel was closed: by this side, or by the other end (e.g. the reader went away)."""

    code = "channel.closed"


class EndOfChannel(ChannelClosed):
    """The sending end closed the channel normally: no more messages."""

    code = "channel.closed.end"


class PeerLost(ChannelError):
    """The peer process vanished, went silent past the liveness timeout, or left the session."""

    code = "channel.peer_lost"


class ConnectFailed(ChannelError):
    """Could not establish a session with the peer."""

    code = "channel.connect_failed"


class AddressError(ChannelError):
    """An address that no registered transport understands, or that is already in use."""

    code = "channel.address"


# --- request: the answer to a verb --------------------------------------------------------------
class RequestError(ShoalError):
    """A well-formed request that the service refused or could not carry out."""

    code = "request"


class InvalidArgument(RequestError):
    code = "request.invalid_argument"


class InvalidSpec(InvalidArgument):
    """A container spec that cannot be created as it is (``protocol.validation``);
    ``details["field"]`` names the field (``env[2]``, ``mounts[0].target``)."""

    code = "request.invalid_argument.spec"

    @classmethod
    def of(cls, field: str, reason: str) -> InvalidSpec:
        return cls(f"invalid {field}: {reason}", details={"field": field, "reason": reason})

    @property
    def field(self) -> str:
        return self.details.get("field", "")

    @property
    def reason(self) -> str:
        return self.details.get("reason", self.message)


class NotFound(RequestError):
    code = "request.not_found"


class Conflict(RequestError):
    code = "request.conflict"


class Unsupported(RequestError):
    code = "request.unsupported"


class Unavailable(RequestError):
    code = "request.unavailable"


class Forbidden(RequestError):
    """The peer is known but its role may not do this (a worker submitting work), or its key
    was revoked."""

    code = "request.forbidden"


class Timeout(RequestError):
    code = "request.timeout"


class Internal(RequestError):
    """A bug on the serving side; the message says where."""

    code = "request.internal"


def error_class(code: str) -> type[ShoalError]:
    """The class registered for ``code``, or for its nearest known ancestor."""
    probe = code
    while probe:
        cls = _REGISTRY.get(probe)
        if cls is not None:
            return cls
        probe = probe.rpartition(".")[0]
    return ShoalError


def error_from_info(info: ErrorInfo) -> ShoalError:
    """Rebuild the exception a peer sent, as the same class when we know its code."""
    cls = error_class(info.code)
    return cls(info.message, details=dict(info.details), code=info.code)


def known_codes() -> dict[str, type[ShoalError]]:
    return dict(_REGISTRY)
