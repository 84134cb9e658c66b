"""A device policy as an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE: the instructions
cgroup v2 runs on every mknod and every open of a device node in the cgroup.

The program reads ``struct bpf_cgroup_dev_ctx`` (access_type: the device type in the low 16
bits, the access in the high 16; major; minor) and returns 1 to allow or 0 to refuse. A policy
(``worker.runtime.device_policy``) has one default and exceptions all of the other sign, so
their order does not matter: each exception is one block that returns the exception's verdict
when it matches (a default-deny policy's exception must cover the whole access asked for, a
default-allow policy's needs only to share a bit with it, as the v1 controller checks), and the
program ends in the default. Pure: bytes out, loading is ``worker.runtime.device_bpf``'s.
"""

from __future__ import annotations

import struct

from worker.runtime.device_policy import (
    ACCESS_MKNOD,
    ACCESS_READ,
    ACCESS_WRITE,
    WILDCARD,
    DeviceException,
    DevicePolicy,
)

# struct bpf_cgroup_dev_ctx's device types (BPF_DEVCG_DEV_*).
DEV_TYPES = {"b": 1, "c": 2}
ALL_ACCESS = ACCESS_MKNOD | ACCESS_READ | ACCESS_WRITE

# The opcodes emitted (linux/bpf.h: class | operation | source).
LDX_W = 0x61       # BPF_LDX | BPF_MEM | BPF_W: dst = *(u32 *)(src + off)
MOV64_IMM = 0xB7   # BPF_ALU64 | BPF_MOV | BPF_K
MOV64_REG = 0xBF   # BPF_ALU64 | BPF_MOV | BPF_X
RSH64_IMM = 0x77   # BPF_ALU64 | BPF_RSH | BPF_K
AND64_IMM = 0x57   # BPF_ALU64 | BPF_AND | BPF_K
JNE32_IMM = 0x56   # BPF_JMP32 | BPF_JNE | BPF_K: compares the low 32 bits, imm as u32
JEQ_IMM = 0x15     # BPF_JMP | BPF_JEQ | BPF_K
JNE_IMM = 0x55     # BPF_JMP | BPF_JNE | BPF_K
EXIT = 0x95        # BPF_JMP | BPF_EXIT

# Registers: r1 holds the context on entry and is scratch once it is read.
R0, R1, R2, R3, R4, R5 = range(6)
_TYPE, _ACCESS, _MAJOR, _MINOR = R2, R3, R4, R5

INSN_SIZE = 8


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One struct bpf_insn, little-endian (x86_64)."""
    if imm > 0x7FFFFFFF:  # a u32 immediate (a major, a minor) in the signed field
        imm -= 1 << 32
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _prologue() -> list[bytes]:
    return [
        insn(LDX_W, _TYPE, R1, 0),       # access_type
        insn(MOV64_REG, _ACCESS, _TYPE),
        insn(RSH64_IMM, _ACCESS, imm=16),
        insn(AND64_IMM, _TYPE, imm=0xFFFF),
        insn(LDX_W, _MAJOR, R1, 4),
        insn(LDX_W, _MINOR, R1, 8),
    ]


def _verdict(allow: bool) -> list[bytes]:
    return [insn(MOV64_IMM, R0, imm=int(allow)), insn(EXIT)]


def _block(ex: DeviceException, default_allow: bool) -> list[bytes]:
    """Returns the exception's verdict when it matches; falls through (to the next block)
    when not. The tests are built with their jump offsets left for the end."""
    tests: list[tuple[int, int, int]] = [(JNE32_IMM, _TYPE, DEV_TYPES[ex.kind])]
    if ex.major != WILDCARD:
        tests.append((JNE32_IMM, _MAJOR, ex.major))
    if ex.minor != WILDCARD:
        tests.append((JNE32_IMM, _MINOR, ex.minor))
    access: list[bytes] = []
    if default_allow:
        # A deny exception refuses any access that shares a bit with it.
        access = [insn(MOV64_REG, R1, _ACCESS), insn(AND64_IMM, R1, imm=ex.access)]
        tests.append((JEQ_IMM, R1, 0))
    elif ex.access & ALL_ACCESS != ALL_ACCESS:
        # An allow exception must cover every bit asked for.
        access = [insn(MOV64_REG, R1, _ACCESS), insn(AND64_IMM, R1, imm=~ex.access & 0xFFFF)]
        tests.append((JNE_IMM, R1, 0))
    verdict = _verdict(not default_allow)
    out: list[bytes] = []
    # Each test jumps over the rest of the block; the access mask is computed right before
    # its own test (the last).
    for i, (code, reg, value) in enumerate(tests):
        if i == len(tests) - 1 and access:
            out.extend(access)
        remaining = len(tests) - 1 - i
        after = remaining + (len(access) if remaining and access else 0) + len(verdict)
        out.append(insn(code, reg, off=after, imm=value))
    return out + verdict


def program(policy: DevicePolicy) -> bytes:
    """The device filter for ``policy``: instructions ready for BPF_PROG_LOAD."""
    out = _prologue()
    for ex in policy.exceptions:
        out.extend(_block(ex, policy.default_allow))
    out.extend(_verdict(policy.default_allow))
    return b"".join(out)
