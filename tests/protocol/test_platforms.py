"""The one mapping of platform names: uname's and Debian's spellings → OCI's."""

from __future__ import annotations

import platform

import pytest

from protocol.errors import InvalidArgument
from protocol.platforms import (
    KNOWN_ARCH,
    from_uname,
    host_platform,
    normalise,
    normalise_arch,
    normalise_os,
    normalise_variant,
    validate,
)
from protocol.specs import Platform

UNAME = [
    # (uname -s, uname -m) → (os, arch, variant)
    ("Linux", "x86_64", ("linux", "amd64", "")),
    ("Linux", "aarch64", ("linux", "arm64", "v8")),
    ("Linux", "armv7l", ("linux", "arm", "v7")),
    ("Linux", "armv6l", ("linux", "arm", "v6")),
    ("Linux", "armv5tel", ("linux", "arm", "v5")),
    ("Linux", "armv8l", ("linux", "arm", "v8")),
    ("Linux", "i386", ("linux", "386", "")),
    ("Linux", "i686", ("linux", "386", "")),
    ("Linux", "ppc64le", ("linux", "ppc64le", "")),
    ("Linux", "s390x", ("linux", "s390x", "")),
    ("Linux", "riscv64", ("linux", "riscv64", "")),
    ("Linux", "loongarch64", ("linux", "loong64", "")),
    ("Windows", "AMD64", ("windows", "amd64", "")),
    ("Windows", "ARM64", ("windows", "arm64", "")),
    ("Windows", "x86", ("windows", "386", "")),
    ("Darwin", "arm64", ("darwin", "arm64", "")),
]


@pytest.mark.parametrize(("sysname", "machine", "want"), UNAME,
                         ids=[f"{s}-{m}" for s, m, _ in UNAME])
def test_a_host_platform_from_uname(sysname: str, machine: str,
                                    want: tuple[str, str, str]) -> None:
    got = from_uname(sysname, machine)
    assert (got.os, got.arch, got.variant) == want


ARCH = [
    ("amd64", "amd64"), ("x86_64", "amd64"), ("X86-64", "amd64"), ("x64", "amd64"),
    ("arm64", "arm64"), ("aarch64", "arm64"), ("armv8", "arm64"),
    ("arm", "arm"), ("armv7l", "arm"), ("armv7", "arm"), ("armhf", "arm"), ("armel", "arm"),
    ("386", "386"), ("i386", "386"), ("i686", "386"), ("x86", "386"),
    ("ppc64el", "ppc64le"), ("  S390X ", "s390x"), ("riscv64", "riscv64"),
    ("sparc", "sparc"),  # unknown names pass through, folded
]


@pytest.mark.parametrize(("name", "want"), ARCH)
def test_arch_aliases_fold_to_go_names(name: str, want: str) -> None:
    assert normalise_arch(name) == want


@pytest.mark.parametrize(("name", "want"), [
    ("Linux", "linux"), ("linux", "linux"), ("Windows", "windows"), ("win32", "windows"),
    (" WINDOWS ", "windows"),
])
def test_os_names_fold(name: str, want: str) -> None:
    assert normalise_os(name) == want


@pytest.mark.parametrize(("name", "want"), [("", ""), ("v7", "v7"), ("V8", "v8"), ("7", "v7")])
def test_variants_fold(name: str, want: str) -> None:
    assert normalise_variant(name) == want


@pytest.mark.parametrize(("given", "want"), [
    (Platform(os="Linux", arch="armv7l"), ("linux", "arm", "v7")),
    (Platform(os="linux", arch="armv7l", variant="v6"), ("linux", "arm", "v6")),  # explicit wins
    (Platform(os="linux", arch="arm", variant="7"), ("linux", "arm", "v7")),
    (Platform(os="linux", arch="arm64"), ("linux", "arm64", "")),
    (Platform(os="linux", arch="x86_64"), ("linux", "amd64", "")),
])
def test_a_platform_normalises_with_the_variant_its_alias_implies(
        given: Platform, want: tuple[str, str, str]) -> None:
    assert normalise(given) == want


def test_validate_accepts_aliases_and_refuses_the_unknown() -> None:
    assert validate(Platform(os="Linux", arch="aarch64")) == ("linux", "arm64", "v8")
    with pytest.raises(InvalidArgument, match="unknown architecture 'sparc'"):
        validate(Platform(arch="sparc"))
    with pytest.raises(InvalidArgument, match=r"spec\.platform\.os: unknown operating system"):
        validate(Platform(os="plan9"), "spec.platform")


def test_every_alias_lands_on_a_known_architecture() -> None:
    for name, _ in ARCH[:-1]:
        assert normalise_arch(name) in KNOWN_ARCH, name


def test_the_host_accessor_is_the_pure_mapping_of_this_machine() -> None:
    assert host_platform() == from_uname(platform.system(), platform.machine())
    assert host_platform().arch in KNOWN_ARCH

