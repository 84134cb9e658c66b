"""The docker-py client of a module's ``node`` (the worker each module starts for itself)."""

from __future__ import annotations

from collections.abc import Iterator

import docker
import pytest

from tests.helpers.docker_api import Worker


@pytest.fixture
def client(node: Worker) -> Iterator[docker.DockerClient]:
    c = docker.DockerClient(base_url=node.docker, timeout=60)
    try:
        yield c
    finally:
        c.close()
