"""The native OCI runtime: runs runtime-spec bundles with namespaces, mounts and cgroups.

The worker uses `worker.runtime.client.RuntimeHelper` (asyncio; a helper process forks the
containers). The names below are loaded on first use, so that importing one submodule (the
command line, or the small process that forks inits) does not import the whole runtime.
"""

from __future__ import annotations

from protocol.lazyface import lazy_face

# A package face stays cheap to import: typing (~5 ms) only for the type checker.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from worker.runtime.errors import BundleInvalid as BundleInvalid
    from worker.runtime.errors import ContainerExists as ContainerExists
    from worker.runtime.errors import ContainerNotFound as ContainerNotFound
    from worker.runtime.errors import CreateFailed as CreateFailed
    from worker.runtime.errors import OperationFailed as OperationFailed
    from worker.runtime.errors import RuntimeFailure as RuntimeFailure
    from worker.runtime.errors import WrongState as WrongState
    from worker.runtime.ops import Runtime as Runtime
    from worker.runtime.state import OciState as OciState

_WHERE = {
    "BundleInvalid": "errors", "ContainerExists": "errors", "ContainerNotFound": "errors",
    "CreateFailed": "errors", "OperationFailed": "errors", "RuntimeFailure": "errors",
    "WrongState": "errors", "Runtime": "ops", "OciState": "state",
}

__getattr__, __dir__, __all__ = lazy_face(__name__, _WHERE)
