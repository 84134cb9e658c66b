"""What a ``container.update`` makes of a container's spec, with Docker's checks: the limits it
gives replace the spec's (None leaves one as it is), and a restart policy replaces the spec's.
A worker and a scheduler both apply it, so they refuse the same updates. Pure."""

from __future__ import annotations

import msgspec

from protocol.errors import InvalidArgument
from protocol.messages import UpdateContainer
from protocol.specs import ContainerSpec, Resources

# Docker's floor for a memory limit (and the smallest the kernel is sure to honour).
MIN_MEMORY = 6 * 1024 * 1024


def updated_spec(spec: ContainerSpec, update: UpdateContainer) -> ContainerSpec:
    """``spec`` as ``update`` leaves it; InvalidArgument for an update Docker refuses."""
    if update.restart is not None and update.restart.name != "no" and spec.auto_remove:
        raise InvalidArgument("Restart policy cannot be updated because AutoRemove is enabled "
                              "for the container")
    before = spec.resources
    limits = Resources(
        millicpus=before.millicpus if update.millicpus is None else update.millicpus,
        cpu_shares=before.cpu_shares if update.cpu_shares is None else update.cpu_shares,
        memory=before.memory if update.memory is None else update.memory,
        memory_swap=before.memory_swap if update.memory_swap is None else update.memory_swap,
        pids=before.pids if update.pids is None else update.pids)
    if update.memory and update.memory < MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if limits.memory_swap > 0 and not limits.memory:
        raise InvalidArgument("You should always set the Memory limit when using Memoryswap "
                              "limit")
    if limits.memory_swap > 0 and limits.memory > limits.memory_swap:
        raise InvalidArgument("Memory limit should be smaller than already set memoryswap "
                              "limit, update the memoryswap at the same time"
                              if update.memory_swap is None else
                              "Minimum memoryswap limit should be larger than memory limit, "
                              "see usage")
    return msgspec.structs.replace(spec, resources=limits,
                                   restart=update.restart or spec.restart)
