"""A tiny eBPF interpreter for the instructions a cgroup device filter uses: runs a program's
raw bytes over one struct bpf_cgroup_dev_ctx and returns r0, decoding each instruction itself
(not with the generator's encoder), so that a wrong opcode, register or offset shows.

Anything outside the subset (another opcode, a register read before it is written, a load from
anywhere but the context, a jump out of the program, a backward jump) is an error, as the
kernel's verifier would refuse most of them.
"""

from __future__ import annotations

import struct

_MASK64 = (1 << 64) - 1


class BadProgram(Exception):
    pass


def run_device_filter(program: bytes, dev_type: int, access: int, major: int,
                      minor: int) -> int:
    if len(program) % 8 or not program:
        raise BadProgram("not a whole number of instructions")
    insns = [struct.unpack_from("<BBhi", program, i) for i in range(0, len(program), 8)]
    ctx = struct.pack("<III", (access << 16) | dev_type, major, minor)
    regs: dict[int, int] = {1: -1}  # -1: r1 is the context pointer

    def read(reg: int) -> int:
        if reg not in regs or regs[reg] == -1:
            raise BadProgram(f"r{reg} read before it holds a number")
        return regs[reg]

    pc = 0
    while True:
        if not 0 <= pc < len(insns):
            raise BadProgram(f"ran off the program at {pc}")
        code, reg_byte, off, imm = insns[pc]
        dst, src = reg_byte & 0xF, reg_byte >> 4
        pc += 1
        imm64 = imm & _MASK64  # the immediate sign-extended, as 64-bit operations see it
        if code == 0x61:  # ldx w
            if regs.get(src) != -1 or off not in (0, 4, 8):
                raise BadProgram(f"load from r{src}+{off}, not from the context")
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif code == 0xB7:
            regs[dst] = imm64
        elif code == 0xBF:
            regs[dst] = read(src)
        elif code == 0x77:
            regs[dst] = read(dst) >> imm
        elif code == 0x57:
            regs[dst] = read(dst) & imm64
        elif code in (0x56, 0x15, 0x55):
            if off < 0:
                raise BadProgram("a backward jump")
            value = read(dst)
            # jmp32 (0x56) compares the low halves, the immediate as 32 bits.
            differs = ((value & 0xFFFFFFFF) != (imm & 0xFFFFFFFF) if code == 0x56
                       else value != imm64)
            if differs == (code != 0x15):
                pc += off
        elif code == 0x95:
            return read(0)
        else:
            raise BadProgram(f"opcode {code:#x} is outside the subset")
