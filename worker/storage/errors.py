"""The storage drivers' errors, each a wire error with its own code."""

from __future__ import annotations

from protocol.errors import Conflict, InvalidArgument, NotFound, ShoalError, Unavailable


class StorageFailure(ShoalError):
    """A filesystem operation of a storage driver failed (mount, copy, delete)."""

    code = "storage"


class MountFailed(StorageFailure):
    code = "storage.mount"


class StorageUnavailable(Unavailable):
    """The requested driver cannot work on this host; the message says why."""

    code = "request.unavailable.storage"


class RootfsConflict(Conflict):
    """A container already has a rootfs, made from a different image."""

    code = "request.conflict.rootfs"


class RootfsNotFound(NotFound):
    code = "request.not_found.rootfs"


class InvalidContainerId(InvalidArgument):
    code = "request.invalid_argument.container_id"
