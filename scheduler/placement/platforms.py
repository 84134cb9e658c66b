"""Platform names as placement compares them: Go's architecture names, lower-case os names.

Nodes report what ``uname`` says (x86_64, aarch64); images and specs use Go's names (amd64,
arm64). Both are folded to Go's names here so a comparison never depends on who spelt it.
"""

from __future__ import annotations

from protocol.errors import InvalidArgument
from protocol.specs import Platform

KNOWN_OS: frozenset[str] = frozenset({"linux", "windows"})

# Aliases seen in the wild, folded to the names Go (and so Docker and OCI) uses.
_ARCH_ALIASES: dict[str, str] = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "x64": "amd64",
    "aarch64": "arm64",
    "armv8": "arm64",
    "armhf": "arm",
    "armel": "arm",
    "armv7l": "arm",
    "i386": "386",
    "i686": "386",
    "x86": "386",
    "ppc64el": "ppc64le",
}
KNOWN_ARCH: frozenset[str] = frozenset(
    {"amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64", "mips64le"}
)


def normalise_os(name: str) -> str:
    return name.strip().lower()


def normalise_arch(name: str) -> str:
    folded = name.strip().lower()
    return _ARCH_ALIASES.get(folded, folded)


def normalise(platform: Platform) -> tuple[str, str, str]:
    """(os, arch, variant) in canonical spelling; no validation (nodes may report oddities)."""
    return normalise_os(platform.os), normalise_arch(platform.arch), platform.variant.lower()


def validate(platform: Platform, field: str = "platform") -> tuple[str, str, str]:
    """Canonical (os, arch, variant) of a requested platform, or InvalidArgument."""
    os_name, arch, variant = normalise(platform)
    if os_name not in KNOWN_OS:
        raise InvalidArgument(
            f"{field}.os: unknown operating system {platform.os!r} "
            f"(known: {', '.join(sorted(KNOWN_OS))})",
            details={"field": f"{field}.os", "value": platform.os},
        )
    if arch not in KNOWN_ARCH:
        raise InvalidArgument(
            f"{field}.arch: unknown architecture {platform.arch!r} "
            f"(known: {', '.join(sorted(KNOWN_ARCH))}, or an alias such as x86_64, aarch64)",
            details={"field": f"{field}.arch", "value": platform.arch},
        )
    return os_name, arch, variant
