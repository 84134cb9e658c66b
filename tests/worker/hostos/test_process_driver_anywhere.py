"""The engine on the process driver with commands that run on any host (Python itself):
logs, exit codes, stop with grace then kill, a process-tree kill, restart policies, exec, and
(where the host enforces them: Windows jobs) resource limits. Here on Linux it checks the
POSIX side end to end; the Windows workflow runs this same file on windows-latest, where it is
the only check of the Win32 side for real."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

import channels
from protocol.errors import Unsupported
from protocol.specs import ContainerSpec, Resources, RestartPolicy
from worker.engine.engine import Engine
from worker.engine.process_driver import ProcessDriver
from worker.hostos import HOST

# Stop as a console program on either host is asked to: SIGTERM here, CTRL_BREAK on Windows.
POLITE = ("import signal, sys, time\n"
          "signal.signal(getattr(signal, 'SIGBREAK', signal.SIGTERM), lambda *_: sys.exit(0))\n"
          "print('up', flush=True)\n"
          "while True: time.sleep(0.05)\n")
STUBBORN = ("import signal, time\n"
            "signal.signal(getattr(signal, 'SIGBREAK', signal.SIGTERM), signal.SIG_IGN)\n"
            "print('up', flush=True)\n"
            "while True: time.sleep(0.05)\n")
# Leaves a grandchild that would outlive it were the tree not killed with it.
PARENT = ("import subprocess, sys, time\n"
          "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
          "print(child.pid, flush=True)\n"
          "time.sleep(300)\n")


def python(code: str, **fields: object) -> ContainerSpec:
    return ContainerSpec(image="host", command=[sys.executable, "-c", code],  # type: ignore[arg-type]
                         **fields)


def with_engine(tmp_path: Path, body: Callable[[Engine], Awaitable[None]]) -> None:
    async def main() -> None:
        engine = Engine(tmp_path / "state", ProcessDriver(tmp_path / "state" / "containers"))
        await engine.open()
        try:
            async with asyncio.timeout(60):
                await body(engine)
        finally:
            for record in list(engine.records.values()):
                await engine.remove(record.id, force=True)
            await engine.close()

    HOST.run(main())  # uvloop here, the selector loop on Windows: what the worker runs on


async def first_line(engine: Engine, ref: str) -> bytes:
    async for entry in engine.logs(ref, follow=True):
        return entry.data
    raise AssertionError("no output")


def test_output_goes_to_the_log_and_the_exit_code_is_kept(tmp_path: Path) -> None:
    async def body(engine: Engine) -> None:
        record = await engine.create(python(
            "import sys; print('out'); print('err', file=sys.stderr); sys.exit(7)"))
        await engine.start(record.id)
        state = await engine.wait(record.id)
        assert state.exit_code == 7
        logs = [(e.stream, e.data.rstrip(b"\r\n")) async for e in engine.logs(record.id)]
        assert sorted(logs) == [("stderr", b"err"), ("stdout", b"out")]

    with_engine(tmp_path, body)


def test_stop_asks_first_and_kills_after_the_grace_period(tmp_path: Path) -> None:
    async def body(engine: Engine) -> None:
        polite = await engine.create(python(POLITE))
        stubborn = await engine.create(python(STUBBORN))
        for record in (polite, stubborn):
            await engine.start(record.id)
            assert (await first_line(engine, record.id)).strip() == b"up"
        await engine.stop(polite.id, timeout=10)
        assert polite.state.exit_code == 0
        await engine.stop(stubborn.id, timeout=0.3)
        assert stubborn.state.exit_code == 137

    with_engine(tmp_path, body)


def test_kill_ends_the_whole_process_tree(tmp_path: Path) -> None:
    async def body(engine: Engine) -> None:
        record = await engine.create(python(PARENT))
        await engine.start(record.id)
        grandchild = int(await first_line(engine, record.id))
        assert grandchild in await engine.top(record.id)
        await engine.kill(record.id)
        state = await engine.wait(record.id)
        assert state.exit_code == 137
        await asyncio.wait_for(HOST.wait_foreign(grandchild), 10)

    with_engine(tmp_path, body)


def test_on_failure_restarts_then_gives_up(tmp_path: Path) -> None:
    async def body(engine: Engine) -> None:
        record = await engine.create(python("import sys; print('try'); sys.exit(1)",
                                            restart=RestartPolicy(name="on-failure",
                                                                  max_retries=2)))
        events = channels.FeedReader(engine.events)
        await engine.start(record.id)
        actions: list[str] = []
        while actions.count("die") < 3:
            actions.append((await events.next()).action)
        state = await engine.wait(record.id)
        assert (state.exit_code, state.restart_count) == (1, 2)

    with_engine(tmp_path, body)


def test_exec_runs_a_new_process_beside_the_container(tmp_path: Path) -> None:
    async def body(engine: Engine) -> None:
        record = await engine.create(python(POLITE))
        await engine.start(record.id)
        await first_line(engine, record.id)
        result = await engine.exec(record.id, [sys.executable, "-c",
                                               "import os, sys; print(os.environ['K']); "
                                               "sys.exit(3)"], env=["K=v"])
        assert (result.exit_code, result.output.strip()) == (3, b"v")
        await engine.stop(record.id, timeout=10)

    with_engine(tmp_path, body)


@pytest.mark.windows_only  # a job object's memory limit; the process driver on Linux limits nothing
def test_a_memory_limit_holds_on_windows(tmp_path: Path) -> None:
    async def body(engine: Engine) -> None:
        record = await engine.create(python(
            "import sys\n"
            "try:\n"
            "    block = bytearray(512 << 20)\n"
            "except MemoryError:\n"
            "    sys.exit(42)\n", resources=Resources(memory=64 << 20)))
        await engine.start(record.id)
        assert (await engine.wait(record.id)).exit_code == 42

    with_engine(tmp_path, body)


@pytest.mark.windows_only  # what a Windows job cannot express
def test_limits_windows_cannot_express_are_refused(tmp_path: Path) -> None:
    async def body(engine: Engine) -> None:
        with pytest.raises(Unsupported, match="--cpu-shares"):
            await engine.create(python("pass", resources=Resources(cpu_shares=512)))

    with_engine(tmp_path, body)
