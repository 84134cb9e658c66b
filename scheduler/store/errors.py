"""The store's branch of the shoal error tree, and the translation of etcd (grpc) errors into it.

grpc and aetcd exceptions stop here: every call into etcd goes through ``translate`` so callers
only ever see ``protocol.errors`` classes or the subclasses below.
"""

from __future__ import annotations

from aetcd import rpc

from protocol.errors import (
    Conflict,
    Internal,
    InvalidArgument,
    NotFound,
    RequestError,
    ShoalError,
    Timeout,
    Unavailable,
)


class Compacted(Conflict):
    """The revision asked for was compacted away: re-list, then watch from the list's revision."""

    code = "request.conflict.compacted"

    def __init__(self, message: str = "", *, compact_revision: int = 0,
                 details: dict[str, str] | None = None, code: str | None = None) -> None:
        merged = dict(details or {})
        if compact_revision:
            merged.setdefault("compact_revision", str(compact_revision))
        super().__init__(message, details=merged, code=code)
        self.compact_revision = compact_revision


class NotLeader(Conflict):
    """A guarded write was refused: the writer no longer holds the leadership it claims."""

    code = "request.conflict.not_leader"


class LeaseExpired(Conflict):
    """The lease is gone (expired or revoked); whatever it kept alive is gone with it."""

    code = "request.conflict.lease_expired"


class EtcdMissing(Unavailable):
    """No etcd binary to start an embedded etcd with."""

    code = "request.unavailable.etcd_missing"


class EtcdStartFailed(Unavailable):
    """An embedded etcd process did not come up (it exited, or did not serve in time)."""

    code = "request.unavailable.etcd_start"


def translate(exc: BaseException, what: str) -> ShoalError:
    """The shoal error for an exception met while talking to etcd; ``what`` names the operation.

    Callers write ``raise translate(exc, "get") from exc`` so the grpc error stays on the chain
    for debugging but never reaches code outside the store.
    """
    if isinstance(exc, ShoalError):
        return exc
    if isinstance(exc, rpc.AioRpcError):
        status = exc.code()
        detail = exc.details() or status.name
        message = f"etcd {what}: {detail}"
        details = {"grpc_status": status.name}
        if status == rpc.StatusCode.OUT_OF_RANGE and "compacted" in detail:
            return Compacted(message, details=details)
        if status in (rpc.StatusCode.UNAVAILABLE, rpc.StatusCode.CANCELLED):
            return Unavailable(message, details=details)
        if status == rpc.StatusCode.DEADLINE_EXCEEDED:
            return Timeout(message, details=details)
        if status == rpc.StatusCode.NOT_FOUND:
            if "lease" in detail:
                return LeaseExpired(message, details=details)
            return NotFound(message, details=details)
        if status in (rpc.StatusCode.INVALID_ARGUMENT, rpc.StatusCode.RESOURCE_EXHAUSTED,
                      rpc.StatusCode.FAILED_PRECONDITION):
            return InvalidArgument(message, details=details)
        return Internal(message, details=details)
    if isinstance(exc, (ConnectionError, OSError)):
        return Unavailable(f"etcd {what}: {exc}")
    return Internal(f"etcd {what}: {type(exc).__name__}: {exc}")


__all__ = [
    "Compacted",
    "EtcdMissing",
    "EtcdStartFailed",
    "LeaseExpired",
    "NotLeader",
    "RequestError",
    "translate",
]
