"""Confining a cgroup v2 directory's devices: a device filter loaded with bpf(2) and attached
to the cgroup, replacing the filters attached to it before.

cgroup v2 has no devices controller: the kernel runs the BPF_CGROUP_DEVICE programs attached
to a task's cgroup and its ancestors, and every one of them must allow. The new program is
attached (BPF_F_ALLOW_MULTI, so that an ancestor's and a delegated child's programs keep
running) before the old ones of this cgroup are detached: during an update the container is
under both, never under neither. Imported only where a cgroup v2 device filter is needed.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

from worker.runtime import device_filter, device_policy

_libc = ctypes.CDLL(None, use_errno=True)

SYS_BPF = 321  # x86_64
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2

# The kernel takes a program without GPL-only helpers under any licence string: the project's.
LICENSE = b"Apache-2.0"
PROGRAM_NAME = b"shoal_devices"
_ATTR_SIZE = 128  # more than any command below reads; the rest is zero, as the kernel wants
_LOG_SIZE = 1 << 16


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char], what: str) -> int:
    result = _libc.syscall(ctypes.c_long(SYS_BPF), ctypes.c_int(cmd), attr,
                           ctypes.c_uint(_ATTR_SIZE))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bpf {what}: {os.strerror(err)}")
    return int(result)


def _attr(*fields: tuple[int, str, int]) -> ctypes.Array[ctypes.c_char]:
    """A zeroed union bpf_attr with (offset, struct format, value) fields set."""
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    for offset, fmt, value in fields:
        struct.pack_into("<" + fmt, attr, offset, value)
    return attr


def load(insns: bytes) -> int:
    """BPF_PROG_LOAD of a device filter: its fd. The verifier's log is in the error."""
    code = ctypes.create_string_buffer(insns, len(insns))
    licence = ctypes.create_string_buffer(LICENSE)

    def attempt(log: ctypes.Array[ctypes.c_char] | None) -> int:
        fields = [(0, "I", BPF_PROG_TYPE_CGROUP_DEVICE),
                  (4, "I", len(insns) // device_filter.INSN_SIZE),
                  (8, "Q", ctypes.addressof(code)), (16, "Q", ctypes.addressof(licence)),
                  (68, "I", BPF_CGROUP_DEVICE)]  # expected_attach_type
        if log is not None:
            fields += [(24, "I", 1), (28, "I", len(log)), (32, "Q", ctypes.addressof(log))]
        attr = _attr(*fields)
        ctypes.memmove(ctypes.addressof(attr) + 48, PROGRAM_NAME, len(PROGRAM_NAME))
        return _bpf(BPF_PROG_LOAD, attr, "load the device filter")

    try:
        return attempt(None)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EACCES):  # the verifier said no: say why
            raise
    log = ctypes.create_string_buffer(_LOG_SIZE)
    try:
        return attempt(log)
    except OSError as exc:
        verdict = log.value.decode(errors="replace").strip().splitlines()[-3:]
        raise OSError(exc.errno, f"{exc.strerror}: {' | '.join(verdict)}") from None


def attached(cgroup_fd: int) -> list[int]:
    """The ids of the device filters attached to the cgroup itself (not its ancestors')."""
    capacity = 16
    while True:
        ids = (ctypes.c_uint32 * capacity)()
        attr = _attr((0, "I", cgroup_fd), (4, "I", BPF_CGROUP_DEVICE),
                     (16, "Q", ctypes.addressof(ids)), (24, "I", capacity))
        try:
            _bpf(BPF_PROG_QUERY, attr, "query the cgroup's device filters")
        except OSError as exc:
            if exc.errno != errno.ENOSPC:  # more than asked for: prog_cnt says how many
                raise
            capacity = ctypes.c_uint32.from_buffer(attr, 24).value
            continue
        count = ctypes.c_uint32.from_buffer(attr, 24).value
        return list(ids[:count])


def attach(cgroup_fd: int, prog_fd: int) -> None:
    _bpf(BPF_PROG_ATTACH, _attr((0, "I", cgroup_fd), (4, "I", prog_fd),
                                (8, "I", BPF_CGROUP_DEVICE), (12, "I", BPF_F_ALLOW_MULTI)),
         "attach the device filter")


def detach(cgroup_fd: int, prog_id: int) -> None:
    """Detach a program by id; one that is gone already is fine."""
    try:
        prog_fd = _bpf(BPF_PROG_GET_FD_BY_ID, _attr((0, "I", prog_id)),
                       f"open device filter {prog_id}")
    except FileNotFoundError:
        return
    try:
        _bpf(BPF_PROG_DETACH, _attr((0, "I", cgroup_fd), (4, "I", prog_fd),
                                    (8, "I", BPF_CGROUP_DEVICE)),
             f"detach device filter {prog_id}")
    except FileNotFoundError:
        pass
    finally:
        os.close(prog_fd)


def confine(cgroup_dir: str, policy: device_policy.DevicePolicy) -> None:
    """Make ``policy`` the device filter of the cgroup v2 directory ``cgroup_dir``."""
    cgroup_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        before = attached(cgroup_fd)
        prog_fd = load(device_filter.program(policy))
        try:
            attach(cgroup_fd, prog_fd)
        finally:
            os.close(prog_fd)  # the attachment holds the program now
        for prog_id in before:
            detach(cgroup_fd, prog_id)
    finally:
        os.close(cgroup_fd)
