"""The ENOSYS prelude of a seccomp filter: its jumps on every architecture shape (through a
small cBPF interpreter), and the compiled program loaded into a real process's kernel filter."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import struct

import pytest

from worker.runtime import syscalls as sc
from worker.runtime.seccomp import FilterCache, _arch_limits, check
from worker.runtime.seccomp_enosys import (
    AUDIT_ARCH_S390X,
    AUDIT_ARCH_X86_64,
    RET_ENOSYS,
    X32_SYSCALL_BIT,
    ArchLimit,
    prelude,
)

AUDIT_ARCH_I386 = 0x40000003
FILTER = "filter"


def run_prelude(program: bytes, arch: int, nr: int) -> str | int:
    """What the prelude does with a call: its return value, or FILTER if it falls through."""
    code = [struct.unpack("=HBBI", program[i:i + 8]) for i in range(0, len(program), 8)]
    acc, pc = 0, 0
    while pc < len(code):
        op, jt, jf, k = code[pc]
        pc += 1
        if op == 0x20:
            acc = {0: nr, 4: arch}[k]
        elif op == 0x05:
            pc += k
        elif op == 0x06:
            return int(k)
        else:
            taken = {0x15: acc == k, 0x25: acc > k, 0x45: bool(acc & k)}[op]
            pc += jt if taken else jf
    return FILTER


BOTH_X86_64 = [ArchLimit(AUDIT_ARCH_X86_64, 450, X32_SYSCALL_BIT | 540),
               ArchLimit(AUDIT_ARCH_I386, 460)]


@pytest.mark.parametrize(("limits", "arch", "nr", "expected"), [
    (BOTH_X86_64, AUDIT_ARCH_X86_64, 450, FILTER),  # the highest named: the filter decides
    (BOTH_X86_64, AUDIT_ARCH_X86_64, 451, RET_ENOSYS),
    (BOTH_X86_64, AUDIT_ARCH_X86_64, 1000, RET_ENOSYS),
    (BOTH_X86_64, AUDIT_ARCH_X86_64, 0, FILTER),
    (BOTH_X86_64, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 540, FILTER),  # x32: its own limit
    (BOTH_X86_64, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 541, RET_ENOSYS),
    (BOTH_X86_64, AUDIT_ARCH_I386, 455, FILTER),
    (BOTH_X86_64, AUDIT_ARCH_I386, 461, RET_ENOSYS),
    (BOTH_X86_64, AUDIT_ARCH_S390X, 5000, FILTER),  # not listed: the filter's bad-arch action
    ([ArchLimit(AUDIT_ARCH_X86_64, 450)], AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 1, FILTER),
    ([ArchLimit(AUDIT_ARCH_X86_64, 450)], AUDIT_ARCH_X86_64, 451, RET_ENOSYS),
    ([ArchLimit(AUDIT_ARCH_X86_64, None, X32_SYSCALL_BIT | 540)], AUDIT_ARCH_X86_64, 1000,
     FILTER),
    ([ArchLimit(AUDIT_ARCH_X86_64, None, X32_SYSCALL_BIT | 540)], AUDIT_ARCH_X86_64,
     X32_SYSCALL_BIT | 600, RET_ENOSYS),
    ([ArchLimit(AUDIT_ARCH_S390X, 440)], AUDIT_ARCH_S390X, 0, RET_ENOSYS),  # multiplexed
    ([ArchLimit(AUDIT_ARCH_S390X, 440)], AUDIT_ARCH_S390X, 3, FILTER),
])
def test_prelude_jumps(limits: list[ArchLimit], arch: int, nr: int,
                       expected: str | int) -> None:
    assert run_prelude(prelude(limits), arch, nr) == expected


def _native_arch_name() -> str:
    import pyseccomp

    from worker.runtime.seccomp import ARCHITECTURES

    native = pyseccomp.system_arch()
    return next(name for name, attr in ARCHITECTURES.items()
                if int(getattr(pyseccomp.Arch, attr)) == native)


def _errno_in_child(program: bytes, flags: int, calls: list[int]) -> list[int]:
    """Load the program in a forked child (no_new_privs: no privilege needed) and make each
    raw system call there with no arguments: the errno of each (0 if it succeeded)."""
    libc = ctypes.CDLL(None, use_errno=True)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
            sc.seccomp_set_filter(program, flags)
            out = []
            for nr in calls:
                ctypes.set_errno(0)
                rc = libc.syscall(ctypes.c_long(nr))
                out.append(ctypes.get_errno() if rc == -1 else 0)
            os.write(write_end, struct.pack(f"={len(calls)}i", *out))
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    assert len(data) == 4 * len(calls), "the child died before it reported"
    return list(struct.unpack(f"={len(calls)}i", data))


def test_a_call_newer_than_the_profile_gets_enosys_an_older_one_the_default() -> None:
    import pyseccomp

    def nr(name: str) -> int:
        return int(pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name))

    # What the child's Python and the raw calls need; openat2 makes the highest named call.
    allowed = ["write", "exit", "exit_group", "brk", "mmap", "munmap", "madvise", "futex",
               "rt_sigprocmask", "rt_sigreturn", "getpid", "openat2"]
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": [_native_arch_name()],
               "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]}
    filt = FilterCache().filter_for(json.dumps(profile).encode())
    got = _errno_in_child(filt.program, filt.flags,
                          [nr("getpid"), nr("getppid"), nr("openat2") + 1, 1000])
    assert got == [0, errno.EPERM, errno.ENOSYS, errno.ENOSYS]


@pytest.mark.parametrize(("default", "has_prelude"), [
    ({"defaultAction": "SCMP_ACT_ERRNO"}, True),
    ({"defaultAction": "SCMP_ACT_KILL_PROCESS"}, True),
    ({"defaultAction": "SCMP_ACT_ALLOW"}, False),
    ({"defaultAction": "SCMP_ACT_LOG"}, False),
    ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.ENOSYS}, False),
])
def test_a_prelude_only_where_the_default_refuses(default: dict[str, object],
                                                  has_prelude: bool) -> None:
    profile = {**default, "architectures": [_native_arch_name()],
               "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_TRACE"}]}
    raw = json.dumps(profile).encode()
    program = FilterCache().filter_for(raw).program
    assert program.startswith(prelude(_arch_limits(check(raw)))) == has_prelude
