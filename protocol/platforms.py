"""Platform names, one spelling: Go's (and so OCI's and Docker's) os/arch/variant names.

Hosts say what ``uname`` says (Linux, x86_64, aarch64, armv7l); images, specs and the wire use
the OCI image-spec's names (linux, amd64, arm64, arm + variant v7). Everything that compares,
reports or validates a platform folds it here first, so a comparison never depends on who
spelt it. Pure functions of their input, except ``host_platform``, the one thin accessor of
the machine we run on.
"""

from __future__ import annotations

import functools

from protocol.errors import InvalidArgument
from protocol.specs import Platform

KNOWN_OS: frozenset[str] = frozenset({"linux", "windows"})
KNOWN_ARCH: frozenset[str] = frozenset(
    {"amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64", "mips64le", "loong64"}
)

# Aliases seen in the wild (uname, Debian, Windows) → (Go's arch name, the variant the alias
# implies or ""). An explicit variant wins over the implied one.
_ARCH_ALIASES: dict[str, tuple[str, str]] = {
    "x86_64": ("amd64", ""),
    "x86-64": ("amd64", ""),
    "x64": ("amd64", ""),
    "aarch64": ("arm64", "v8"),
    "armv8": ("arm64", "v8"),
    "armv8l": ("arm", "v8"),  # a 32-bit userland on a v8 core
    "armv7l": ("arm", "v7"),
    "armv7": ("arm", "v7"),
    "armhf": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "armv6": ("arm", "v6"),
    "armv5tel": ("arm", "v5"),
    "armel": ("arm", ""),
    "i386": ("386", ""),
    "i486": ("386", ""),
    "i586": ("386", ""),
    "i686": ("386", ""),
    "x86": ("386", ""),
    "ppc64el": ("ppc64le", ""),
    "loongarch64": ("loong64", ""),
}
_OS_ALIASES: dict[str, str] = {"win32": "windows", "cygwin": "windows"}


def normalise_os(name: str) -> str:
    """``Linux`` → ``linux``, ``Windows``/``win32`` → ``windows``; others lower-cased."""
    folded = name.strip().lower()
    return _OS_ALIASES.get(folded, folded)


def normalise_arch(name: str) -> str:
    """``x86_64`` → ``amd64``, ``aarch64`` → ``arm64``, ``armv7l`` → ``arm``, ``i686`` → ``386``."""
    folded = name.strip().lower()
    return _ARCH_ALIASES.get(folded, (folded, ""))[0]


def normalise_variant(variant: str) -> str:
    """``V7`` and ``7`` → ``v7``; empty stays empty (any variant)."""
    folded = variant.strip().lower()
    return f"v{folded}" if folded[:1].isdigit() else folded


def normalise(platform: Platform) -> tuple[str, str, str]:
    """(os, arch, variant) in canonical spelling; no validation (nodes may report oddities).
    An arch alias that names a variant (``armv7l``) supplies it when none is given."""
    folded = platform.arch.strip().lower()
    arch, implied = _ARCH_ALIASES.get(folded, (folded, ""))
    return normalise_os(platform.os), arch, normalise_variant(platform.variant) or implied


def canonical(platform: Platform) -> Platform:
    """The same platform in canonical spelling."""
    os_name, arch, variant = normalise(platform)
    return Platform(os=os_name, arch=arch, variant=variant)


def from_uname(sysname: str, machine: str) -> Platform:
    """A host's platform from ``uname -s`` and ``uname -m`` (or ``platform.system()`` and
    ``platform.machine()``): ``Linux``/``armv7l`` → linux/arm/v7."""
    return canonical(Platform(os=sysname, arch=machine))


@functools.cache
def host_platform() -> Platform:
    """The platform of the machine this process runs on."""
    import platform  # only here: the rest of this module is pure

    return from_uname(platform.system(), platform.machine())


def validate(platform: Platform, field: str = "platform") -> tuple[str, str, str]:
    """Canonical (os, arch, variant) of a requested platform, or InvalidArgument. An empty
    arch (``windows`` alone) or variant means any."""
    os_name, arch, variant = normalise(platform)
    if os_name not in KNOWN_OS:
        raise InvalidArgument(
            f"{field}.os: unknown operating system {platform.os!r} "
            f"(known: {', '.join(sorted(KNOWN_OS))})",
            details={"field": f"{field}.os", "value": platform.os},
        )
    if arch and arch not in KNOWN_ARCH:  # an empty architecture means any
        raise InvalidArgument(
            f"{field}.arch: unknown architecture {platform.arch!r} "
            f"(known: {', '.join(sorted(KNOWN_ARCH))}, or an alias such as x86_64, aarch64)",
            details={"field": f"{field}.arch", "value": platform.arch},
        )
    return os_name, arch, variant
