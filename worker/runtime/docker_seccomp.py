"""Docker's default seccomp profile, turned into a runtime-spec ``linux.seccomp`` for one process.

``docker_seccomp_default.json`` is moby/profiles' ``seccomp/default.json`` as vendored by
moby/moby at b985e2313a86 (Apache-2.0, © Docker, Inc.), unchanged. Docker's format adds
``archMap`` and per-rule ``includes``/``excludes`` (architectures, capabilities, a minimum
kernel); they are resolved here the way moby's ``setupSeccomp`` does: the native architecture
with its sub-architectures, and a rule kept when the process's bounding set and this machine's
architecture and kernel satisfy its filters. The result is what ``shoal run`` puts in a
container's config.json when no ``--security-opt seccomp=`` says otherwise.
"""

from __future__ import annotations

import functools
import json
import os
import platform
from pathlib import Path
from typing import Any

PROFILE_PATH = Path(__file__).with_name("docker_seccomp_default.json")

# uname -m -> the architecture names Docker's profile uses.
_NATIVE = {"x86_64": "amd64", "aarch64": "arm64", "i686": "x86", "i386": "x86",
           "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}
_SECCOMP_ARCH = {"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64",
                 "x86": "SCMP_ARCH_X86", "arm": "SCMP_ARCH_ARM", "ppc64le": "SCMP_ARCH_PPC64LE",
                 "s390x": "SCMP_ARCH_S390X", "riscv64": "SCMP_ARCH_RISCV64"}


@functools.cache
def _docker_default() -> dict[str, Any]:
    # Read once per process (the worker makes a config per container); never mutated.
    loaded: dict[str, Any] = json.loads(PROFILE_PATH.read_text())
    return loaded


def _kernel_at_least(version: str) -> bool:
    want = tuple(int(p) for p in version.split("."))
    have = []
    for part in os.uname().release.split("-")[0].split(".")[:len(want)]:
        digits = "".join(ch for ch in part if ch.isdigit())
        have.append(int(digits or 0))
    return tuple(have) >= want


def _matches(flt: dict[str, Any], arch: str, bounding: set[str]) -> tuple[bool, bool, bool]:
    """Whether the filter's arches, caps and minKernel each apply (True when absent)."""
    arches = flt.get("arches") or []
    caps = flt.get("caps") or []
    min_kernel = flt.get("minKernel")
    return (not arches or arch in arches,
            not caps or any(c in bounding for c in caps),
            min_kernel is None or _kernel_at_least(min_kernel))


def default_profile(bounding: list[str], profile: dict[str, Any] | None = None,
                    machine: str | None = None) -> dict[str, Any]:
    """Docker's default profile (or ``profile``, in Docker's format) for a process whose
    bounding set is ``bounding``, as a runtime-spec linux.seccomp object."""
    if profile is None:
        profile = _docker_default()
    arch = _NATIVE.get(machine or platform.machine(), machine or platform.machine())
    caps = set(bounding)
    result: dict[str, Any] = {"defaultAction": profile["defaultAction"]}
    if "defaultErrnoRet" in profile:
        result["defaultErrnoRet"] = profile["defaultErrnoRet"]
    architectures = list(profile.get("architectures", []))
    for entry in profile.get("archMap", []):
        if entry["architecture"] == _SECCOMP_ARCH.get(arch):
            architectures += [entry["architecture"], *entry.get("subArchitectures", [])]
    if architectures:
        result["architectures"] = architectures
    if profile.get("flags") is not None:
        result["flags"] = profile["flags"]
    syscalls = []
    for call in profile.get("syscalls", []):
        excludes = call.get("excludes") or {}
        if excludes:
            arch_ok, caps_ok, kernel_ok = _matches(excludes, arch, caps)
            # moby: excluded when any given exclusion applies (each absent one does not).
            if ((excludes.get("arches") and arch_ok) or (excludes.get("caps") and caps_ok)
                    or (excludes.get("minKernel") and kernel_ok)):
                continue
        includes = call.get("includes") or {}
        if includes:
            # moby: every listed capability is needed, not just one.
            needed_caps = includes.get("caps") or []
            arch_ok, _any_cap, kernel_ok = _matches(includes, arch, caps)
            if not (arch_ok and kernel_ok and all(c in caps for c in needed_caps)):
                continue
        names = call.get("names") or ([call["name"]] if call.get("name") else [])
        rule: dict[str, Any] = {"names": names, "action": call["action"]}
        for key in ("errnoRet", "args"):
            if call.get(key) is not None:
                rule[key] = call[key]
        syscalls.append(rule)
    result["syscalls"] = syscalls
    return result
