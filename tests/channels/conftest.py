"""Fixtures for the channel tests: an address per transport, and a check that nothing leaks."""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Callable, Iterator

import pytest

from channels import _zmq
from channels._transport import transport_for

_names = itertools.count()
TRANSPORTS = ["inproc", "tcp", "ipc"]


@pytest.fixture(params=TRANSPORTS)
def scheme(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def address(scheme: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], str]]:
    """A factory of fresh listen addresses for the transport under test."""
    made: list[str] = []
    short_dir = tempfile.mkdtemp(prefix="shoal-", dir="/tmp")  # ipc paths must be short

    def make() -> str:
        n = next(_names)
        if scheme == "inproc":
            addr = f"inproc://test-{os.getpid()}-{n}"
        elif scheme == "tcp":
            addr = "tcp://127.0.0.1:0"
        else:
            addr = f"ipc://{short_dir}/s{n}"
        made.append(addr)
        return addr

    yield make
    leftovers = [f for f in os.listdir(short_dir)]
    os.rmdir(short_dir) if not leftovers else None
    assert not leftovers, f"ipc files left behind: {leftovers}"


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Every socket a test opens is closed and every listener released when it ends."""
    before = set(_zmq.open_sockets)
    yield
    assert set(_zmq.open_sockets) <= before, "zmq sockets left open"
    inproc = transport_for("inproc://x")
    assert not getattr(inproc, "listeners", {}), "inproc listeners left open"

