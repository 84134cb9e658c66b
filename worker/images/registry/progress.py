"""What a pull or push reports as it goes: one event per blob step, docker's words."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Action = Literal["waiting", "exists", "downloading", "resuming", "verifying", "done",
                 "uploading", "mounted", "pushed"]


@dataclass(frozen=True, slots=True)
class BlobProgress:
    """``blob`` a digest; ``current`` of ``total`` bytes moved so far."""

    blob: str
    action: Action
    current: int = 0
    total: int = 0

    @property
    def short(self) -> str:
        return self.blob.partition(":")[2][:12]


ProgressSink = Callable[[BlobProgress], None]


def ignore_progress(_: BlobProgress) -> None:
    return None
