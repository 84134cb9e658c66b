"""How ``pull`` and ``push`` show their progress: a rich bar per blob on a terminal (as docker
draws them), a line per blob when it is done otherwise, nothing with ``--quiet``."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TYPE_CHECKING

from protocol.messages import TransferProgress

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

# docker's words for a blob's last step
_FINAL = {"exists": "Already exists", "done": "Pull complete", "pushed": "Pushed",
          "mounted": "Mounted from another repository"}
_STEP = {"waiting": "Waiting", "downloading": "Downloading", "resuming": "Resuming",
         "verifying": "Verifying Checksum", "uploading": "Pushing"}


class TransferDisplay:
    """Feed it ``TransferProgress`` messages; use as a context manager."""

    def __init__(self, *, quiet: bool = False, terminal: bool | None = None,
                 err: bool = False) -> None:
        self.quiet = quiet
        self.out = sys.stderr if err else sys.stdout
        self.terminal = self.out.isatty() if terminal is None else terminal
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._finished: set[str] = set()

    def __enter__(self) -> TransferDisplay:
        if not self.quiet and self.terminal:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                      DownloadColumn(), TransferSpeedColumn(),
                                      console=Console(file=self.out))
            self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()

    def show(self, event: TransferProgress) -> None:
        if self.quiet:
            return
        short = event.blob.partition(":")[2][:12]
        final = _FINAL.get(event.action)
        if self._progress is not None:
            words = final or _STEP.get(event.action, event.action)
            task = self._tasks.get(event.blob)
            if task is None:
                task = self._progress.add_task(f"{short}: {words}", total=event.total or None)
                self._tasks[event.blob] = task
            self._progress.update(task, description=f"{short}: {words}",
                                  completed=event.current, total=event.total or None)
            return
        if final is not None and event.blob not in self._finished:
            self._finished.add(event.blob)
            print(f"{short}: {final}", file=self.out, flush=True)
        elif event.action == "resuming":
            print(f"{short}: Resuming at byte {event.current} of {event.total}", file=self.out,
                  flush=True)
