"""The native OCI runtime: runs runtime-spec bundles with namespaces, mounts and cgroups."""

from worker.runtime.errors import (
    BundleInvalid,
    ContainerExists,
    ContainerNotFound,
    CreateFailed,
    OperationFailed,
    RuntimeFailure,
    WrongState,
)
from worker.runtime.ops import Runtime
from worker.runtime.state import OciState

__all__ = [
    "BundleInvalid",
    "ContainerExists",
    "ContainerNotFound",
    "CreateFailed",
    "OciState",
    "OperationFailed",
    "Runtime",
    "RuntimeFailure",
    "WrongState",
]
