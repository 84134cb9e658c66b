"""A bad spec sent straight to a worker (no CLI check on the way) is refused at create with the
same ``InvalidSpec`` the CLI gives, and nothing is made for it: no record, no container dir."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

import channels
from protocol.errors import InvalidSpec
from protocol.messages import ContainerCreated, CreateContainer
from protocol.specs import ContainerSpec, Mount, Resources
from tests.helpers import cluster_keys
from tests.helpers.worker_process import Worker

BAD = [
    (ContainerSpec(image="busybox", command=["true"], env=["OK=1", "=x"]), "env[1]",
     ["-e", "OK=1", "-e", "=x"]),
    (ContainerSpec(image="busybox", command=["true"],
                   mounts=[Mount(source="/tmp", target="tmp")]), "mounts[0].target", None),
    (ContainerSpec(image="busybox", command=["true"], resources=Resources(millicpus=1)),
     "resources.millicpus", None),
    (ContainerSpec(image="busybox", command=["true"], workdir="relative"), "workdir",
     ["-w", "relative"]),
]


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Worker]:
    node = Worker(tmp_path / "worker", "process")
    node.start()
    try:
        yield node
    finally:
        node.kill(signal.SIGTERM)


async def create(address: str, spec: ContainerSpec) -> object:
    async with await cluster_keys.connect(address) as conn:
        return await channels.request(conn.sender, lambda r: CreateContainer(spec=spec, reply=r),
                                      timeout=20.0)


def test_the_worker_refuses_a_bad_spec_at_create_and_makes_nothing(worker: Worker) -> None:
    for spec, field, cli_args in BAD:
        with pytest.raises(InvalidSpec) as caught:
            asyncio.run(create(worker.address, spec))
        assert caught.value.field == field
        if cli_args is not None:  # the CLI refuses it before sending, in the same words
            result = worker.shoal("create", *cli_args, "busybox", "true", check=False)
            assert result.returncode != 0
            assert str(caught.value) in result.stderr, result.stderr
    containers = worker.state_dir / "containers"
    assert not containers.exists() or list(containers.iterdir()) == []
    assert worker.shoal("ps", "-aq").stdout == ""
    # The worker still serves a good one.
    good = asyncio.run(create(worker.address, ContainerSpec(image="busybox", command=["true"])))
    assert isinstance(good, ContainerCreated)
    worker.shoal("rm", good.id)
