"""The native OCI runtime: runs runtime-spec bundles with namespaces, mounts and cgroups.

The worker uses `worker.runtime.client.RuntimeHelper` (asyncio; a helper process forks the
containers). The names below are loaded on first use, so that importing one submodule (the
command line, or the small process that forks inits) does not import the whole runtime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

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

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'worker.runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"worker.runtime.{module}"), name)
    globals()[name] = value
    return value
