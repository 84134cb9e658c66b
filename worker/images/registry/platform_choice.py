"""Choosing one manifest from a multi-platform index (pure).

Docker's rule: the entries whose os and architecture equal the wanted ones; among them the
wanted variant (``arm64`` wants ``v8`` or none, ``arm`` the given ``vN`` first, then lower
ones it can run); for Windows the entry whose ``os.version`` shares the host's build
(``10.0.17763``) wins over others. No entry fits: an error listing what the index offers.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol import platforms
from protocol.specs import Platform as SpecPlatform
from worker.images.errors import ImageNotFound, InvalidImage
from worker.images.oci import Descriptor, Index

_ARM_VARIANTS = ("v8", "v7", "v6", "v5")


@dataclass(frozen=True, slots=True)
class WantedPlatform:
    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def parse_platform(text: str, os_version: str = "") -> WantedPlatform:
    """``os/arch[/variant]`` as ``--platform`` takes it; aliases (x86_64, aarch64) allowed."""
    parts = text.strip().split("/")
    if len(parts) < 2 or len(parts) > 3 or not all(parts):
        raise InvalidImage(f"--platform {text[:100]!r}: expected os/arch[/variant]")
    spec = SpecPlatform(os=parts[0], arch=parts[1], variant=parts[2] if len(parts) == 3 else "")
    os_name, arch, variant = platforms.validate(spec, "platform")
    return WantedPlatform(os_name, arch, variant, os_version)


def host_wanted(os_version: str = "") -> WantedPlatform:
    return wanted_for(platforms.host_platform(), os_version)


def _acceptable_variants(wanted: WantedPlatform) -> tuple[str, ...]:
    if wanted.architecture == "arm" and wanted.variant in _ARM_VARIANTS:
        return _ARM_VARIANTS[_ARM_VARIANTS.index(wanted.variant):]
    if wanted.architecture == "arm64":
        return ("v8", "")
    return (wanted.variant,) if wanted.variant else ()


def _build(version: str) -> str:
    return ".".join(version.split(".")[:3])


def wanted_for(platform: SpecPlatform, os_version: str = "") -> WantedPlatform:
    """What a node of ``platform`` wants from a multi-platform image."""
    os_name, arch, variant = platforms.normalise(platform)
    if arch == "arm64" and not variant:
        variant = "v8"
    return WantedPlatform(os_name, arch, variant, os_version)


def _rank(os_name: str, arch: str, variant: str, wanted: WantedPlatform) -> int | None:
    """How well an image of (os, arch, variant) suits ``wanted``: 0 best, None not at all."""
    os_name, arch, variant = platforms.normalise(SpecPlatform(os=os_name, arch=arch,
                                                              variant=variant))
    if os_name != wanted.os or arch != wanted.architecture:
        return None
    order = _acceptable_variants(wanted)
    if not order:
        return 0
    if variant not in order and not (variant == "" and wanted.architecture != "arm"):
        return None
    return order.index(variant) if variant in order else len(order)


def platform_fits(os_name: str, arch: str, variant: str, wanted: WantedPlatform) -> bool:
    """Whether an image of (os, arch, variant) runs where ``wanted`` is asked; an image that
    names no architecture fits anywhere (a rootfs import)."""
    return not arch or _rank(os_name, arch, variant, wanted) is not None


def choose_manifest(index: Index, wanted: WantedPlatform) -> Descriptor:
    """The index entry for ``wanted``; ``ImageNotFound`` naming what the index has."""
    candidates: list[tuple[int, int, Descriptor]] = []
    for position, entry in enumerate(index.manifests):
        platform = entry.platform
        if platform is None:
            continue
        rank = _rank(platform.os, platform.architecture, platform.variant or "", wanted)
        if rank is None:
            continue
        os_version = platform.os_version or ""
        if wanted.os_version and os_version and _build(os_version) != _build(wanted.os_version):
            rank += 100  # another Windows build: only if nothing matches ours
        candidates.append((rank, position, entry))
    if not candidates:
        offered = sorted({_describe(e) for e in index.manifests if e.platform is not None})
        raise ImageNotFound(f"no matching manifest for {wanted} in the manifest list entries "
                            f"(it has: {', '.join(offered) or 'no platforms'})",
                            details={"platform": str(wanted)})
    return min(candidates, key=lambda c: (c[0], c[1]))[2]


def _describe(entry: Descriptor) -> str:
    p = entry.platform
    assert p is not None
    return "/".join(x for x in (p.os, p.architecture, p.variant or "") if x)
