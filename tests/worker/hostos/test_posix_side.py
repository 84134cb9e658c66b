"""The POSIX side of the host seam for real (sessions, process groups, /proc, pidfd), and the
portable parts the Windows side uses that run here too: a ``PopenChild`` waited for on a
thread, and the shim's threaded output copy (``serve_on_threads``)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from protocol import signals
from tests.helpers.bounded_run import run
from worker.engine.logfile import JsonFileLog, read_log
from worker.engine.shim import serve_on_threads
from worker.hostos import HOST, JobLimits
from worker.hostos.base import PopenChild
from worker.hostos.posix import PosixHost, ProcessGroup

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the POSIX side")


def test_this_host_has_the_posix_side() -> None:
    assert isinstance(HOST, PosixHost)
    assert HOST.pollable_pipes and HOST.terminals
    assert HOST.memory_total() > 0 and HOST.process_limit() > 0


def test_a_group_is_listed_signalled_and_ended_as_one() -> None:
    async def main() -> None:
        # The command leads its own group and leaves a child in it.
        confinement = HOST.confine("unused", JobLimits())
        options = confinement.popen_options()
        assert options.start_new_session and options.creationflags == 0
        assert options.preexec_fn is None  # no limits: no cgroup
        leader = subprocess.Popen(  # noqa: ASYNC220 - a plain child, as the shim makes
            ["sh", "-c", "sleep 300 & echo $!; wait"],
                                  stdout=subprocess.PIPE,
                                  start_new_session=options.start_new_session)
        assert leader.stdout is not None
        child = int(leader.stdout.readline())
        try:
            assert HOST.members(leader.pid, "unused") == sorted([leader.pid, child])
            confinement.adopt(leader.pid)
            confinement.end_rest()
            assert leader.wait(10) == -9
            await asyncio.wait_for(HOST.wait_foreign(child), 10)  # exited (maybe unreaped)
            assert HOST.members(leader.pid, "unused") == []
        finally:
            leader.kill()
            leader.wait()

    run(main, timeout=30)


def test_signal_goes_to_the_main_process_or_the_whole_group() -> None:
    async def main() -> None:
        shim = await HOST.start_shim(["sh", "-c", "trap 'echo term; exit 3' TERM; echo up; "
                                      "while :; do sleep 0.1; done"], {"PATH": "/usr/bin:/bin"})
        assert await shim.read_line() == b"up\n"
        HOST.signal(shim.pid, signals.SIGTERM, container_id="x", all_processes=False)
        assert await shim.read_line() == b"term\n"
        assert await asyncio.wait_for(shim.wait(), 10) == 3
        HOST.signal(shim.pid, signals.SIGKILL, container_id="x", all_processes=True)  # gone

    run(main, timeout=30)


def test_a_popen_child_is_waited_for_on_a_thread_on_any_loop() -> None:
    async def main() -> None:
        popen = subprocess.Popen(  # noqa: ASYNC220 - what PopenChild wraps
            ["sh", "-c", "echo ready; read line; exit 4"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        child = PopenChild(popen)
        assert await child.read_line() == b"ready\n"
        waiting = asyncio.ensure_future(child.wait())
        assert not waiting.done()
        assert popen.stdin is not None
        popen.stdin.close()
        assert await asyncio.wait_for(waiting, 10) == 4
        child.kill()  # after the exit: nothing

    run(main, timeout=30)


def test_output_copied_on_threads_reaches_the_log_and_leftovers_are_ended(
        tmp_path: Path) -> None:
    # What the shim does on Windows, run here: stdout and stderr land in the json-file log,
    # and a background process still holding the pipes is ended with the main one.
    log_path = tmp_path / "log.json"
    log = JsonFileLog(log_path)
    child = subprocess.Popen(["sh", "-c", "echo out; echo err >&2; sleep 300 & exit 5"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
    group = ProcessGroup()
    group.adopt(child.pid)
    status = serve_on_threads(child, group, log)
    log.close()
    assert status == 5
    assert sorted((r.stream, r.data) for r in read_log(log_path)) == [
        ("stderr", b"err\n"), ("stdout", b"out\n")]
