"""The ENOSYS prelude of a seccomp filter: a system call numbered above every call the profile
names, on an architecture it lists, fails with ENOSYS instead of the profile's default action.

Why: a profile is written against the system calls known when it was written, and its default
action (EPERM, say) would answer a newer call too. A program probing a new call (glibc's clone3
or faccessat2) takes ENOSYS as "this kernel does not have it" and falls back, but takes EPERM
as a refusal and fails. runc prepends such a check to libseccomp's program; this module does
the same from the numbers alone (the caller resolves names): a short cBPF program that ends by
falling through to the filter placed right after it.
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass

# The kernel's AUDIT_ARCH_* values that need care: x86_64 carries the x32 ABI too (its calls
# have X32_SYSCALL_BIT set), and s390 multiplexes calls it does not know on number 0.
AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_S390 = 0x00000016
AUDIT_ARCH_S390X = 0x80000016
X32_SYSCALL_BIT = 0x40000000

RET_ENOSYS = 0x00050000 | errno.ENOSYS  # SECCOMP_RET_ERRNO | ENOSYS

# struct seccomp_data: the call's number, then its AUDIT_ARCH.
_NR, _ARCH = 0, 4
# cBPF opcodes (struct sock_filter.code)
_LD_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JA = 0x05  # BPF_JMP | BPF_JA
_JEQ = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGT = 0x25  # BPF_JMP | BPF_JGT | BPF_K
_JSET = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_RET = 0x06  # BPF_RET | BPF_K

_ENOSYS, _FILTER = "enosys", "filter"


@dataclass(frozen=True, slots=True)
class ArchLimit:
    """The highest call number a profile names on one architecture, per ABI: ``highest`` in
    the architecture's own numbering, ``highest_x32`` (x86_64 only) for the x32 ABI, whose
    numbers include X32_SYSCALL_BIT. None: the profile does not list that ABI."""

    audit_arch: int
    highest: int | None = None
    highest_x32: int | None = None


Target = str | int  # a label, or 0: the next instruction


class _Program:
    """cBPF with forward jumps to labels, resolved when assembled."""

    def __init__(self) -> None:
        self.code: list[tuple[int, Target, Target, int]] = []
        self.labels: dict[str, int] = {}

    def add(self, op: int, k: int, true: Target = 0, false: Target = 0) -> None:
        self.code.append((op, true, false, k))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def assemble(self) -> bytes:
        out = bytearray()
        for i, (op, true, false, k) in enumerate(self.code):
            jt, jf = self._offset(i, true), self._offset(i, false)
            if op == _JA:
                k, jt, jf = jt, 0, 0
            elif jt > 0xFF or jf > 0xFF:
                raise ValueError(f"a conditional jump of instruction {i} is too long")
            out += struct.pack("=HBBI", op, jt, jf, k)
        return bytes(out)

    def _offset(self, i: int, target: Target) -> int:
        if isinstance(target, int):
            return target
        offset = self.labels[target] - (i + 1)
        if offset < 0:
            raise ValueError(f"instruction {i} jumps backwards to {target}")
        return offset


def prelude(limits: list[ArchLimit]) -> bytes:
    """The program to put before a filter: ENOSYS for a call above its architecture's limit,
    the filter (right after this program) for everything else."""
    prog = _Program()
    prog.add(_LD_ABS, _ARCH)
    for n, limit in enumerate(limits):
        # The accumulator holds the architecture until a section is entered; a section always
        # ends in ENOSYS or the filter, so the next check can compare it again.
        prog.add(_JEQ, limit.audit_arch, 0, f"arch{n + 1}")
        prog.add(_LD_ABS, _NR)
        if limit.audit_arch in (AUDIT_ARCH_S390, AUDIT_ARCH_S390X):
            prog.add(_JEQ, 0, _ENOSYS)  # an unknown call multiplexed on number 0
        _section(prog, limit, n)
        prog.label(f"arch{n + 1}")
    prog.add(_JA, 0, _FILTER)  # an architecture the profile does not list: the filter decides
    prog.label(_ENOSYS)
    prog.add(_RET, RET_ENOSYS)
    prog.label(_FILTER)
    return prog.assemble()


def _section(prog: _Program, limit: ArchLimit, n: int) -> None:
    if limit.audit_arch != AUDIT_ARCH_X86_64:
        if limit.highest is not None:
            prog.add(_JGT, limit.highest, _ENOSYS, _FILTER)
        else:
            prog.add(_JA, 0, _FILTER)
        return
    if limit.highest is not None and limit.highest_x32 is not None:
        prog.add(_JSET, X32_SYSCALL_BIT, f"x32_{n}")
        prog.add(_JGT, limit.highest, _ENOSYS, _FILTER)
        prog.label(f"x32_{n}")
        prog.add(_JGT, limit.highest_x32, _ENOSYS, _FILTER)
    elif limit.highest is not None:  # an x32 call is left to the filter (a foreign ABI there)
        prog.add(_JSET, X32_SYSCALL_BIT, _FILTER)
        prog.add(_JGT, limit.highest, _ENOSYS, _FILTER)
    elif limit.highest_x32 is not None:
        prog.add(_JSET, X32_SYSCALL_BIT, 0, _FILTER)
        prog.add(_JGT, limit.highest_x32, _ENOSYS, _FILTER)
    else:
        prog.add(_JA, 0, _FILTER)
