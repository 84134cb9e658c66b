"""This host's platform in OCI terms (``linux``/``amd64``), for generated configs and for
choosing a manifest from a multi-platform index."""

from __future__ import annotations

import platform
import sys

from worker.images.oci import Platform

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
         "i386": "386", "i686": "386", "armv7l": "arm", "armv6l": "arm", "ppc64le": "ppc64le",
         "s390x": "s390x", "riscv64": "riscv64", "loongarch64": "loong64"}
_VARIANT = {"armv7l": "v7", "armv6l": "v6", "aarch64": "v8", "arm64": "v8"}


def host_platform() -> Platform:
    machine = platform.machine().lower()
    os_name = "windows" if sys.platform == "win32" else sys.platform.rstrip("0123456789")
    arch = _ARCH.get(machine, machine)
    variant = _VARIANT.get(machine) if arch == "arm" else None
    return Platform(architecture=arch, os=os_name, variant=variant)


def matches(candidate: Platform | None, host: Platform) -> bool:
    """Whether an index entry's platform runs here (an entry without one is taken as ours)."""
    if candidate is None:
        return True
    if candidate.os != host.os or candidate.architecture != host.architecture:
        return False
    return candidate.variant in (None, host.variant) or host.variant is None
