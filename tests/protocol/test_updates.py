"""What a container.update makes of a spec: the given limits replace the spec's, None leaves
one as it is, and the updates Docker refuses are refused."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.errors import InvalidArgument
from protocol.messages import UpdateContainer
from protocol.refs import RefKind, wire_ref
from protocol.specs import ContainerSpec, Resources, RestartPolicy
from protocol.updates import updated_spec

MIB = 1 << 20
SPEC = ContainerSpec(image="busybox", resources=Resources(memory=64 * MIB, millicpus=500,
                                                          pids=20))


def update(**fields: Any) -> UpdateContainer:
    return UpdateContainer(id="c1", reply=wire_ref(RefKind.SENDER, 1), **fields)


@pytest.mark.parametrize(("fields", "limits"), [
    ({}, SPEC.resources),
    ({"memory": 128 * MIB}, Resources(memory=128 * MIB, millicpus=500, pids=20)),
    ({"pids": 0, "millicpus": 0}, Resources(memory=64 * MIB)),
    ({"memory_swap": 256 * MIB}, Resources(memory=64 * MIB, memory_swap=256 * MIB,
                                           millicpus=500, pids=20)),
    ({"memory_swap": -1, "cpu_shares": 512},
     Resources(memory=64 * MIB, memory_swap=-1, millicpus=500, cpu_shares=512, pids=20)),
])
def test_the_given_limits_replace_the_specs(fields: dict[str, Any],
                                             limits: Resources) -> None:
    assert updated_spec(SPEC, update(**fields)).resources == limits


def test_a_restart_policy_replaces_the_specs_and_none_keeps_it() -> None:
    always = RestartPolicy(name="always")
    assert updated_spec(SPEC, update(restart=always)).restart == always
    kept = ContainerSpec(image="busybox", restart=always)
    assert updated_spec(kept, update(memory=32 * MIB)).restart == always


@pytest.mark.parametrize(("spec", "fields", "message"), [
    (SPEC, {"memory": MIB}, "Minimum memory limit allowed is 6MB"),
    (ContainerSpec(image="busybox"), {"memory_swap": 64 * MIB},
     "always set the Memory limit"),
    (SPEC, {"memory_swap": 32 * MIB}, "Minimum memoryswap limit should be larger"),
    (ContainerSpec(image="busybox", resources=Resources(memory=64 * MIB,
                                                        memory_swap=96 * MIB)),
     {"memory": 128 * MIB}, "update the memoryswap at the same time"),
    (ContainerSpec(image="busybox", auto_remove=True), {"restart": RestartPolicy(name="always")},
     "AutoRemove is enabled"),
])
def test_refused_updates(spec: ContainerSpec, fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        updated_spec(spec, update(**fields))
