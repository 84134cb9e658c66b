"""linux.seccomp: real containers through `shoal runtime run`, profiles refused before create,
and the compiled-filter cache."""

from __future__ import annotations

import errno
import json
import os
import signal
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.runtime_harness import Bundle, cli, read_all, spawn
from tests.helpers.runtime_harness import run as helper_run
from worker.runtime import BundleInvalid
from worker.runtime.docker_seccomp import default_profile
from worker.runtime.seccomp import FilterCache

DENY_MKDIR: dict[str, Any] = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                  "errnoRet": errno.EPERM}],
}


def with_profile(profile: dict[str, Any], nnp: bool = True) -> Callable[[dict[str, Any]], None]:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["linux"]["seccomp"] = profile
        cfg["process"]["noNewPrivileges"] = nnp
    return edit


def run(make_bundle: Callable[..., Bundle], state_root: Path, script: str,
        profile: dict[str, Any], nnp: bool = True) -> tuple[int, str]:
    bundle = make_bundle(["sh", "-c", script], with_profile(profile, nnp))
    done = cli(state_root, "run", "-b", str(bundle.path), "s1", check=False)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.root
@pytest.mark.parametrize("nnp", [True, False])
def test_errno_rule_makes_mkdir_fail_with_eperm(make_bundle: Callable[..., Bundle],
                                                state_root: Path, nnp: bool) -> None:
    code, out = run(make_bundle, state_root,
                    "mkdir /tmp/x; echo rc=$?; grep Seccomp: /proc/self/status", DENY_MKDIR, nnp)
    assert code == 0, out
    assert "Operation not permitted" in out
    assert "rc=1" in out
    assert "Seccomp:\t2" in out


@pytest.mark.root
def test_errno_ret(make_bundle: Callable[..., Bundle], state_root: Path) -> None:
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                             "errnoRet": errno.EROFS}]}
    code, out = run(make_bundle, state_root, "mkdir /tmp/x", profile)
    assert code == 1 and "Read-only file system" in out, out


def returns(program: bytes) -> set[int]:
    """The constants of the program's BPF_RET|BPF_K instructions (struct sock_filter: u16 code,
    u8 jt, u8 jf, u32 k)."""
    return {k for code, _jt, _jf, k in struct.iter_unpack("=HBBI", program) if code == 0x06}


def test_default_errno_ret_is_the_default_return() -> None:
    # A container whose every call but a few fails cannot even report; the program says it.
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.ENXIO,
               "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]}
    program = FilterCache().filter_for(json.dumps(profile).encode()).program
    assert returns(program) >= {0x00050000 | errno.ENXIO, 0x7FFF0000}
    # Without errnoRet an ERRNO action returns EPERM, as runc's.
    del profile["defaultErrnoRet"]
    program = FilterCache().filter_for(json.dumps(profile).encode()).program
    assert 0x00050000 | errno.EPERM in returns(program)


@pytest.mark.root
def test_kill_action(make_bundle: Callable[..., Bundle], state_root: Path) -> None:
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}]}
    code, out = run(make_bundle, state_root, "exec mkdir /tmp/x", profile)
    assert code == 128 + signal.SIGSYS, out


@pytest.mark.root
def test_default_action_kill_process(make_bundle: Callable[..., Bundle],
                                     state_root: Path) -> None:
    # Nothing allowed, not even execve: the container dies of SIGSYS at its exec.
    profile = {"defaultAction": "SCMP_ACT_KILL_PROCESS"}
    code, out = run(make_bundle, state_root, "true", profile)
    assert code == 128 + signal.SIGSYS, out


@pytest.mark.root
def test_argument_comparisons(make_bundle: Callable[..., Bundle], state_root: Path) -> None:
    # busybox chmod calls chmod(path, mode): argument 1 is the mode. Two conditions on the same
    # argument make two rules (either one matches), as runc makes them.
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [
                   {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES,
                    "args": [{"index": 1, "value": 0o600, "op": "SCMP_CMP_EQ"}]},
                   {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EROFS,
                    "args": [{"index": 1, "value": 0o100, "valueTwo": 0o100,
                              "op": "SCMP_CMP_MASKED_EQ"},
                             {"index": 1, "value": 0o400, "op": "SCMP_CMP_LT"}]},
               ]}
    script = "touch /tmp/f; for m in 600 755 200 644; do chmod $m /tmp/f && echo ok $m; done"
    _code, out = run(make_bundle, state_root, script, profile)
    assert "chmod: /tmp/f: Permission denied" in out, out
    assert out.count("chmod: /tmp/f: Read-only file system") == 2, out  # 755 and 200
    assert "ok 644" in out and "ok" not in out.replace("ok 644", ""), out


@pytest.mark.root
def test_unknown_syscall_name_is_skipped(make_bundle: Callable[..., Bundle],
                                         state_root: Path) -> None:
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64",
                                                                    "SCMP_ARCH_X86"],
               "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"],
               "syscalls": [{"names": ["no_such_syscall", "mkdir", "mkdirat"],
                             "action": "SCMP_ACT_ERRNO"}]}
    code, out = run(make_bundle, state_root, "mkdir /tmp/x", profile)
    assert code == 1 and "Operation not permitted" in out, out


@pytest.mark.root
def test_exec_gets_the_filter_too(make_bundle: Callable[..., Bundle], state_root: Path) -> None:
    bundle = make_bundle(["sleep", "1000"], with_profile(DENY_MKDIR))
    cli(state_root, "run", "-d", "-b", str(bundle.path), "e1")
    try:
        done = cli(state_root, "exec", "e1", "mkdir", "/tmp/x", check=False)
        assert done.returncode == 1 and "Operation not permitted" in done.stderr, done
    finally:
        cli(state_root, "delete", "--force", "e1")


