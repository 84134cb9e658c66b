"""The Windows side of the host seam (``WindowsHost``) over a fake ``Win32Api``: what each
signal becomes, how liveness, membership and confinement are asked of Windows, and what the
process driver refuses there."""

from __future__ import annotations

import asyncio
import threading

import pytest

from protocol import signals
from protocol.errors import Unsupported
from tests.helpers.fake_win32 import FakeWin32
from worker.hostos import jobs, win32
from worker.hostos.jobs import JobLimits
from worker.hostos.windows import WindowsHost


def host_with(api: FakeWin32) -> WindowsHost:
    return WindowsHost(api)


@pytest.mark.parametrize("signum", [signals.SIGTERM, signals.SIGINT])
def test_stop_signals_become_ctrl_break_to_the_containers_process_group(signum: int) -> None:
    api = FakeWin32(running={300})
    host_with(api).signal(300, signum, container_id="c", all_processes=False)
    assert api.calls == [("GenerateConsoleCtrlEvent", win32.CTRL_BREAK_EVENT, 300)]


def test_kill_of_all_processes_is_a_job_kill() -> None:
    api = FakeWin32(running={300, 301})
    job = jobs.Job.create(api, jobs.job_name("c"), JobLimits(), host_cpus=1)
    job.adopt_suspended(300)
    job.adopt_suspended(301)
    api.calls.clear()
    host_with(api).signal(300, signals.SIGKILL, container_id="c", all_processes=True)
    assert api.names() == ["OpenJobObject", "TerminateJobObject", "CloseHandle"]
    assert api.exit_codes == {300: 137, 301: 137}


def test_kill_of_the_main_process_alone_terminates_it() -> None:
    api = FakeWin32(running={300})
    host_with(api).signal(300, signals.SIGKILL, container_id="c", all_processes=False)
    assert api.names() == ["OpenProcess", "TerminateProcess", "CloseHandle"]
    assert api.exit_codes == {300: 137}
    api.calls.clear()  # already gone: nothing to do, no error
    host_with(FakeWin32()).signal(300, signals.SIGKILL, container_id="c", all_processes=False)


@pytest.mark.parametrize("signum", [signals.SIGHUP, signals.SIGQUIT, 10, 28])
def test_signals_windows_cannot_express_are_refused(signum: int) -> None:
    api = FakeWin32(running={300})
    with pytest.raises(Unsupported, match=f"signal {signum} has no equivalent on Windows"):
        host_with(api).signal(300, signum, container_id="c", all_processes=True)
    assert api.calls == []


def test_a_ctrl_break_that_cannot_be_delivered_leaves_it_to_the_grace_period() -> None:
    # A worker without a console (a service) cannot send it: no error, the stop's kill follows.
    api = FakeWin32(running={300}, fail={"GenerateConsoleCtrlEvent"})
    host_with(api).signal(300, signals.SIGTERM, container_id="c", all_processes=False)
    assert api.names() == ["GenerateConsoleCtrlEvent", "OpenProcess", "GetExitCodeProcess",
                           "CloseHandle"]
    assert api.running == {300}


def test_alive_asks_for_the_exit_code() -> None:
    api = FakeWin32(running={5}, exit_codes={6: 0})
    host = host_with(api)
    assert host.alive(5)
    assert not host.alive(6)
    assert not host.alive(7)
    assert not host.alive(0)
    assert api.open_handles == {}


def test_members_are_the_jobs_processes() -> None:
    api = FakeWin32(running={5, 6, 9})
    job = jobs.Job.create(api, jobs.job_name("c"), JobLimits(), host_cpus=1)
    job.adopt_suspended(5)
    job.adopt_suspended(6)
    assert host_with(api).members(5, "c") == [5, 6]
    assert host_with(api).members(5, "other") == []


def test_confine_makes_the_named_job_and_resumes_the_command_in_it() -> None:
    api = FakeWin32(running={77})
    confinement = host_with(api).confine("abc", JobLimits(memory=64 << 20))
    confinement.adopt(77)
    assert api.names() == ["CreateJobObject", "SetInformationJobObject", "OpenProcess",
                           "AssignProcessToJobObject", "NtResumeProcess", "CloseHandle"]
    assert api.calls[0][1] == "Local\\shoal-abc"
    confinement.end_rest()
    assert api.exit_codes == {77: 137}
    confinement.close()
    assert api.open_handles == {}


def test_a_command_that_cannot_be_confined_runs_not_at_all() -> None:
    api = FakeWin32(running={77}, fail={"AssignProcessToJobObject"})
    confinement = host_with(api).confine("abc", JobLimits())
    with pytest.raises(OSError, match=r"fake|no job"):
        confinement.adopt(77)
    assert api.exit_codes == {77: 137}
    assert api.open_handles == {}  # the job closed too: KILL_ON_JOB_CLOSE
    confinement.close()  # the shim lets go of it as well: nothing more happens
    assert api.names().count("CloseHandle") == 2  # the process's and the job's, once each


def test_the_command_is_created_suspended_in_a_new_process_group() -> None:
    options = host_with(FakeWin32()).confine("abc", JobLimits()).popen_options()
    assert options.creationflags == win32.CREATE_NEW_PROCESS_GROUP | win32.CREATE_SUSPENDED
    assert not options.start_new_session


@pytest.mark.parametrize(("cpu_shares", "memory_swap", "refused"), [
    (0, 0, ""),
    (512, 0, "--cpu-shares"),
    (0, 1 << 30, "--memory-swap"),
    (0, -1, "--memory-swap"),
])
def test_limits_a_job_cannot_express_are_refused(cpu_shares: int, memory_swap: int,
                                                 refused: str) -> None:
    reason = host_with(FakeWin32()).refuse_limits(JobLimits(
        memory=1 << 30, millicpus=500, cpu_shares=cpu_shares, memory_swap=memory_swap))
    assert reason.startswith(refused) if refused else reason == ""


def test_host_facts() -> None:
    host = host_with(FakeWin32())
    assert host.memory_total() == 8 << 30
    assert host.process_limit() == 0
    assert not host.pollable_pipes and not host.terminals


def test_waiting_for_a_foreign_process_polls_its_handle_until_it_exits() -> None:
    api = FakeWin32(running={40})
    host = host_with(api)
    asked = threading.Event()
    wait_once = api.wait_for_single_object

    def wait_and_tell(handle: int, milliseconds: int) -> int:
        result = wait_once(handle, milliseconds)
        asked.set()
        return result

    api.wait_for_single_object = wait_and_tell  # type: ignore[method-assign]

    async def main() -> None:
        waiting = asyncio.create_task(host.wait_foreign(40))
        assert await asyncio.to_thread(asked.wait, 5)
        assert not waiting.done()
        api.running.discard(40)
        api.exit_codes[40] = 0
        await asyncio.wait_for(waiting, 5)

    asyncio.run(main())
    assert api.open_handles == {}
    assert {c[2] for c in api.calls if c[0] == "WaitForSingleObject"} == {250}
