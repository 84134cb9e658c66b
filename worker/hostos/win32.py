"""The Win32 calls the Windows side of the host seam makes, behind one small interface.

``Win32Api`` lists them one to one (kernel32's job objects, processes and console events, and
ntdll's ``NtResumeProcess``); ``Kernel32`` is the real thing over ctypes, loaded only on
Windows. The structures and constants are plain ctypes and load anywhere, so the logic above
them (``worker.hostos.jobs``) is tested on Linux against a fake of this interface, and on a
Windows runner against the real one (.github/workflows/windows.yml).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from ctypes import wintypes
from typing import Any, Protocol

# JOBOBJECTINFOCLASS values
JOB_OBJECT_BASIC_PROCESS_ID_LIST = 3
JOB_OBJECT_EXTENDED_LIMIT_INFORMATION = 9
JOB_OBJECT_CPU_RATE_CONTROL_INFORMATION = 15

# JOBOBJECT_BASIC_LIMIT_INFORMATION.LimitFlags
JOB_OBJECT_LIMIT_ACTIVE_PROCESS = 0x0008
JOB_OBJECT_LIMIT_JOB_MEMORY = 0x0200
JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION = 0x0400
JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x2000

# JOBOBJECT_CPU_RATE_CONTROL_INFORMATION.ControlFlags
JOB_OBJECT_CPU_RATE_CONTROL_ENABLE = 0x1
JOB_OBJECT_CPU_RATE_CONTROL_HARD_CAP = 0x4

# Access rights
JOB_OBJECT_ASSIGN_PROCESS = 0x0001
JOB_OBJECT_SET_ATTRIBUTES = 0x0002
JOB_OBJECT_QUERY = 0x0004
JOB_OBJECT_TERMINATE = 0x0008
PROCESS_TERMINATE = 0x0001
PROCESS_SET_QUOTA = 0x0100
PROCESS_SUSPEND_RESUME = 0x0800
PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
SYNCHRONIZE = 0x00100000

# Process creation flags (subprocess.Popen's creationflags)
CREATE_SUSPENDED = 0x00000004
CREATE_NEW_PROCESS_GROUP = 0x00000200
CREATE_BREAKAWAY_FROM_JOB = 0x01000000

CTRL_BREAK_EVENT = 1
STILL_ACTIVE = 259
WAIT_OBJECT_0 = 0
WAIT_TIMEOUT = 0x102
INFINITE = 0xFFFFFFFF
ERROR_INVALID_PARAMETER = 87


# Structures use fixed-size integers (a DWORD is 32 bits, SIZE_T and ULONG_PTR pointer-sized),
# so their layout is Windows x64's on any 64-bit host, and a test here can check it.
class JOBOBJECT_BASIC_LIMIT_INFORMATION(ctypes.Structure):
    _fields_ = [
        ("PerProcessUserTimeLimit", ctypes.c_int64),
        ("PerJobUserTimeLimit", ctypes.c_int64),
        ("LimitFlags", ctypes.c_uint32),
        ("MinimumWorkingSetSize", ctypes.c_size_t),
        ("MaximumWorkingSetSize", ctypes.c_size_t),
        ("ActiveProcessLimit", ctypes.c_uint32),
        ("Affinity", ctypes.c_size_t),  # ULONG_PTR
        ("PriorityClass", ctypes.c_uint32),
        ("SchedulingClass", ctypes.c_uint32),
    ]


class IO_COUNTERS(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "ReadOperationCount", "WriteOperationCount", "OtherOperationCount",
        "ReadTransferCount", "WriteTransferCount", "OtherTransferCount")]


class JOBOBJECT_EXTENDED_LIMIT_INFORMATION(ctypes.Structure):
    _fields_ = [
        ("BasicLimitInformation", JOBOBJECT_BASIC_LIMIT_INFORMATION),
        ("IoInfo", IO_COUNTERS),
        ("ProcessMemoryLimit", ctypes.c_size_t),
        ("JobMemoryLimit", ctypes.c_size_t),
        ("PeakProcessMemoryUsed", ctypes.c_size_t),
        ("PeakJobMemoryUsed", ctypes.c_size_t),
    ]


class JOBOBJECT_CPU_RATE_CONTROL_INFORMATION(ctypes.Structure):
    # ControlFlags, then a union whose CpuRate member is the one a hard cap uses: the
    # share of all processors' cycles in 1/100 of a percent (1..10000).
    _fields_ = [("ControlFlags", ctypes.c_uint32), ("CpuRate", ctypes.c_uint32)]


MAX_LISTED_PIDS = 4096


class JOBOBJECT_BASIC_PROCESS_ID_LIST(ctypes.Structure):
    _fields_ = [
        ("NumberOfAssignedProcesses", ctypes.c_uint32),
        ("NumberOfProcessIdsInList", ctypes.c_uint32),
        ("ProcessIdList", ctypes.c_size_t * MAX_LISTED_PIDS),
    ]


class MEMORYSTATUSEX(ctypes.Structure):
    _fields_ = [("dwLength", ctypes.c_uint32), ("dwMemoryLoad", ctypes.c_uint32),
                *((name, ctypes.c_uint64) for name in (
                    "ullTotalPhys", "ullAvailPhys", "ullTotalPageFile", "ullAvailPageFile",
                    "ullTotalVirtual", "ullAvailVirtual", "ullAvailExtendedVirtual"))]


class Win32Api(Protocol):
    """The calls, one method each; a failed call raises OSError (with the Win32 error as
    ``winerror`` on Windows). Handles are ints."""

    def create_job_object(self, name: str) -> int: ...
    def open_job_object(self, access: int, name: str) -> int: ...
    def set_information_job_object(self, job: int, info_class: int,
                                   info: ctypes.Structure) -> None: ...
    def query_job_process_ids(self, job: int) -> list[int]: ...
    def assign_process_to_job_object(self, job: int, process: int) -> None: ...
    def terminate_job_object(self, job: int, exit_code: int) -> None: ...
    def open_process(self, access: int, pid: int) -> int: ...
    def resume_process(self, process: int) -> None: ...
    def terminate_process(self, process: int, exit_code: int) -> None: ...
    def get_exit_code_process(self, process: int) -> int: ...
    def wait_for_single_object(self, handle: int, milliseconds: int) -> int: ...
    def generate_console_ctrl_event(self, event: int, process_group: int) -> None: ...
    def total_physical_memory(self) -> int: ...
    def close_handle(self, handle: int) -> None: ...


class Kernel32:
    """``Win32Api`` over ctypes: kernel32.dll and ntdll.dll (Windows only)."""

    def __init__(self) -> None:
        loader: Callable[..., Any] = getattr(ctypes, "WinDLL")  # noqa: B009 - Windows only
        self._k = loader("kernel32", use_last_error=True)
        self._nt = loader("ntdll")
        k = self._k
        k.CreateJobObjectW.restype = wintypes.HANDLE
        k.CreateJobObjectW.argtypes = [wintypes.LPVOID, wintypes.LPCWSTR]
        k.OpenJobObjectW.restype = wintypes.HANDLE
        k.OpenJobObjectW.argtypes = [wintypes.DWORD, wintypes.BOOL, wintypes.LPCWSTR]
        k.SetInformationJobObject.argtypes = [wintypes.HANDLE, ctypes.c_int, wintypes.LPVOID,
                                              wintypes.DWORD]
        k.QueryInformationJobObject.argtypes = [wintypes.HANDLE, ctypes.c_int, wintypes.LPVOID,
                                                wintypes.DWORD, wintypes.LPDWORD]
        k.AssignProcessToJobObject.argtypes = [wintypes.HANDLE, wintypes.HANDLE]
        k.TerminateJobObject.argtypes = [wintypes.HANDLE, wintypes.UINT]
        k.OpenProcess.restype = wintypes.HANDLE
        k.OpenProcess.argtypes = [wintypes.DWORD, wintypes.BOOL, wintypes.DWORD]
        k.TerminateProcess.argtypes = [wintypes.HANDLE, wintypes.UINT]
        k.GetExitCodeProcess.argtypes = [wintypes.HANDLE, wintypes.LPDWORD]
        k.WaitForSingleObject.restype = wintypes.DWORD
        k.WaitForSingleObject.argtypes = [wintypes.HANDLE, wintypes.DWORD]
        k.GenerateConsoleCtrlEvent.argtypes = [wintypes.DWORD, wintypes.DWORD]
        k.GlobalMemoryStatusEx.argtypes = [ctypes.POINTER(MEMORYSTATUSEX)]
        k.CloseHandle.argtypes = [wintypes.HANDLE]
        self._nt.NtResumeProcess.restype = ctypes.c_long
        self._nt.NtResumeProcess.argtypes = [wintypes.HANDLE]

    @staticmethod
    def _error(call: str) -> OSError:
        last: Callable[[], int] = getattr(ctypes, "get_last_error")  # noqa: B009
        win_error: Callable[[int, str], OSError] = getattr(ctypes, "WinError")  # noqa: B009
        error = win_error(last(), "")
        error.strerror = f"{call}: {error.strerror}"
        return error

    def _handle(self, value: int | None, call: str) -> int:
        if not value:
            raise self._error(call)
        return int(value)

    def _ok(self, result: int, call: str) -> None:
        if not result:
            raise self._error(call)

    def create_job_object(self, name: str) -> int:
        return self._handle(self._k.CreateJobObjectW(None, name or None), "CreateJobObjectW")

    def open_job_object(self, access: int, name: str) -> int:
        return self._handle(self._k.OpenJobObjectW(access, False, name), "OpenJobObjectW")

    def set_information_job_object(self, job: int, info_class: int,
                                   info: ctypes.Structure) -> None:
        self._ok(self._k.SetInformationJobObject(job, info_class, ctypes.byref(info),
                                                 ctypes.sizeof(info)),
                 "SetInformationJobObject")

    def query_job_process_ids(self, job: int) -> list[int]:
        listing = JOBOBJECT_BASIC_PROCESS_ID_LIST()
        self._ok(self._k.QueryInformationJobObject(job, JOB_OBJECT_BASIC_PROCESS_ID_LIST,
                                                   ctypes.byref(listing),
                                                   ctypes.sizeof(listing), None),
                 "QueryInformationJobObject")
        return [int(pid) for pid in listing.ProcessIdList[:listing.NumberOfProcessIdsInList]]

    def assign_process_to_job_object(self, job: int, process: int) -> None:
        self._ok(self._k.AssignProcessToJobObject(job, process), "AssignProcessToJobObject")

    def terminate_job_object(self, job: int, exit_code: int) -> None:
        self._ok(self._k.TerminateJobObject(job, exit_code), "TerminateJobObject")

    def open_process(self, access: int, pid: int) -> int:
        return self._handle(self._k.OpenProcess(access, False, pid), "OpenProcess")

    def resume_process(self, process: int) -> None:
        status = self._nt.NtResumeProcess(process)
        if status != 0:
            raise OSError(f"NtResumeProcess: NTSTATUS {status & 0xFFFFFFFF:#010x}")

    def terminate_process(self, process: int, exit_code: int) -> None:
        self._ok(self._k.TerminateProcess(process, exit_code), "TerminateProcess")

    def get_exit_code_process(self, process: int) -> int:
        code = wintypes.DWORD()
        self._ok(self._k.GetExitCodeProcess(process, ctypes.byref(code)), "GetExitCodeProcess")
        return int(code.value)

    def wait_for_single_object(self, handle: int, milliseconds: int) -> int:
        return int(self._k.WaitForSingleObject(handle, milliseconds))

    def generate_console_ctrl_event(self, event: int, process_group: int) -> None:
        self._ok(self._k.GenerateConsoleCtrlEvent(event, process_group),
                 "GenerateConsoleCtrlEvent")

    def total_physical_memory(self) -> int:
        status = MEMORYSTATUSEX()
        status.dwLength = ctypes.sizeof(status)
        self._ok(self._k.GlobalMemoryStatusEx(ctypes.byref(status)), "GlobalMemoryStatusEx")
        return int(status.ullTotalPhys)

    def close_handle(self, handle: int) -> None:
        self._k.CloseHandle(handle)
