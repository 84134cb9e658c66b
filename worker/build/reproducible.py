"""Reproducible builds, as BuildKit makes them: a ``SOURCE_DATE_EPOCH`` build argument (the
CLI passes its environment's) stands in for "now" in the image's history and ``created``
time, and clamps the mtime of every entry written into a new layer to it (a file older than
the epoch keeps its time). Two builds of one context with one epoch then make one image id:
nothing else in a layer or a config depends on when it was built.
"""

from __future__ import annotations

import datetime
import tarfile
from typing import TYPE_CHECKING

from worker.build.errors import BuildFailed

if TYPE_CHECKING:
    from _typeshed import SupportsRead

SOURCE_DATE_EPOCH = "SOURCE_DATE_EPOCH"


def source_date_epoch(build_args: dict[str, str]) -> int | None:
    """The epoch the build arguments set (seconds since 1970, UTC), or None."""
    text = build_args.get(SOURCE_DATE_EPOCH)
    if text is None or text == "":
        return None
    if not text.isascii() or not text.isdigit():
        raise BuildFailed(f"{SOURCE_DATE_EPOCH}={text[:40]!r}: not a whole number of seconds "
                          "since 1970-01-01 UTC")
    return int(text)


def epoch_rfc3339(epoch: int) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ClampedTar(tarfile.TarFile):
    """A layer tar whose entries' mtimes are at most ``mtime_limit`` (when set)."""

    mtime_limit: int | None = None

    def addfile(self, tarinfo: tarfile.TarInfo, fileobj: SupportsRead[bytes] | None = None) -> None:
        if self.mtime_limit is not None and tarinfo.mtime > self.mtime_limit:
            tarinfo.mtime = self.mtime_limit
        super().addfile(tarinfo, fileobj)
