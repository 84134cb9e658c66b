"""Resolve a container path inside the rootfs the way the container will see it.

Symlinks are followed as if the rootfs were `/`: an absolute link is read relative to the
rootfs, never the host. A link that climbs above the rootfs with `..` is an escape attempt
and is refused, so an image cannot redirect a mount onto the host.
"""

from __future__ import annotations

import os
import posixpath

MAX_SYMLINKS = 40


class PathEscape(Exception):
    """A symlink inside the rootfs points above it."""


def resolve_in_root(root: str, path: str) -> str:
    """The host path of ``path`` (absolute, container view) inside ``root``; may not exist."""
    pending = [c for c in path.split("/") if c]
    pending.reverse()
    resolved: list[str] = []
    links = 0
    while pending:
        comp = pending.pop()
        if comp == ".":
            continue
        if comp == "..":
            if not resolved:
                raise PathEscape(f"{path!r} climbs above the root")
            resolved.pop()
            continue
        candidate = posixpath.join(root, *resolved, comp)
        try:
            target = os.readlink(candidate)
        except OSError:
            # Not a symlink or not there yet: the rest is created as plain directories.
            resolved.append(comp)
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise PathEscape(f"{path!r}: too many levels of symbolic links")
        if target.startswith("/"):
            resolved = []
        parts = [c for c in target.split("/") if c]
        depth = len(resolved)
        for part in parts:
            if part == "..":
                if depth == 0:
                    raise PathEscape(
                        f"{path!r}: symlink {'/' + '/'.join([*resolved, comp])} -> {target} "
                        "points outside the rootfs")
                depth -= 1
            elif part != ".":
                depth += 1
        pending.extend(reversed(parts))
    return posixpath.join(root, *resolved) if resolved else root
