"""This host's platform in OCI image terms (``linux``/``amd64``), for generated configs and for
choosing a manifest from a multi-platform index. The names come from ``protocol.platforms``."""

from __future__ import annotations

from protocol import platforms
from protocol.specs import Platform as SpecPlatform
from worker.images.oci import Platform


def host_platform() -> Platform:
    host = platforms.host_platform()
    return Platform(architecture=host.arch, os=host.os, variant=host.variant or None)


def matches(candidate: Platform | None, host: Platform) -> bool:
    """Whether an index entry's platform runs here (an entry without one is taken as ours);
    either side without a variant accepts any."""
    if candidate is None:
        return True
    want_os, want_arch, want_variant = platforms.normalise(SpecPlatform(
        os=candidate.os, arch=candidate.architecture, variant=candidate.variant or ""))
    if want_os != host.os or want_arch != host.architecture:
        return False
    return not want_variant or not host.variant or want_variant == host.variant