@pytest.mark.parametrize(("profile", "field", "words"), [
    ({"defaultAction": "SCMP_ACT_NOTIFY"}, "linux.seccomp.defaultAction", "not supported"),
    ({"defaultAction": "SCMP_ACT_ALLOW",
      "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]},
     "linux.seccomp.syscalls[0].action", "SCMP_ACT_NOTIFY"),
    ({"defaultAction": "SCMP_ACT_NOPE"}, "linux.seccomp.defaultAction", "unknown action"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_BOGUS"]},
     "linux.seccomp.flags[0]", "unknown flag"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]},
     "linux.seccomp.architectures[0]", "unknown architecture"),
    ({"defaultAction": "SCMP_ACT_ALLOW",
      "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
     "linux.seccomp.syscalls[0].args[0].index", "argument index"),
    ({"defaultAction": "SCMP_ACT_ALLOW",
      "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}]}]},
     "linux.seccomp.syscalls[0].args[0].op", "unknown operator"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1},
     "linux.seccomp.defaultErrnoRet", "only SCMP_ACT_ERRNO"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_LOG"}]},
     "linux.seccomp.syscalls[0].names", "at least one"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": "mkdir"},
     "linux.seccomp", "Expected `array`"),
])
def test_bad_profiles_are_refused(profile: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(BundleInvalid) as caught:
        FilterCache().filter_for(json.dumps(profile).encode())
    assert caught.value.field == field
    assert words in caught.value.reason


@pytest.mark.root
def test_bad_profile_refused_before_anything_is_created(make_bundle: Callable[..., Bundle],
                                                        state_root: Path) -> None:
    bundle = make_bundle(["true"], with_profile({"defaultAction": "SCMP_ACT_NOTIFY"}))
    done = cli(state_root, "create", "-b", str(bundle.path), "b1", check=False)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "linux.seccomp.defaultAction" in lines[0], done.stderr
    assert not (state_root / "b1").exists()


def test_compiled_once_per_profile(tmp_path: Path) -> None:
    raw = json.dumps(DENY_MKDIR).encode()
    cache = FilterCache(tmp_path / "cache")
    first = cache.filter_for(raw)
    second = cache.filter_for(raw)
    assert cache.compiled == 1
    assert first == second and len(first.program) % 8 == 0
    # Another process (a new cache on the same directory) reads the program from disk.
    other = FilterCache(tmp_path / "cache")
    assert other.filter_for(raw) == first and other.compiled == 0
    # A different profile is a different program.
    changed = json.dumps(dict(DENY_MKDIR, defaultAction="SCMP_ACT_LOG")).encode()
    assert cache.filter_for(changed).program != first.program and cache.compiled == 2


@pytest.mark.root
def test_through_the_helper_as_the_worker_runs_it(make_bundle: Callable[..., Bundle],
                                                  state_root: Path,
                                                  helper_pids: list[int]) -> None:
    # The helper's zygote forks the init from a pickled plan: the filter travels with it.
    bundle = make_bundle(["sh", "-c", "mkdir /tmp/x"], with_profile(DENY_MKDIR))

    async def body() -> None:
        rt = await spawn(state_root, helper_pids)
        err_r, err_w = os.pipe()
        await rt.create("h1", bundle.path, stderr=err_w)
        os.close(err_w)
        await rt.start("h1")
        status = await rt.wait("h1")
        assert status.code == 1
        assert b"Operation not permitted" in read_all(err_r)
        await rt.delete("h1")
        await rt.shutdown()

    helper_run(body)


def test_docker_profile_resolves_caps_and_arches() -> None:
    plain = default_profile(["CAP_CHOWN"], machine="x86_64")
    assert plain["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    names = {n for rule in plain["syscalls"] for n in rule["names"]}
    assert "mount" not in names  # CAP_SYS_ADMIN only
    assert "arch_prctl" in names  # amd64 only
    assert "s390_pci_mmio_read" not in names
    # clone3 -> ENOSYS without CAP_SYS_ADMIN, so that libcs fall back to clone (filtered).
    assert {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38} in plain["syscalls"]
    admin = default_profile(["CAP_SYS_ADMIN"], machine="x86_64")
    admin_names = {n for rule in admin["syscalls"] for n in rule["names"]}
    assert "mount" in admin_names
    assert not any(rule["names"] == ["clone3"] for rule in admin["syscalls"])
    FilterCache().filter_for(json.dumps(plain).encode())  # libseccomp takes it


@pytest.mark.root
def test_docker_default_profile_in_a_container(make_bundle: Callable[..., Bundle],
                                               state_root: Path) -> None:
    profile = default_profile(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"])
    code, out = run(make_bundle, state_root,
                    "grep Seccomp: /proc/self/status; unshare -U -r -m true || echo refused",
                    profile)
    assert code == 0, out
    assert "Seccomp:\t2" in out and "refused" in out, out


@pytest.mark.root
def test_the_runtime_copes_with_its_newer_calls_denied(make_bundle: Callable[..., Bundle],
                                                       state_root: Path) -> None:
    # runc's "syscall compatibility after seccomp enforcement": the calls the runtime may use
    # after the filter is loaded fail with ENOSYS, and the container still starts.
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["close_range", "fsopen", "fsconfig", "fspick", "openat2",
                                       "open_tree", "move_mount", "mount_setattr"],
                             "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS}]}
    for nnp in (True, False):
        code, out = run(make_bundle, state_root, "echo started", profile, nnp)
        assert code == 0 and "started" in out, out
