"""The runtime helper and its asyncio client, used from a threaded uvloop program as the worker
does: lifecycle, stdio pipes, exit codes and signals, exec, terminals, errors, adoption."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.runtime_harness import (
    Bundle,
    cgroup_leftovers,
    kill_and_await,
    read_all,
    run,
    spawn,
)
from worker.runtime import BundleInvalid, ContainerNotFound, WrongState
from worker.runtime import syscalls as sc
from worker.runtime.client import RuntimeHelper
from worker.runtime.errors import HelperLost

pytestmark = pytest.mark.root
def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def reap(pid: int) -> None:
    os.waitpid(pid, 0)


def test_lifecycle_pipes_and_exit_codes(make_bundle: Callable[..., Bundle],
                                        state_root: Path, helper_pids: list[int]) -> None:
    ok = make_bundle(["sh", "-c", "echo out; echo err >&2; exit 3"])
    sleeper = make_bundle(["sleep", "1000"])

    async def body() -> None:
        assert threading.active_count() > 1
        rt = await spawn(state_root, helper_pids)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        proc = await rt.create("p1", ok.path, stdout=out_w, stderr=err_w)
        os.close(out_w)
        os.close(err_w)
        assert proc.pty_master is None
        assert (await rt.state("p1")).status == "created"
        await rt.start("p1")
        status = await rt.wait("p1")
        assert (status.code, status.signal) == (3, None)
        assert read_all(out_r) == b"out\n"
        assert read_all(err_r) == b"err\n"
        assert await rt.wait("p1") == status  # asked again: the recorded status
        # A wait that is pending does not hold up other requests.
        await rt.create("p2", sleeper.path)
        await rt.start("p2")
        waiting = asyncio.ensure_future(rt.wait("p2"))
        await asyncio.sleep(0)  # let it send its request first: requests go in order
        assert [s.id for s in await rt.list()] == ["p1", "p2"]
        assert not waiting.done()
        with pytest.raises(WrongState):
            await rt.delete("p2")
        await rt.kill("p2", "KILL")
        killed = await waiting
        assert (killed.code, killed.signal) == (137, signal.SIGKILL)
        for cid in ("p1", "p2"):
            await rt.delete(cid)
        assert await rt.list() == []
        await rt.shutdown()

    run(body)
    assert cgroup_leftovers("p1") == cgroup_leftovers("p2") == []
    assert sorted(p.name for p in state_root.iterdir()) == [".helper.lock"]


def test_delete_force_answers_waiters(make_bundle: Callable[..., Bundle],
                                      state_root: Path, helper_pids: list[int]) -> None:
    bundle = make_bundle(["sleep", "1000"])

    async def body() -> None:
        rt = await spawn(state_root, helper_pids)
        await rt.create("f1", bundle.path)
        await rt.start("f1")
        waiting = asyncio.ensure_future(rt.wait("f1"))
        await asyncio.sleep(0)  # let it send its request first: requests go in order
        await rt.delete("f1", force=True)
        assert (await waiting).signal == signal.SIGKILL
        with pytest.raises(ContainerNotFound):
            await rt.wait("f1")
        await rt.shutdown()

    run(body)
    assert cgroup_leftovers("f1") == []


def test_errors_cross_the_socket(make_bundle: Callable[..., Bundle],
                                 state_root: Path, helper_pids: list[int]) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["process"]["cwd"] = "relative"
    bad = make_bundle(["true"], edit)

    async def body() -> None:
        rt = await spawn(state_root, helper_pids)
        with pytest.raises(BundleInvalid) as info:
            await rt.create("bad", bad.path)
        assert info.value.field == "process.cwd"
        with pytest.raises(ContainerNotFound):
            await rt.state("nosuch")
        with pytest.raises(HelperLost, match="another runtime helper"):
            await RuntimeHelper.spawn(state_root, log_level="critical")
        # A second client (a restarted worker) reaches the same helper through the root.
        again = await RuntimeHelper.connect(state_root)
        assert again.helper_pid == rt.helper_pid
        await again.close()
        await rt.shutdown()
        with pytest.raises(HelperLost):
            await RuntimeHelper.connect(state_root)

    run(body)
    assert not (state_root / "bad").exists()


def test_exec_pipes_and_tty(make_bundle: Callable[..., Bundle],
                            state_root: Path, helper_pids: list[int]) -> None:
    bundle = make_bundle(["sleep", "1000"])

    async def body() -> None:
        rt = await spawn(state_root, helper_pids)
        await rt.create("e1", bundle.path)
        await rt.start("e1")
        out_r, out_w = os.pipe()
        proc = await rt.exec("e1", ["sh", "-c", "hostname; [ -t 0 ] || echo no-tty; exit 5"],
                             stdout=out_w)
        os.close(out_w)
        assert (await rt.wait_exec("e1", proc.pid)).code == 5
        assert read_all(out_r) == b"shoaltest\nno-tty\n"
        proc = await rt.exec("e1", ["sh", "-c", "[ -t 0 ] && tty; read x; echo got $x"],
                             tty=True)
        assert proc.pty_master is not None
        os.write(proc.pty_master, b"abc\n")
        assert (await rt.wait_exec("e1", proc.pid)).code == 0
        text = read_all(proc.pty_master).decode()
        assert "/dev/pts/" in text
        assert "got abc" in text
        await rt.delete("e1", force=True)
        await rt.shutdown()

    run(body)


def test_terminal_container(make_bundle: Callable[..., Bundle],
                            state_root: Path, helper_pids: list[int]) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["process"]["terminal"] = True
    bundle = make_bundle(["sh", "-c", "tty; [ -t 0 ] && [ -t 1 ] && echo both-tty; "
                                      "[ -c /dev/console ] && echo console; read x; "
                                      "echo got $x; exit 4"], edit)

    async def body() -> None:
        rt = await spawn(state_root, helper_pids)
        proc = await rt.create("t1", bundle.path)
        assert proc.pty_master is not None
        os.write(proc.pty_master, b"typed\n")
        await rt.start("t1")
        assert (await rt.wait("t1")).code == 4
        # The line discipline echoes what we typed before the program reads it; the
        # container's own devpts instance gives its first pty the number 0.
        assert read_all(proc.pty_master).decode().splitlines() == [
            "typed", "/dev/pts/0", "both-tty", "console", "got typed"]
        await rt.delete("t1")
        await rt.shutdown()

    run(body)


def test_the_helper_keeps_an_input_for_the_next_client(make_bundle: Callable[..., Bundle],
                                                        state_root: Path,
                                                        helper_pids: list[int]) -> None:
    """A client (the worker) leaves the container's terminal with the helper: its own copy
    closing does not hang the terminal up, and the next client takes it back."""
    def edit(cfg: dict[str, Any]) -> None:
        cfg["process"]["terminal"] = True
    bundle = make_bundle(["sh", "-c", "trap 'echo hangup; exit 9' HUP; stty -echo; "
                                      "echo ready; read x; echo got $x; exit 4"], edit)
    cat = make_bundle(["cat"])

    async def body() -> None:
        rt = await spawn(state_root, helper_pids)
        with pytest.raises(ContainerNotFound):
            await rt.keep_input("ghost", 0)
        proc = await rt.create("k1", bundle.path)
        assert proc.pty_master is not None
        await rt.keep_input("k1", proc.pty_master)
        await rt.start("k1")
        first = b""
        while b"ready" not in first:
            first += os.read(proc.pty_master, 4096)
        os.close(proc.pty_master)  # this client's copy goes: no hangup
        await rt.close()
        again = await RuntimeHelper.connect(state_root)
        master = await again.take_input("k1")
        assert master is not None
        os.write(master, b"back\n")
        assert (await again.wait("k1")).code == 4
        assert read_all(master).decode().split() == ["got", "back"]
        assert await again.take_input("k1") is None  # it ended: nothing kept
        await again.delete("k1")
        # A stdin pipe: once every copy of its write end is closed, the helper's included
        # (drop_input), the container reads EOF.
        reader, writer = os.pipe()
        out_r, out_w = os.pipe()
        await again.create("k2", cat.path, stdin=reader, stdout=out_w)
        os.close(reader)
        os.close(out_w)
        await again.keep_input("k2", writer)
        await again.start("k2")
        os.write(writer, b"piped\n")
        os.close(writer)
        taken = await again.take_input("k2")
        assert taken is not None
        os.close(taken)
        await again.drop_input("k2")
        assert (await again.wait("k2")).code == 0
        assert read_all(out_r) == b"piped\n"
        await again.delete("k2")
        await again.shutdown()

    run(body)


def test_new_helper_adopts_containers(make_bundle: Callable[..., Bundle],
                                      state_root: Path, helper_pids: list[int]) -> None:
    bundle = make_bundle(["sleep", "1000"])
    # We stand in for the host's init: orphans of the dead helper come to us, and we reap them.
    sc.set_child_subreaper()

    async def body() -> None:
        rt = await spawn(state_root, helper_pids)
        proc = await rt.create("a1", bundle.path)
        await rt.start("a1")
        await rt.close()
        kill_and_await(rt.helper_pid)
        assert alive(proc.pid)  # the container runs on
        rt2 = await spawn(state_root, helper_pids)
        state = await rt2.state("a1")
        assert (state.status, state.pid) == ("running", proc.pid)
        waiting = asyncio.ensure_future(rt2.wait("a1"))
        await asyncio.sleep(0)  # let it send its request first: requests go in order
        await rt2.kill("a1", "KILL")
        lost = await waiting
        assert lost.code is None  # seen to exit; its status went with its reaper
        reap(proc.pid)
        await rt2.delete("a1")
        await rt2.shutdown()

    run(body)
    assert cgroup_leftovers("a1") == []
