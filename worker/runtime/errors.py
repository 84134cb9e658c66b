"""The runtime's branch of the shoal error tree: bad bundles, failed steps, unknown containers."""

from __future__ import annotations

from protocol.errors import ShoalError


class RuntimeFailure(ShoalError):
    """Root of the errors the native OCI runtime raises."""

    code = "runtime"


class BundleInvalid(RuntimeFailure):
    """The bundle's config.json or rootfs cannot be run; the message names the field."""

    code = "runtime.bundle_invalid"

    def __init__(self, field: str, reason: str | None = None, *,
                 details: dict[str, str] | None = None, code: str | None = None) -> None:
        if reason is None:  # rebuilt from the wire: the first argument is the message
            details = dict(details or {})
            super().__init__(field, details=details, code=code)
            self.field = details.get("field", "")
            self.reason = details.get("reason", field)
            return
        super().__init__(f"{field}: {reason}", details={"field": field, "reason": reason},
                         code=code)
        self.field = field
        self.reason = reason


class CreateFailed(RuntimeFailure):
    """A step of container creation failed; everything done before it was undone."""

    code = "runtime.create_failed"

    def __init__(self, step: str, reason: str | None = None, *, errno: str = "",
                 details: dict[str, str] | None = None, code: str | None = None) -> None:
        if reason is None:  # rebuilt from the wire: the first argument is the message
            details = dict(details or {})
            super().__init__(step, details=details, code=code)
            self.step = details.get("step", "")
            self.reason = details.get("reason", step)
            return
        # ``errno``: the symbolic errno of a failed system call (ENOENT, EACCES), which lets a
        # client tell "no such command" from "cannot execute it", as docker run's 127 and 126.
        super().__init__(f"create failed at step {step!r}: {reason}",
                         details={"step": step, "reason": reason,
                                  **({"errno": errno} if errno else {})}, code=code)
        self.step = step
        self.reason = reason


class ContainerNotFound(RuntimeFailure):
    """No container with this id exists under the runtime root."""

    code = "runtime.not_found"


class ContainerExists(RuntimeFailure):
    """A container with this id already exists under the runtime root."""

    code = "runtime.exists"


class WrongState(RuntimeFailure):
    """The operation is not allowed in the container's current status."""

    code = "runtime.wrong_state"


class OperationFailed(RuntimeFailure):
    """An operation on an existing container (start, kill, exec, delete) failed."""

    code = "runtime.operation_failed"


class HelperLost(RuntimeFailure):
    """The runtime helper is not running, refused the connection, or went away mid-request."""

    code = "runtime.helper_lost"
