"""The Windows job-object logic (``worker.hostos.jobs``) against a fake ``Win32Api``:
structure layouts as Windows x64 has them, limits as Windows counts them, and the call
sequence of each operation (every handle opened is closed)."""

from __future__ import annotations

import ctypes

import pytest

from tests.helpers.fake_win32 import FakeWin32
from worker.hostos import jobs, win32
from worker.hostos.jobs import Job, JobLimits


def test_structures_have_the_windows_x64_layout() -> None:
    # Sizes and offsets from the Windows SDK's winnt.h on x64.
    assert ctypes.sizeof(win32.JOBOBJECT_BASIC_LIMIT_INFORMATION) == 64
    assert ctypes.sizeof(win32.JOBOBJECT_EXTENDED_LIMIT_INFORMATION) == 144
    assert win32.JOBOBJECT_EXTENDED_LIMIT_INFORMATION.JobMemoryLimit.offset == 120
    assert win32.JOBOBJECT_BASIC_LIMIT_INFORMATION.ActiveProcessLimit.offset == 40
    assert ctypes.sizeof(win32.JOBOBJECT_CPU_RATE_CONTROL_INFORMATION) == 8
    assert ctypes.sizeof(win32.MEMORYSTATUSEX) == 64


@pytest.mark.parametrize(("millicpus", "cpus", "rate"), [
    (1000, 1, 10000),  # all of the only cpu
    (1000, 4, 2500),  # one cpu of four: 25.00 %
    (500, 2, 2500),
    (250, 8, 312),  # rounded down, in 1/100 %
    (1, 64, 1),  # never 0: that would not be a cap
    (16000, 4, 10000),  # more than the host has: all of it
])
def test_cpu_rate_is_hundredths_of_a_percent_of_the_whole_host(millicpus: int, cpus: int,
                                                               rate: int) -> None:
    assert jobs.cpu_rate(millicpus, cpus) == rate


def test_create_sets_the_limits_asked_for_and_kill_on_close_always() -> None:
    api = FakeWin32()
    job = Job.create(api, jobs.job_name("c1"), JobLimits(memory=256 << 20, millicpus=500,
                                                         processes=20), host_cpus=2)
    assert api.names() == ["CreateJobObject", "SetInformationJobObject",
                           "SetInformationJobObject"]
    assert api.calls[0][1] == "Local\\shoal-c1"
    _, handle, info_class, extended = api.calls[1]
    assert (handle, info_class) == (job.handle, win32.JOB_OBJECT_EXTENDED_LIMIT_INFORMATION)
    basic = extended["BasicLimitInformation"]
    assert basic["LimitFlags"] == (win32.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
                                   | win32.JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION
                                   | win32.JOB_OBJECT_LIMIT_JOB_MEMORY
                                   | win32.JOB_OBJECT_LIMIT_ACTIVE_PROCESS)
    assert extended["JobMemoryLimit"] == 256 << 20
    assert basic["ActiveProcessLimit"] == 20
    _, _, info_class, cpu = api.calls[2]
    assert info_class == win32.JOB_OBJECT_CPU_RATE_CONTROL_INFORMATION
    assert cpu == {"ControlFlags": win32.JOB_OBJECT_CPU_RATE_CONTROL_ENABLE
                   | win32.JOB_OBJECT_CPU_RATE_CONTROL_HARD_CAP, "CpuRate": 2500}


def test_no_limits_means_only_kill_on_close_and_no_cpu_call() -> None:
    api = FakeWin32()
    Job.create(api, "j", JobLimits(), host_cpus=4)
    assert api.names() == ["CreateJobObject", "SetInformationJobObject"]
    extended = api.calls[1][3]
    assert extended["JobMemoryLimit"] == 0
    assert extended["BasicLimitInformation"]["LimitFlags"] == (
        win32.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
        | win32.JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION)


def test_a_job_whose_limits_fail_is_closed_not_leaked() -> None:
    api = FakeWin32(fail={"SetInformationJobObject"})
    with pytest.raises(OSError, match=r"fake|no job"):
        Job.create(api, "j", JobLimits(memory=1 << 20), host_cpus=1)
    assert api.names()[-1] == "CloseHandle"
    assert api.open_handles == {}


def test_adopt_assigns_before_resuming_and_closes_the_process_handle() -> None:
    api = FakeWin32(running={4242})
    job = Job.create(api, "j", JobLimits(), host_cpus=1)
    api.calls.clear()
    job.adopt_suspended(4242)
    assert api.names() == ["OpenProcess", "AssignProcessToJobObject", "NtResumeProcess",
                           "CloseHandle"]
    assert api.calls[0][1] & win32.PROCESS_SET_QUOTA and api.calls[0][1] & win32.PROCESS_TERMINATE
    assert list(api.open_handles) == [job.handle]
    assert jobs.members_of(api, "j") == [4242]


def test_a_process_that_cannot_join_its_job_is_ended_never_resumed() -> None:
    api = FakeWin32(running={7}, fail={"AssignProcessToJobObject"})
    job = Job.create(api, "j", JobLimits(), host_cpus=1)
    api.calls.clear()
    with pytest.raises(OSError, match=r"fake|no job"):
        job.adopt_suspended(7)
    assert api.names() == ["OpenProcess", "AssignProcessToJobObject", "TerminateProcess",
                           "CloseHandle"]
    assert 7 not in api.running


def test_terminate_named_kills_the_tree_with_137() -> None:
    api = FakeWin32(running={10, 11, 12})
    job = Job.create(api, jobs.job_name("c"), JobLimits(), host_cpus=1)
    for pid in (10, 11):
        job.adopt_suspended(pid)
    api.calls.clear()
    assert jobs.terminate_named(api, jobs.job_name("c"))
    assert api.names() == ["OpenJobObject", "TerminateJobObject", "CloseHandle"]
    assert api.calls[0][1] == win32.JOB_OBJECT_TERMINATE
    assert api.exit_codes == {10: 137, 11: 137}
    assert api.running == {12}  # not in the job: untouched
    assert not jobs.terminate_named(api, jobs.job_name("gone"))


def test_exec_joins_the_running_containers_job_or_is_ended() -> None:
    api = FakeWin32(running={1, 2, 3})
    Job.create(api, jobs.job_name("c"), JobLimits(), host_cpus=1).adopt_suspended(1)
    jobs.adopt_into_named(api, jobs.job_name("c"), 2)
    assert jobs.members_of(api, jobs.job_name("c")) == [1, 2]
    with pytest.raises(OSError, match=r"fake|no job"):
        jobs.adopt_into_named(api, jobs.job_name("stopped"), 3)
    assert api.exit_codes[3] == 137
