"""A container's files from the worker's side: copying paths out of and into containers as
tars (``docker cp``), exporting a root filesystem, and what the worker's disk holds (``system
df``). ``FILE_REQUESTS`` are the verbs ``service.ContainerFiles`` answers; the service itself is
Linux's (openat2) and is imported when first asked."""

from __future__ import annotations

from protocol.messages import (
    ExportContainer,
    GetContainerArchive,
    Message,
    PutContainerArchive,
    StatContainerPath,
)

FILE_REQUESTS: tuple[type[Message], ...] = (StatContainerPath, GetContainerArchive,
                                            PutContainerArchive, ExportContainer)
