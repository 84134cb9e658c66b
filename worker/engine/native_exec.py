"""An exec'd process of a native-driver container: started (and reaped) by the runtime
helper, killed through a pidfd taken at once."""

from __future__ import annotations

import contextlib
import os
import signal

from worker.engine.driver import ExecProcess
from worker.runtime.client import RuntimeHelper


class NativeExec(ExecProcess):
    """An exec'd process the runtime helper started (and reaps); killed through a pidfd taken
    at once, so a recycled pid can never be hit."""

    def __init__(self, runtime: RuntimeHelper, container_id: str, *, pid: int,
                 stdin: int | None, stdout: int, stderr: int | None, tty: bool) -> None:
        super().__init__(pid=pid, stdin=stdin, stdout=stdout, stderr=stderr, tty=tty)
        self._runtime = runtime
        self._container_id = container_id
        self._pidfd: int | None = None
        with contextlib.suppress(ProcessLookupError):
            self._pidfd = os.pidfd_open(pid)

    async def _wait(self) -> int:
        status = await self._runtime.wait_exec(self._container_id, self.pid)
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        return status.code if status.code is not None else 255

    def kill(self) -> None:
        if self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)

    def close(self) -> None:
        super().close()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
