"""The readiness notification: its lines, the daemon's end and the supervisor's end (in-process
pipes; the daemons' ``--ready-fd`` is in ``test_ready_fd.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import select
from collections.abc import Iterator

import pytest

from cli.readiness import (
    ReadyNotifier,
    fd_problem,
    format_notification,
    parse_notification,
    read_notification,
)
from tests.helpers.bounded_run import run


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read_end, write_end = os.pipe()
    yield read_end, write_end
    for fd in (read_end, write_end):
        with contextlib.suppress(OSError):  # the test (or the notifier) closed it
            os.close(fd)


def assert_closed(fd: int) -> None:
    with pytest.raises(OSError, match="Bad file descriptor") as caught:
        os.fstat(fd)
    assert caught.value.errno == errno.EBADF


@pytest.mark.parametrize(("data", "facts"), [
    (b"READY=1\n", {}),
    (b"READY=1\nLISTEN=tcp://127.0.0.1:4000\n", {"LISTEN": "tcp://127.0.0.1:4000"}),
    (b"LISTEN=tcp://h:1\nROLE=standby\nREADY=1\n", {"LISTEN": "tcp://h:1", "ROLE": "standby"}),
    (b"STATUS=a=b\nREADY=1\n", {"STATUS": "a=b"}),  # the first = splits
    (b"READY=1", None),  # no complete line yet
    (b"READY=1\nLISTEN=tcp://h:", {}),  # the partial line is not a fact yet
    (b"READY=0\n", None),
    (b"", None),
    (b"listening\n", None),
])
def test_parse(data: bytes, facts: dict[str, str] | None) -> None:
    assert parse_notification(data) == facts


def test_format_round_trips_and_refuses_what_would_not() -> None:
    facts = {"LISTEN": "tcp://127.0.0.1:4000", "ROLE": "leader"}
    data = format_notification(facts)
    assert data == b"READY=1\nLISTEN=tcp://127.0.0.1:4000\nROLE=leader\n"
    assert parse_notification(data) == facts
    for bad, why in [({"A": "x\ny"}, "not a notification fact"),
                     ({"A=B": "x"}, "not a notification fact"),
                     ({"READY": "0"}, "not a notification fact"),
                     ({"A": "x" * 5000}, "at most 4096 bytes")]:
        with pytest.raises(ValueError, match=why):
            format_notification(bad)


def test_fd_problems(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    closed = os.dup(write_end)
    os.close(closed)
    assert fd_problem(write_end) is None
    assert fd_problem(read_end) == f"descriptor {read_end} is not open for writing"
    assert fd_problem(closed) == f"descriptor {closed} is not open"
    for stdio in (0, 1, 2):
        assert f"descriptor {stdio} is standard input, output or error" in str(
            fd_problem(stdio))
    with pytest.raises(ValueError, match="not open for writing"):
        ReadyNotifier(read_end)


def test_the_notifier_writes_once_closes_and_keeps_children_out(
        pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    os.set_inheritable(write_end, True)
    notifier = ReadyNotifier(write_end)
    assert not os.get_inheritable(write_end)
    notifier.notify(LISTEN="tcp://127.0.0.1:4000")
    notifier.notify(LISTEN="tcp://127.0.0.1:5000")  # nothing: it said so already
    assert os.read(read_end, 4096) == b"READY=1\nLISTEN=tcp://127.0.0.1:4000\n"
    assert select.select([read_end], [], [], 5)[0]
    assert os.read(read_end, 4096) == b""  # closed: end of file
    assert_closed(write_end)


def test_a_supervisor_gone_does_not_stop_the_daemon(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    os.close(read_end)
    ReadyNotifier(write_end).notify(LISTEN="x")  # EPIPE: logged, not raised
    assert_closed(write_end)


def test_the_reader_waits_for_the_whole_line(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe

    async def main() -> dict[str, str] | None:
        reading = asyncio.create_task(read_notification(read_end))
        os.write(write_end, b"ROLE=leader\nREA")
        asyncio.get_running_loop().call_soon(os.write, write_end, b"DY=1\n")
        return await reading

    # The write end stays open (as a child that inherited it would keep it): no EOF needed.
    assert run(main, timeout=10) == {"ROLE": "leader"}


def test_the_reader_returns_none_at_eof_without_ready(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    os.write(write_end, b"starting\n")
    os.close(write_end)
    assert run(lambda: read_notification(read_end), timeout=10) is None
