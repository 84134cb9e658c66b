"""Versions: of the shoal package, and of the wire protocol, with the handshake's choice."""

from __future__ import annotations

PROTOCOL_VERSION = 1
# Versions this build can speak, newest first. A peer offering none of them is refused.
SUPPORTED_VERSIONS: tuple[int, ...] = (PROTOCOL_VERSION,)


def package_version() -> str:
    from importlib import metadata  # ~10 ms to import, for the version verbs alone

    try:
        return metadata.version("shoal")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def choose_version(offered: list[int], supported: tuple[int, ...] = SUPPORTED_VERSIONS) -> int:
    """The newest version both sides speak; VersionMismatch (with both lists) when none."""
    common = set(offered) & set(supported)
    if not common:
        from protocol.errors import VersionMismatch

        theirs = ", ".join(str(v) for v in sorted(offered)) or "none"
        ours = ", ".join(str(v) for v in sorted(supported))
        raise VersionMismatch(
            f"no common protocol version: the peer speaks {theirs}, this side speaks {ours}",
            details={"peer_versions": theirs, "our_versions": ours},
        )
    return max(common)
