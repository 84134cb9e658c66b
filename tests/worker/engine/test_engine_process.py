"""The engine end to end on the process driver: real processes, real logs, real restarts."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

import channels
from protocol.errors import Conflict, InvalidArgument, InvalidSpec, NotFound, Unsupported
from protocol.specs import ContainerSpec, LogOptions, Mount, NetworkAttachment, RestartPolicy
from tests.helpers.bounded_run import run
from worker.engine.engine import Engine
from worker.engine.process_driver import ProcessDriver


def sh(script: str, **fields: object) -> ContainerSpec:
    return ContainerSpec(image="host", command=["sh", "-c", script], **fields)  # type: ignore[arg-type]


def with_engine(tmp_path: Path, body: Callable[[Engine], Awaitable[None]]) -> None:
    async def main() -> None:
        engine = Engine(tmp_path / "state", ProcessDriver(tmp_path / "state" / "containers"))
        await engine.open()
        try:
            await body(engine)
        finally:
            for record in list(engine.records.values()):
                await engine.remove(record.id, force=True)
            await engine.close()

    run(main, timeout=60)


def test_run_wait_logs_inspect_and_remove(tmp_path: Path) -> None:
    async def body(engine: Engine) -> None:
        record = await engine.create(sh("echo out; echo err >&2; exit 7", name="first"))
        assert engine.find("first") is record
        assert engine.find(record.id[:8]) is record
        events = channels.FeedReader(engine.events)
        await engine.start("first")
        state = await engine.wait("first")
        assert state.exit_code == 7
        assert state.status == "exited"
        logs = [(e.stream, e.data) async for e in engine.logs("first")]
        assert sorted(logs) == [("stderr", b"err\n"), ("stdout", b"out\n")]
        actions = [(await events.next()).action for _ in range(2)]
        assert actions == ["start", "die"]
        info = engine.inspect(record.id)
        assert info.state.exit_code == 7
        assert info.runtime == "process"
        assert [c.name for c in engine.ps(all=True)] == ["first"]
        assert engine.ps() == []
        await engine.remove("first")
        with pytest.raises(NotFound):
            engine.find("first")
        assert not (tmp_path / "state" / "containers" / record.id).exists()

    with_engine(tmp_path, body)


def test_names_are_unique_and_validated(tmp_path: Path) -> None:
    async def body(engine: Engine) -> None:
        await engine.create(sh("true", name="web"))
        with pytest.raises(Conflict, match="already in use"):
            await engine.create(sh("true", name="web"))
        with pytest.raises(InvalidArgument, match="invalid container name"):
            await engine.create(sh("true", name="no spaces"))
        with pytest.raises(Unsupported, match="host's network only: --network bridge"):
            await engine.create(sh("true", network="bridge"))
        with pytest.raises(Unsupported, match="without namespaces: --network container:web "
                           "needs the native driver"):
            await engine.create(sh("true", network="container:web"))
        # The default is the host's network here: a network connected beside it is refused
        # too, never left out.
        with pytest.raises(InvalidSpec, match="cannot be on another network too"):
            await engine.create(sh("true", network="default",
                                   connected=[NetworkAttachment(name="back")]))

    with_engine(tmp_path, body)


def test_stop_uses_the_stop_signal_then_kills(tmp_path: Path) -> None:
    async def body(engine: Engine) -> None:
        polite = await engine.create(sh("trap 'exit 0' TERM; while :; do sleep 0.01; done"))
        stubborn = await engine.create(sh("trap '' TERM; while :; do sleep 0.01; done"))
        await engine.start(polite.id)
        await engine.start(stubborn.id)
        await engine.stop(polite.id, timeout=5)
        assert polite.state.exit_code == 0
        await engine.stop(stubborn.id, timeout=0.2)
        assert stubborn.state.exit_code == 137
        await engine.start(stubborn.id)
        with pytest.raises(Conflict, match="running"):
            await engine.remove(stubborn.id)

    with_engine(tmp_path, body)


def test_swarm_s_max_attempts_bounds_always_with_its_delay(tmp_path: Path) -> None:
    """Compose's deploy.restart_policy {condition: any, max_attempts: 2, delay: 0.3s}: two
    restarts, each 0.3 s after the exit before it (not Docker's 100 ms backoff), then none."""
    async def body(engine: Engine) -> None:
        record = await engine.create(sh("exit 0", restart=RestartPolicy(
            name="always", max_retries=2, delay=0.3)))
        events = channels.FeedReader(engine.events)
        await engine.start(record.id)
        seen: list[tuple[str, float]] = []
        while [action for action, _ in seen].count("die") < 3:
            event = await events.next()
            seen.append((event.action, event.time))
        state = await engine.wait(record.id)
        assert (state.exit_code, state.restart_count) == (0, 2)
        dies = [at for action, at in seen if action == "die"]
        starts = [at for action, at in seen if action == "restart"]
        assert len(starts) == 2
        assert all(start - die >= 0.3 for die, start in zip(dies, starts, strict=False))

    with_engine(tmp_path, body)


def test_on_failure_2_restarts_twice_then_gives_up(tmp_path: Path) -> None:
    async def body(engine: Engine) -> None:
        record = await engine.create(sh("echo try; exit 1", restart=RestartPolicy(
            name="on-failure", max_retries=2)))
        events = channels.FeedReader(engine.events)
        await engine.start(record.id)
        actions: list[str] = []
        while actions.count("die") < 3:
            actions.append((await events.next()).action)
        state = await engine.wait(record.id)
        assert state.exit_code == 1
        assert state.restart_count == 2
        assert record.restart_count == 2
        assert actions.count("restart") == 2
        assert [e.data async for e in engine.logs(record.id)] == [b"try\n"] * 3

    with_engine(tmp_path, body)


def test_a_manual_stop_suppresses_always_until_the_next_start(tmp_path: Path) -> None:
    async def body(engine: Engine) -> None:
        record = await engine.create(sh("sleep 30", restart=RestartPolicy(name="always")))
        await engine.start(record.id)
        await engine.stop(record.id, timeout=5)
        assert record.state.status == "exited"
        assert record.manually_stopped
        await engine.start(record.id)
        assert record.state.status == "running"
        assert not record.manually_stopped

    with_engine(tmp_path, body)


def test_follow_streams_new_lines_until_the_container_ends(tmp_path: Path) -> None:
    async def body(engine: Engine) -> None:
        record = await engine.create(sh("for i in 1 2 3; do echo $i; sleep 0.05; done"))
        await engine.start(record.id)
        lines = [e.data async for e in engine.logs(record.id, follow=True)]
        assert lines == [b"1\n", b"2\n", b"3\n"]

    with_engine(tmp_path, body)


def test_auto_remove(tmp_path: Path) -> None:
    async def body(engine: Engine) -> None:
        record = await engine.create(sh("true", auto_remove=True))
        await engine.start(record.id)
        await engine.wait(record.id, "removed")
        assert record.id not in engine.records

    with_engine(tmp_path, body)


def test_live_restore_readopts_and_learns_exits_from_while_away(tmp_path: Path) -> None:
    state = tmp_path / "state"

    async def main() -> None:
        first = Engine(state, ProcessDriver(state / "containers"))
        await first.open()
        gate = tmp_path / "gate"
        waiting = await first.create(sh(f"while [ ! -e {gate} ]; do sleep 0.01; done; exit 3",
                                        name="waiting"))
        quick = await first.create(sh(f"while [ ! -e {gate} ]; do sleep 0.01; done; exit 4",
                                      name="quick"))
        await first.start("waiting")
        await first.start("quick")
        await first.close()  # the worker goes away; its containers do not
        assert first.driver.running(waiting)
        # One container ends while no worker watches it.
        gate.touch()
        second = Engine(state, ProcessDriver(state / "containers"))
        await second.open()
        try:
            assert (await second.wait("quick")).exit_code == 4
            assert (await second.wait("waiting")).exit_code == 3
            assert {r.name for r in second.records.values()} == {"waiting", "quick"}
        finally:
            for record in list(second.records.values()):
                await second.remove(record.id, force=True)
            await second.close()
        del quick

    run(main, timeout=60)


def test_exec_top_and_kill(tmp_path: Path) -> None:
    async def body(engine: Engine) -> None:
        record = await engine.create(sh("sleep 30 & wait"))
        await engine.start(record.id)
        result = await engine.exec(record.id, ["sh", "-c", "echo inside; exit 5"])
        assert (result.exit_code, result.output) == (5, b"inside\n")
        pids = await engine.top(record.id)
        assert record.state.pid in pids
        assert len(pids) >= 2  # sh and its sleep
        await engine.kill(record.id, "KILL")
        state = await engine.wait(record.id)
        assert state.exit_code == 137
        with pytest.raises(InvalidArgument, match="unknown signal"):
            await engine.kill(record.id, "NOPE")

    with_engine(tmp_path, body)


def test_concurrent_waiters_all_wake(tmp_path: Path) -> None:
    async def body(engine: Engine) -> None:
        record = await engine.create(sh("sleep 0.1; exit 2"))
        await engine.start(record.id)
        states = await asyncio.gather(*(engine.wait(record.id) for _ in range(5)))
        assert {s.exit_code for s in states} == {2}

    with_engine(tmp_path, body)


def test_logs_rotate_at_max_size_keeping_max_file(tmp_path: Path) -> None:
    async def main() -> None:
        state = tmp_path / "state"
        engine = Engine(state, ProcessDriver(state / "containers"), log_max_size=2048,
                        log_max_file=3)
        await engine.open()
        try:
            record = await engine.create(sh("i=0; while [ $i -lt 300 ]; do echo line $i; "
                                            "i=$((i+1)); done"))
            await engine.start(record.id)
            await engine.wait(record.id)
            log_path = engine.disk.log_path(record.id)
            files = sorted(p.name for p in log_path.parent.glob(log_path.name + "*"))
            assert files == [log_path.name, log_path.name + ".1", log_path.name + ".2"]
            assert all(p.stat().st_size <= 2048 for p in log_path.parent.glob("*-json.log*"))
            lines = [e.data async for e in engine.logs(record.id)]
            assert lines[-1] == b"line 299\n"
            assert len(lines) < 300  # the oldest went with the oldest file
            numbers = [int(line.split()[1]) for line in lines]
            assert numbers == list(range(numbers[0], 300))
        finally:
            for r in list(engine.records.values()):
                await engine.remove(r.id, force=True)
            await engine.close()

    run(main, timeout=60)


def test_a_container_s_log_options_rotate_over_the_worker_s(tmp_path: Path) -> None:
    """``--log-opt``: the container's max-size, max-file and compress, over the worker's own
    (no rotation here), with the rotated files gzipped and read back in order."""
    async def main() -> None:
        state = tmp_path / "state"
        engine = Engine(state, ProcessDriver(state / "containers"))
        await engine.open()
        try:
            spec = sh("i=0; while [ $i -lt 300 ]; do echo line $i; i=$((i+1)); done",
                      log_options=LogOptions(max_size=2048, max_file=3, compress=True))
            record = await engine.create(spec)
            await engine.start(record.id)
            await engine.wait(record.id)
            log_path = engine.disk.log_path(record.id)
            files = sorted(p.name for p in log_path.parent.glob(log_path.name + "*"))
            assert files == [log_path.name, log_path.name + ".1.gz", log_path.name + ".2.gz"]
            lines = [e.data async for e in engine.logs(record.id)]
            numbers = [int(line.split()[1]) for line in lines]
            assert numbers == list(range(numbers[0], 300)) and numbers[0] > 0
        finally:
            for r in list(engine.records.values()):
                await engine.remove(r.id, force=True)
            await engine.close()

    run(main, timeout=60)


async def terminal_output(engine: Engine, ref: str) -> str:
    """Everything a container's terminal showed, as its log has it (\r\n line breaks)."""
    return b"".join([e.data async for e in engine.logs(ref)]).decode(errors="replace")


async def output_until(engine: Engine, ref: str, marker: str) -> None:
    """Follow the container's log until ``marker`` has appeared in it."""
    seen = b""
    entries = engine.logs(ref, follow=True)
    try:
        async for entry in entries:
            seen += entry.data
            if marker.encode() in seen:
                return
    finally:
        await entries.aclose()
    raise AssertionError(f"the container ended before showing {marker!r}: {seen!r}")


def test_run_dash_i_feeds_stdin_until_the_client_closes_it(tmp_path: Path) -> None:
    async def body(engine: Engine) -> None:
        record = await engine.create(sh("[ -t 0 ] || echo no-tty; cat; exit 3",
                                        stdin_open=True))
        await engine.start(record.id)
        fd = await engine.attach_input(record.id)
        assert fd is not None
        os.write(fd, b"a\nb\n")
        os.close(fd)
        engine.close_input(record.id)  # the client's input ended: cat reads EOF
        assert (await engine.wait(record.id)).exit_code == 3
        assert [e.data async for e in engine.logs(record.id)] == [b"no-tty\n", b"a\n", b"b\n"]

    with_engine(tmp_path, body)


def test_a_closed_stdin_stays_closed_and_nothing_breaks(tmp_path: Path) -> None:
    async def body(engine: Engine) -> None:
        record = await engine.create(sh("cat; echo eof; sleep 30", stdin_open=True))
        await engine.start(record.id)
        engine.close_input(record.id)
        engine.close_input(record.id)  # twice: harmless
        assert await engine.attach_input(record.id) is None  # -i again: nothing to feed
        plain = await engine.create(sh("sleep 30"))
        assert await engine.attach_input(plain.id) is None  # created without -i
        engine.resize(record.id, 40, 100)  # no terminal: nothing to resize
        await output_until(engine, record.id, "eof")  # cat read EOF; the container runs on
        assert record.state.status == "running"
        await engine.kill(record.id)
        assert (await engine.wait(record.id)).exit_code == 137

    with_engine(tmp_path, body)


@pytest.mark.parametrize(("rows", "cols"), [(0, 80), (24, 0), (-1, 80), (70000, 80),
                                             (24, 10001)])
def test_absurd_window_sizes_are_refused(tmp_path: Path, rows: int, cols: int) -> None:
    async def body(engine: Engine) -> None:
        record = await engine.create(sh("stty size; sleep 30", tty=True))
        with pytest.raises(InvalidArgument, match="rows x columns"):
            engine.resize(record.id, rows, cols)
        await engine.start(record.id)
        with pytest.raises(InvalidArgument, match="rows x columns"):
            engine.resize(record.id, rows, cols)
        with pytest.raises(InvalidArgument, match="rows x columns"):
            await engine.exec_start(record.id, ["true"], tty=True, console_size=(rows, cols))
        assert record.state.status == "running"

    with_engine(tmp_path, body)


def test_a_terminal_keeps_its_size_input_and_session_across_a_worker_restart(
        tmp_path: Path) -> None:
    state = tmp_path / "state"
    script = ("trap 'echo hangup; exit 9' HUP; stty size; echo ready; read line; stty size; "
              'echo "got[$line]"; exit 4')

    async def main() -> None:
        first = Engine(state, ProcessDriver(state / "containers"))
        await first.open()
        record = await first.create(sh(script, name="term", tty=True, stdin_open=True))
        first.resize("term", 40, 120)  # as run -t does before the start
        await first.start("term")
        await output_until(first, "term", "ready")  # it has looked at its size
        await first.close()  # the worker goes away: the shim keeps the terminal
        assert first.driver.running(record)
        second = Engine(state, ProcessDriver(state / "containers"))
        await second.open()
        try:
            second.resize("term", 50, 132)
            fd = await second.attach_input("term")
            assert fd is not None
            os.write(fd, b"hello\n")
            os.close(fd)
            assert (await second.wait("term")).exit_code == 4
            shown = await terminal_output(second, "term")
            assert "40 120\r\nready\r\n" in shown
            assert "50 132\r\ngot[hello]\r\n" in shown
            assert "hangup" not in shown
        finally:
            for each in list(second.records.values()):
                await second.remove(each.id, force=True)
            await second.close()

    run(main, timeout=60)


def test_volumes_and_tmpfs_are_refused_not_ignored_and_nothing_is_made(tmp_path: Path
                                                                        ) -> None:
    async def body(engine: Engine) -> None:
        for mount in (Mount(type="volume", source="data", target="/data"),
                      Mount(type="tmpfs", target="/t")):
            with pytest.raises(Unsupported, match="named volumes and tmpfs mounts need the "
                                                  "native driver"):
                await engine.create(sh("true", mounts=[mount]))
        assert engine.records == {}
        assert engine.volumes.every() == []

    with_engine(tmp_path, body)
