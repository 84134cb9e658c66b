"""A fake of ``worker.hostos.win32.Win32Api`` for Linux, where kernel32 cannot exist: it
records each call with its arguments (structures copied as field dicts) and keeps a small
model of jobs and processes, so the Windows side's logic and call sequence can be checked.
On a Windows runner the same logic runs against the real Kernel32
(tests/worker/hostos/test_windows_real.py)."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from typing import Any

from worker.hostos import win32


def fields_of(info: ctypes.Structure) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, *_ in info._fields_:
        value = getattr(info, name)
        out[name] = fields_of(value) if isinstance(value, ctypes.Structure) else value
    return out


@dataclass
class FakeWin32:
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    jobs: dict[str, int] = field(default_factory=dict)  # name -> handle
    members: dict[int, set[int]] = field(default_factory=dict)  # job handle -> pids
    running: set[int] = field(default_factory=set)
    exit_codes: dict[int, int] = field(default_factory=dict)
    fail: set[str] = field(default_factory=set)  # names of calls that fail
    open_handles: dict[int, tuple[str, Any]] = field(default_factory=dict)
    _next: int = 100

    def _new(self, kind: str, what: Any) -> int:
        self._next += 4
        self.open_handles[self._next] = (kind, what)
        return self._next

    def _call(self, name: str, *args: Any) -> None:
        self.calls.append((name, *args))
        if name in self.fail:
            raise OSError(f"{name} failed (fake)")

    def names(self) -> list[str]:
        return [call[0] for call in self.calls]

    def create_job_object(self, name: str) -> int:
        self._call("CreateJobObject", name)
        handle = self._new("job", name)
        self.jobs[name] = handle
        self.members[handle] = set()
        return handle

    def open_job_object(self, access: int, name: str) -> int:
        self._call("OpenJobObject", access, name)
        if name not in self.jobs:
            raise OSError(f"no job {name}")
        handle = self._new("job-ref", name)
        self.members[handle] = self.members[self.jobs[name]]
        return handle

    def set_information_job_object(self, job: int, info_class: int,
                                   info: ctypes.Structure) -> None:
        self._call("SetInformationJobObject", job, info_class, fields_of(info))

    def query_job_process_ids(self, job: int) -> list[int]:
        self._call("QueryInformationJobObject", job)
        return sorted(self.members[job])

    def assign_process_to_job_object(self, job: int, process: int) -> None:
        self._call("AssignProcessToJobObject", job, process)
        self.members[job].add(self.open_handles[process][1])

    def terminate_job_object(self, job: int, exit_code: int) -> None:
        self._call("TerminateJobObject", job, exit_code)
        for pid in self.members[job]:
            self.running.discard(pid)
            self.exit_codes[pid] = exit_code
        self.members[job].clear()

    def open_process(self, access: int, pid: int) -> int:
        self._call("OpenProcess", access, pid)
        if pid not in self.running and pid not in self.exit_codes:
            raise OSError(f"no process {pid}")
        return self._new("process", pid)

    def resume_process(self, process: int) -> None:
        self._call("NtResumeProcess", process)

    def terminate_process(self, process: int, exit_code: int) -> None:
        self._call("TerminateProcess", process, exit_code)
        pid = self.open_handles[process][1]
        self.running.discard(pid)
        self.exit_codes[pid] = exit_code

    def get_exit_code_process(self, process: int) -> int:
        self._call("GetExitCodeProcess", process)
        pid = self.open_handles[process][1]
        return win32.STILL_ACTIVE if pid in self.running else self.exit_codes[pid]

    def wait_for_single_object(self, handle: int, milliseconds: int) -> int:
        self._call("WaitForSingleObject", handle, milliseconds)
        pid = self.open_handles[handle][1]
        return win32.WAIT_TIMEOUT if pid in self.running else win32.WAIT_OBJECT_0

    def generate_console_ctrl_event(self, event: int, process_group: int) -> None:
        self._call("GenerateConsoleCtrlEvent", event, process_group)

    def total_physical_memory(self) -> int:
        self._call("GlobalMemoryStatusEx")
        return 8 << 30

    def close_handle(self, handle: int) -> None:
        self._call("CloseHandle", handle)
        del self.open_handles[handle]
