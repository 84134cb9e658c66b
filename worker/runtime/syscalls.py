"""Thin ctypes bindings for the Linux calls Python 3.11's os module lacks.

Every wrapper raises OSError with errno and a short description, like the os module does.
"""

from __future__ import annotations

import ctypes
import os
import sys

# The symbols already loaded into this process, libc's among them: no library search (which
# would run ``ldconfig``) at import time.
_libc = ctypes.CDLL(None, use_errno=True)
# The same symbols called without releasing the GIL: for clone, whose child must resume
# holding it exactly as the parent does.
_libc_gil = ctypes.PyDLL(None, use_errno=True)

SYS_CLONE = 56  # x86_64
SYS_PIVOT_ROOT = 155
SYS_OPENAT2 = 437
SYS_MOUNT_SETATTR = 442
AT_RECURSIVE = 0x8000
SYS_SECCOMP = 317
SECCOMP_SET_MODE_FILTER = 1

CLONE_PARENT = 0x00008000
MNT_DETACH = 2
PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
TIOCSCTTY = 0x540E

_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def _b(value: str | None) -> bytes | None:
    return value.encode() if value is not None else None


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def mount(source: str | None, target: str, fstype: str | None, flags: int,
          data: str | None = None) -> None:
    result = _libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags),
                         _b(data) if data else None)
    _check(result, f"mount {target}")


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), ctypes.c_int(flags)), f"umount {target}")


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def mount_setattr(path: str, attr_set: int, attr_clear: int, *, recursive: bool) -> None:
    """mount_setattr(2) (Linux 5.12): change the attributes of the mount at ``path`` and, with
    ``recursive``, of every mount below it. ENOSYS says that the kernel is older."""
    attr = _MountAttr(attr_set, attr_clear, 0, 0)
    flags = AT_RECURSIVE if recursive else 0
    _check(_libc.syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(-100), _b(path),
                         ctypes.c_uint(flags), ctypes.byref(attr),
                         ctypes.c_size_t(ctypes.sizeof(attr))), f"mount_setattr {path}")


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_libc.syscall(ctypes.c_long(SYS_PIVOT_ROOT), _b(new_root), _b(put_old)),
           "pivot_root")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname")


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(_libc.setdomainname(raw, ctypes.c_size_t(len(raw))), "setdomainname")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                              ctypes.c_ulong(arg4), ctypes.c_ulong(arg5)), "prctl")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set this thread's effective, permitted and inheritable sets (64-bit masks)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.capset(ctypes.byref(header), data), "capset")


def set_child_subreaper() -> None:
    """Orphaned descendants are reparented to this process, so it can reap their exit status."""
    prctl(PR_SET_CHILD_SUBREAPER, 1)


RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


def openat2(dir_fd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2): ``path`` opened relative to ``dir_fd`` under the ``resolve`` rules
    (``RESOLVE_IN_ROOT``: ``..`` and absolute symlinks stay inside ``dir_fd``, as in a
    chroot). Linux 5.6 or later."""
    how = _OpenHow(flags, mode, resolve)
    return _check(_libc.syscall(ctypes.c_long(SYS_OPENAT2), ctypes.c_int(dir_fd),
                                os.fsencode(path), ctypes.byref(how),
                                ctypes.c_size_t(ctypes.sizeof(how))), f"openat2 {path}")


SYS_CLOSE_RANGE = 436


def close_from(lowfd: int) -> None:
    """Close every descriptor >= lowfd, so nothing of the runtime leaks into the container."""
    if _libc.syscall(ctypes.c_long(SYS_CLOSE_RANGE), ctypes.c_uint(lowfd),
                     ctypes.c_uint(0xFFFFFFFF), ctypes.c_uint(0)) < 0:
        os.closerange(lowfd, os.sysconf("SC_OPEN_MAX"))


def clone_sibling(flags: int) -> int:
    """Fork with ``clone(CLONE_PARENT | flags | SIGCHLD)``: the child is our parent's child,
    not ours. Like ``os.fork``, returns 0 in the child and its pid in the parent.

    Only for a single-threaded process whose child does little before it execs or exits:
    unlike ``fork(3)`` this runs no at-fork handlers (neither glibc's nor Python's), which is
    harmless where no other thread can hold a lock, and glibc's cached thread id stays the
    parent's (glibc's own signal and thread calls read the real one from the kernel)."""
    import signal

    result = _libc_gil.syscall(ctypes.c_long(SYS_CLONE),
                               ctypes.c_ulong(CLONE_PARENT | flags | signal.SIGCHLD),
                               ctypes.c_void_p(None), ctypes.c_void_p(None),
                               ctypes.c_void_p(None), ctypes.c_ulong(0))
    return _check(result, "clone")


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_set_filter(program: bytes, flags: int) -> None:
    """seccomp(SECCOMP_SET_MODE_FILTER, flags, program): ``program`` is an array of struct
    sock_filter (8 bytes each), as libseccomp exports it."""
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.addressof(buf))
    _check(_libc.syscall(ctypes.c_long(SYS_SECCOMP), ctypes.c_uint(SECCOMP_SET_MODE_FILTER),
                         ctypes.c_uint(flags), ctypes.byref(prog)), "seccomp")


SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
_IFNAMSIZ = 16  # struct ifreq: the name, then a union (ifr_flags: a short) ...
_IFREQ_SIZE = 40  # ... 40 bytes in all on x86-64 and arm64


def loopback_up() -> None:
    """Bring ``lo`` up in this process's network namespace (a new one has it down), as runc
    does for every network namespace it creates: 127.0.0.1 works inside, even with no network.
    The ioctls go through ctypes, loaded already: fcntl is a shared library an init would load
    just for them (~0.4 ms)."""
    import _socket

    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)  # socket.py imports enum
    try:
        request = ctypes.create_string_buffer(b"lo", _IFREQ_SIZE)  # struct ifreq, zeroed
        _check(_libc.ioctl(sock.fileno(), ctypes.c_ulong(SIOCGIFFLAGS), request),
               "ioctl SIOCGIFFLAGS lo")
        flags = int.from_bytes(request.raw[_IFNAMSIZ:_IFNAMSIZ + 2], sys.byteorder)
        if not flags & IFF_UP:
            request = ctypes.create_string_buffer(
                b"lo".ljust(_IFNAMSIZ, b"\0") + (flags | IFF_UP).to_bytes(2, sys.byteorder),
                _IFREQ_SIZE)
            _check(_libc.ioctl(sock.fileno(), ctypes.c_ulong(SIOCSIFFLAGS), request),
                   "ioctl SIOCSIFFLAGS lo")
    finally:
        sock.close()
