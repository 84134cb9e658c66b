"""Versions: of the shoal package, and of the wire protocol, with the handshake's choice."""

from __future__ import annotations

# The package's version: pyproject.toml reads it from here (setuptools' dynamic version), so
# the version verbs need no importlib.metadata (~10 ms to import) and say the same as pip.
PACKAGE_VERSION = "0.1.0"
PROTOCOL_VERSION = 1
# Versions this build can speak, newest first. A peer offering none of them is refused.
SUPPORTED_VERSIONS: tuple[int, ...] = (PROTOCOL_VERSION,)


def package_version() -> str:
    return PACKAGE_VERSION


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
