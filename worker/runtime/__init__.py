"""The native OCI runtime: runs runtime-spec bundles with namespaces, mounts and cgroups.

The worker uses `worker.runtime.client.RuntimeHelper` (asyncio; a helper process forks the
containers). It is not re-exported here so that `python -m worker.runtime` imports little.
"""

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
