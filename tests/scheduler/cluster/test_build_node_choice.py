"""Which node a cluster build runs on, and the refusal that explains why none fits (pure)."""

from __future__ import annotations

import pytest

from protocol.errors import Unavailable
from protocol.observed import NodeInfo
from protocol.specs import Platform
from scheduler.cluster.builds import choose_builder


def node(name: str, *, os: str = "linux", arch: str = "amd64", runtime: str = "native",
         status: str = "ready", availability: str = "active",
         address: str = "tcp://127.0.0.1:1") -> NodeInfo:
    return NodeInfo(id=name, platform=Platform(os=os, arch=arch), runtime=runtime,
                    status=status, availability=availability,  # type: ignore[arg-type]
                    address=address)


def test_the_first_fitting_node_by_id_of_the_platform_asked() -> None:
    nodes = [node("c"), node("b", arch="arm64"), node("a", runtime="process")]
    assert choose_builder(nodes, "").id == "b"
    assert choose_builder(nodes, "linux/amd64").id == "c"
    assert choose_builder(nodes, "linux/arm64/v8").id == "b"


def test_a_refusal_counts_why_each_node_was_passed_over() -> None:
    nodes = [node("a", runtime="process"), node("b", status="down"),
             node("c", availability="drain"), node("d", os="windows"),
             node("e", address="")]
    with pytest.raises(Unavailable) as caught:
        choose_builder(nodes, "linux/amd64")
    assert caught.value.message == (
        "0/5 nodes can run this build: 1 down/active, 1 no address for verbs, "
        "1 platform windows/amd64 ≠ linux/amd64, 1 ready/drain, "
        "1 runtime process (builds need native)")
    with pytest.raises(Unavailable, match=r"^0/0 nodes can run this build$"):
        choose_builder([], "")
