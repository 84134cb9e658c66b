"""linux.seccomp of config.json: checked, compiled to a BPF program once per profile, cached.

The profile is checked field by field before anything is created (one ``BundleInvalid`` line
naming the field). libseccomp (through ``pyseccomp``, a ctypes binding to the system library)
compiles it; the program it exports is what the container's init hands to seccomp(2) itself
(``syscalls.seccomp_set_filter``), so the forked init never touches libseccomp. Compiling
Docker's default profile costs milliseconds and loading libseccomp more, so programs are cached
by a digest of the profile's JSON: in memory for the worker's long-lived runtime, and on disk
under the runtime root for ``shoal runtime`` commands, each a new process.

Semantics follow runc: an ERRNO or TRACE action without errnoRet returns EPERM; a syscall name
unknown on this architecture is skipped; a rule whose action is the default one is skipped;
two conditions on the same argument make one rule per condition (OR), otherwise all the
conditions make one rule (AND); no ``flags`` field means SECCOMP_FILTER_FLAG_SPEC_ALLOW; a
call numbered above every call the profile names, on an architecture it lists, gets ENOSYS
rather than a refusing default action (``worker.runtime.seccomp_enosys``).
SCMP_ACT_NOTIFY (a seccomp agent) is refused.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from worker.runtime.errors import BundleInvalid
from worker.runtime.plan import SeccompFilter

if TYPE_CHECKING:
    import pyseccomp

    from worker.runtime.seccomp_enosys import ArchLimit

FIELD = "linux.seccomp"
# Bumped when the way a profile is compiled changes: cached programs of the old way are ignored.
_COMPILER_VERSION = b"shoal-seccomp-2\n"

# seccomp(2) filter flags the runtime-spec names; SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV only
# concerns a notify listener, which shoal refuses.
FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
}
_NOTIFY_ONLY_FLAGS = {"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"}

# Action name -> its SECCOMP_RET_* value, without the errno (added for ERRNO and TRACE).
ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000,  # kills the thread, as SCMP_ACT_KILL_THREAD
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,
    "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
}
_WITH_ERRNO = {"SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"}
# Default actions that let a call run: an unknown call needs no ENOSYS from them.
_LETS_RUN = {"SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE"}

OPERATORS = {
    "SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7,
}

# SCMP_ARCH_* -> the name pyseccomp.Arch gives it.
ARCHITECTURES = {
    "SCMP_ARCH_X86": "X86", "SCMP_ARCH_X86_64": "X86_64", "SCMP_ARCH_X32": "X32",
    "SCMP_ARCH_ARM": "ARM", "SCMP_ARCH_AARCH64": "AARCH64", "SCMP_ARCH_MIPS": "MIPS",
    "SCMP_ARCH_MIPS64": "MIPS64", "SCMP_ARCH_MIPS64N32": "MIPS64N32",
    "SCMP_ARCH_MIPSEL": "MIPSEL", "SCMP_ARCH_MIPSEL64": "MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32": "MIPSEL64N32", "SCMP_ARCH_PPC": "PPC", "SCMP_ARCH_PPC64": "PPC64",
    "SCMP_ARCH_PPC64LE": "PPC64LE", "SCMP_ARCH_S390": "S390", "SCMP_ARCH_S390X": "S390X",
    "SCMP_ARCH_PARISC": "PARISC", "SCMP_ARCH_PARISC64": "PARISC64",
    "SCMP_ARCH_RISCV64": "RISCV64",
}

_MAX_ARGS = 6  # a Linux system call has at most six arguments
_U64 = 2**64


class _Struct(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    pass


class SeccompArg(_Struct):
    index: int
    value: int
    op: str
    value_two: int = 0


class SeccompSyscall(_Struct):
    names: list[str]
    action: str
    errno_ret: int | None = None
    args: list[SeccompArg] = []


class SeccompProfile(_Struct):
    default_action: str
    default_errno_ret: int | None = None
    architectures: list[str] = []
    flags: list[str] | None = None
    listener_path: str | None = None
    listener_metadata: str | None = None
    syscalls: list[SeccompSyscall] = []


def _action(name: str, errno_ret: int | None, action_field: str, errno_field: str) -> int:
    """The SECCOMP_RET_* value of an action and its errnoRet."""
    if name == "SCMP_ACT_NOTIFY":
        raise BundleInvalid(action_field, "SCMP_ACT_NOTIFY (a seccomp agent) is not supported")
    if name not in ACTIONS:
        raise BundleInvalid(action_field, f"unknown action {name!r} (known: {', '.join(ACTIONS)})")
    value = ACTIONS[name]
    if name in _WITH_ERRNO:
        ret = errno.EPERM if errno_ret is None else errno_ret
        if not 0 <= ret < 4096:
            raise BundleInvalid(errno_field, f"{ret} is not an errno")
        return value | ret
    if errno_ret is not None:
        raise BundleInvalid(errno_field,
                            f"only SCMP_ACT_ERRNO and SCMP_ACT_TRACE return an errno, not {name}")
    return value


def _default_action(profile: SeccompProfile) -> int:
    return _action(profile.default_action, profile.default_errno_ret,
                   f"{FIELD}.defaultAction", f"{FIELD}.defaultErrnoRet")


def _call_action(call: SeccompSyscall, i: int) -> int:
    where = f"{FIELD}.syscalls[{i}]"
    return _action(call.action, call.errno_ret, f"{where}.action", f"{where}.errnoRet")


def check(raw: bytes) -> SeccompProfile:
    """Decode and check the profile; anything wrong raises BundleInvalid naming the field."""
    try:
        profile = msgspec.json.decode(raw, type=SeccompProfile)
    except msgspec.ValidationError as exc:
        raise BundleInvalid(FIELD, str(exc).replace("`$", f"`{FIELD}")) from exc
    _default_action(profile)
    if profile.listener_path or profile.listener_metadata:
        raise BundleInvalid(f"{FIELD}.listenerPath", "seccomp agents are not supported")
    for i, arch in enumerate(profile.architectures):
        if arch not in ARCHITECTURES:
            raise BundleInvalid(f"{FIELD}.architectures[{i}]", f"unknown architecture {arch!r}")
    for i, flag in enumerate(profile.flags or []):
        if flag in _NOTIFY_ONLY_FLAGS:
            raise BundleInvalid(f"{FIELD}.flags[{i}]",
                                f"{flag} only applies to SCMP_ACT_NOTIFY, which is not supported")
        if flag not in FLAGS:
            raise BundleInvalid(f"{FIELD}.flags[{i}]",
                                f"unknown flag {flag!r} (known: {', '.join(FLAGS)})")
    for i, call in enumerate(profile.syscalls):
        where = f"{FIELD}.syscalls[{i}]"
        if not call.names:
            raise BundleInvalid(f"{where}.names", "must name at least one system call")
        for j, name in enumerate(call.names):
            if not name:
                raise BundleInvalid(f"{where}.names[{j}]", "empty system call name")
        _call_action(call, i)
        for j, arg in enumerate(call.args):
            if not 0 <= arg.index < _MAX_ARGS:
                raise BundleInvalid(f"{where}.args[{j}].index",
                                    f"{arg.index} is not an argument index (0 to 5)")
            if arg.op not in OPERATORS:
                raise BundleInvalid(f"{where}.args[{j}].op",
                                    f"unknown operator {arg.op!r} (known: {', '.join(OPERATORS)})")
            for what, value in (("value", arg.value), ("valueTwo", arg.value_two)):
                if not 0 <= value < _U64:
                    raise BundleInvalid(f"{where}.args[{j}].{what}", f"{value} is not a uint64")
    return profile


def flags_of(profile: SeccompProfile) -> int:
    """The seccomp(2) flags: SPEC_ALLOW when the profile sets none (not even an empty list), as
    runc does; TSYNC is harmless (the init is single-threaded)."""
    names = ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"] if profile.flags is None else profile.flags
    value = 0
    for name in names:
        value |= FLAGS[name]
    return value


def compile_program(profile: SeccompProfile) -> bytes:
    """The profile as the array of struct sock_filter that seccomp(2) loads (libseccomp)."""
    import pyseccomp

    default = _default_action(profile)
    flt = pyseccomp.SyscallFilter(default)
    for name in profile.architectures:
        arch = getattr(pyseccomp.Arch, ARCHITECTURES[name])
        if not flt.exist_arch(arch):
            flt.add_arch(arch)
    if len(profile.syscalls) > 32:
        # libseccomp's binary tree: fewer instructions per call for long lists (runc does
        # the same; 2.5.x misbehaves with it on an empty list).
        flt.set_attr(pyseccomp.Attr.CTL_OPTIMIZE, 2)
    for i, call in enumerate(profile.syscalls):
        action = _call_action(call, i)
        if action == default:
            continue  # redundant; libseccomp would refuse it
        conditions = [pyseccomp.Arg(a.index, OPERATORS[a.op], a.value, a.value_two)
                      for a in call.args]
        indexes = [a.index for a in call.args]
        separate = len(set(indexes)) != len(indexes)
        for name in call.names:
            number = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)
            if number == -1:  # __NR_SCMP_ERROR: unknown here, skipped as runc does
                continue
            try:
                if separate:
                    for condition in conditions:
                        flt.add_rule(action, number, condition)
                else:
                    flt.add_rule(action, number, *conditions)
            except OSError as exc:
                raise BundleInvalid(f"{FIELD}.syscalls[{i}]",
                                    f"libseccomp refused the rule for {name}: "
                                    f"{os.strerror(exc.errno or 0)}") from exc
    if not _needs_enosys(profile, default):
        return _export(flt)
    from worker.runtime.seccomp_enosys import prelude

    limits = _arch_limits(profile)
    return (prelude(limits) if limits else b"") + _export(flt)


def _needs_enosys(profile: SeccompProfile, default: int) -> bool:
    """Whether unknown calls need ENOSYS: not when the default action lets them run, nor when
    it already returns ENOSYS."""
    return profile.default_action not in _LETS_RUN and default != ACTIONS["SCMP_ACT_ERRNO"] | (
        errno.ENOSYS)


def _arch_limits(profile: SeccompProfile) -> list[ArchLimit]:
    """The highest call the profile names (whatever its action) on each architecture it
    lists; an architecture where it names none gets no limit."""
    import pyseccomp

    from worker.runtime.seccomp_enosys import AUDIT_ARCH_X86_64, ArchLimit

    names = {name for call in profile.syscalls for name in call.names}
    limits: dict[int, ArchLimit] = {}
    for arch_name in dict.fromkeys(profile.architectures):
        arch = getattr(pyseccomp.Arch, ARCHITECTURES[arch_name])
        # libseccomp's numbers of names this architecture lacks are negative.
        highest = max((n for n in (pyseccomp.resolve_syscall(arch, name) for name in names)
                       if n > 0), default=None)
        if highest is None:
            continue
        if arch_name == "SCMP_ARCH_X32":  # the x86_64 architecture's other ABI
            limit = limits.get(AUDIT_ARCH_X86_64, ArchLimit(AUDIT_ARCH_X86_64))
            limits[AUDIT_ARCH_X86_64] = ArchLimit(AUDIT_ARCH_X86_64, limit.highest, highest)
        elif int(arch) == AUDIT_ARCH_X86_64:
            limit = limits.get(AUDIT_ARCH_X86_64, ArchLimit(AUDIT_ARCH_X86_64))
            limits[AUDIT_ARCH_X86_64] = ArchLimit(AUDIT_ARCH_X86_64, highest, limit.highest_x32)
        else:
            limits[int(arch)] = ArchLimit(int(arch), highest)
    return list(limits.values())


def _export(flt: pyseccomp.SyscallFilter) -> bytes:
    # libseccomp 2.5 exports to a file descriptor only.
    with tempfile.TemporaryFile() as f:
        flt.export_bpf(f)
        f.seek(0)
        return f.read()


class FilterCache:
    """Compiled programs by profile digest: in memory, and in ``directory`` when given."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self._memory: dict[str, bytes] = {}
        self.compiled = 0  # how many profiles this cache had to compile (tests, bench)

    def filter_for(self, raw: bytes) -> SeccompFilter:
        """Check ``raw`` (the linux.seccomp JSON) and return its filter, compiled at most once."""
        profile = check(raw)
        digest = hashlib.sha256(_COMPILER_VERSION + raw).hexdigest()
        program = self._memory.get(digest)
        if program is None:
            program = self._read(digest)
        if program is None:
            program = compile_program(profile)
            self.compiled += 1
            self._write(digest, program)
        self._memory[digest] = program
        return SeccompFilter(program=program, flags=flags_of(profile), digest=digest)

    def _read(self, digest: str) -> bytes | None:
        if self.directory is None:
            return None
        try:
            data = (self.directory / f"{digest}.bpf").read_bytes()
        except OSError:
            return None
        # A struct sock_filter is 8 bytes; anything else is a torn or foreign file.
        return data if data and len(data) % 8 == 0 else None

    def _write(self, digest: str, program: bytes) -> None:
        if self.directory is None:
            return
        # Best effort: a cache that cannot be written only costs the next command a compile.
        with contextlib.suppress(OSError):
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
            try:
                os.write(fd, program)
            finally:
                os.close(fd)
            os.replace(tmp, self.directory / f"{digest}.bpf")


_CACHES: dict[Path | None, FilterCache] = {}


def memory_cache() -> FilterCache:
    """This process's cache without a directory."""
    return cache_in(None)


def cache_in(directory: Path | None) -> FilterCache:
    """This process's one cache for ``directory``: the memory part is shared by every create."""
    cache = _CACHES.get(directory)
    if cache is None:
        cache = _CACHES[directory] = FilterCache(directory)
    return cache
