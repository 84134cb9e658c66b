"""The runtime helper's zygote: inits come from its spare or its clones and stay the helper's
children; a dead spare or a dead zygote costs nothing but speed; nothing outlives the helper."""

from __future__ import annotations

import json
import os
import select
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.runtime_harness import (
    TIMEOUT,
    Bundle,
    cgroup_leftovers,
    kill_and_await,
    read_all,
    run,
    spawn,
)
from worker.runtime import CreateFailed, OperationFailed
from worker.runtime.client import RuntimeHelper

pytestmark = pytest.mark.root


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def zygote_kids(helper: int) -> tuple[list[int], list[int]]:
    """The helper's children that run the zygote's code: (zygotes, spares). A spare waits in
    its own pid namespace; the zygote shares the helper's."""
    own_ns = os.readlink(f"/proc/{helper}/ns/pid")
    zygotes, spares = [], []
    for pid in children(helper):
        try:
            if b"worker.runtime.zygote" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue
            (zygotes if os.readlink(f"/proc/{pid}/ns/pid") == own_ns else spares).append(pid)
        except OSError:
            continue  # it just exited
    return zygotes, spares


def ppid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise AssertionError(f"no PPid for {pid}")


async def run_to_exit(rt: RuntimeHelper, cid: str, bundle: Bundle) -> tuple[int, bytes, int]:
    """Create, start, wait and delete; (init pid, stdout, exit code)."""
    out_r, out_w = os.pipe()
    await rt.create(cid, bundle.path, stdout=out_w)
    os.close(out_w)
    pid = (await rt.state(cid)).pid
    assert ppid(pid) == rt.helper_pid  # cloned beside the zygote: the helper reaps it
    await rt.start(cid)
    code = (await rt.wait(cid)).code
    await rt.delete(cid)
    assert code is not None
    return pid, read_all(out_r), code


def test_inits_come_from_the_spare_and_the_zygote(make_bundle: Callable[..., Bundle],
                                                  state_root: Path,
                                                  helper_pids: list[int]) -> None:
    # Its pid and its session (the sixth field of its stat): an init is a session leader as
    # runc's, whether a spare made itself one ahead or the zygote cloned it on the spot.
    echo = make_bundle(["sh", "-c", "set -- $(cat /proc/$$/stat); echo pid $$ sid $6; exit 4"])

    def host_pid(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"]
                                      if ns["type"] != "pid"]
    shared = make_bundle(["sh", "-c", 'set -- $(cat /proc/$$/stat); [ "$6" = "$$" ] && '
                                      "echo shared"], host_pid)

    async def body() -> None:
        rt = await spawn(state_root, helper_pids)
        # The first create waits for the zygote; its spare is asked for at start.
        _first, out, code = await run_to_exit(rt, "z1", echo)
        assert (out, code) == (b"pid 1 sid 1\n", 4)
        zygotes, spares = zygote_kids(rt.helper_pid)
        assert len(zygotes) == 1
        used = 0
        for n in range(2, 12):
            # The next spare is cloned after the zygote has answered: usually there by now.
            # (A spare seen here may not have reached the helper yet: then the zygote clones
            # the init, and the spare waits for the next create.)
            spare = spares[0] if spares else None
            pid, out, code = await run_to_exit(rt, f"z{n}", echo)
            assert (out, code) == (b"pid 1 sid 1\n", 4)
            if spare is not None and pid == spare:  # the spare became the init
                used += 1
            _, spares = zygote_kids(rt.helper_pid)
            assert len(spares) <= 1
        assert used >= 1
        # No new pid namespace: the zygote clones one on the spot.
        _, out, code = await run_to_exit(rt, "shared", shared)
        assert (out, code) == (b"shared\n", 0)
        assert zygote_kids(rt.helper_pid)[0] == zygotes
        await rt.shutdown()
        # The zygote and its spare follow the helper out.
        for pid in zygotes + spares:
            assert not Path(f"/proc/{pid}").exists() or _exits(pid)

    run(body)
    assert sorted(p.name for p in state_root.iterdir()) == [".helper.lock"]


def _exits(pid: int) -> bool:
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], TIMEOUT)[0])
    finally:
        os.close(fd)


def test_a_dead_spare_or_zygote_costs_only_speed(make_bundle: Callable[..., Bundle],
                                                 state_root: Path,
                                                 helper_pids: list[int]) -> None:
    echo = make_bundle(["sh", "-c", "echo ok"])

    async def body() -> None:
        rt = await spawn(state_root, helper_pids)
        assert (await run_to_exit(rt, "d1", echo))[1:] == (b"ok\n", 0)
        zygotes, spares = zygote_kids(rt.helper_pid)
        for n in range(10):  # a spare is cloned after each create: usually there at once
            if spares:
                break
            assert (await run_to_exit(rt, f"d1.{n}", echo))[1:] == (b"ok\n", 0)
            zygotes, spares = zygote_kids(rt.helper_pid)
        assert len(zygotes) == 1 and len(spares) == 1
        kill_and_await(spares[0])
        # The spare is gone: the zygote clones the init instead.
        assert (await run_to_exit(rt, "d3", echo))[1:] == (b"ok\n", 0)
        kill_and_await(zygotes[0])
        # The zygote is gone: the helper forks this one itself and starts a new zygote...
        assert (await run_to_exit(rt, "d4", echo))[1:] == (b"ok\n", 0)
        # ...which the next create waits for and uses.
        assert (await run_to_exit(rt, "d5", echo))[1:] == (b"ok\n", 0)
        now, _ = zygote_kids(rt.helper_pid)
        assert len(now) == 1 and now != zygotes
        await rt.shutdown()

    run(body)
    assert sorted(p.name for p in state_root.iterdir()) == [".helper.lock"]


def test_a_failing_init_from_the_spare_names_its_step(make_bundle: Callable[..., Bundle],
                                                     state_root: Path,
                                                     helper_pids: list[int]) -> None:
    def bad_mount(cfg: dict[str, Any]) -> None:
        cfg["mounts"].append({"destination": "/mnt", "type": "nosuchfs", "source": "none"})
    bad = make_bundle(["true"], bad_mount)
    good = make_bundle(["sh", "-c", "echo fine"])

    async def body() -> None:
        rt = await spawn(state_root, helper_pids)
        for attempt in range(3):  # the zygote's clone, then spares
            with pytest.raises(CreateFailed) as info:
                await rt.create(f"bad{attempt}", bad.path)
            assert info.value.step.startswith("mounts[") and "/mnt" in info.value.step
            assert not (state_root / f"bad{attempt}").exists()
            assert cgroup_leftovers(f"bad{attempt}") == []
        assert (await run_to_exit(rt, "after", good))[1:] == (b"fine\n", 0)
        await rt.shutdown()

    run(body)


def test_hooks_and_limits_through_the_zygote(make_bundle: Callable[..., Bundle],
                                            state_root: Path, tmp_path: Path,
                                            helper_pids: list[int]) -> None:
    """The zygote runs with ``python -S``: hooks (typed structs in the plan) still reach the
    init, and the limits are the launcher's, on the init's cgroup."""
    log = tmp_path / "hooks.log"

    def edit(cfg: dict[str, Any]) -> None:
        cfg["hooks"] = {k: [{"path": "/bin/sh",
                             "args": ["sh", "-c", f"echo {k} $(cat) >> {log}"]}]
                        for k in ("createRuntime", "createContainer")}
        # startContainer runs in the container: it leaves the state where the process reads it.
        cfg["hooks"]["startContainer"] = [{"path": "/bin/sh",
                                           "args": ["sh", "-c", "cat > /tmp/state"]}]
        cfg["linux"]["resources"] = {"memory": {"limit": 64 << 20}}
    bundle = make_bundle(["cat", "/tmp/state"], edit)

    async def body() -> None:
        rt = await spawn(state_root, helper_pids)
        for n in range(3):  # through the zygote's clone, then through spares
            out_r, out_w = os.pipe()
            await rt.create(f"h{n}", bundle.path, stdout=out_w)
            os.close(out_w)
            pid = (await rt.state(f"h{n}")).pid
            assert ppid(pid) == rt.helper_pid
            memory = next(line.split(":", 2)[2] for line in
                          Path(f"/proc/{pid}/cgroup").read_text().splitlines()
                          if ":memory:" in line)
            limit = Path(f"/sys/fs/cgroup/memory{memory}/memory.limit_in_bytes").read_text()
            assert int(limit) == 64 << 20
            await rt.start(f"h{n}")
            assert (await rt.wait(f"h{n}")).code == 0
            assert json.loads(read_all(out_r))["id"] == f"h{n}"
            await rt.delete(f"h{n}")
        await rt.shutdown()

    run(body)
    lines = log.read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["createRuntime", "createContainer"] * 3
    assert [json.loads(line.split(" ", 1)[1])["id"] for line in lines] == [
        "h0", "h0", "h1", "h1", "h2", "h2"]


def test_namespaces_made_ahead_are_left_when_shared(make_bundle: Callable[..., Bundle],
                                                  state_root: Path,
                                                  helper_pids: list[int]) -> None:
    """Spares make the network, IPC and UTS namespaces of the last create ahead of time; a
    container that shares the host's gets the host's all the same. A network namespace has
    ``lo`` up, whether a spare made it ahead or the init made it."""
    own = make_bundle(["sleep", "1000"])

    def host_net(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"]
                                      if ns["type"] not in ("network", "uts")]
        cfg.pop("hostname")
    shared = make_bundle(["sleep", "1000"], host_net)

    def ns(pid: int, name: str) -> str:
        return os.readlink(f"/proc/{pid}/ns/{name}")

    def lo_flags(pid: int) -> str:
        """``ip``'s line for lo in the process's network namespace."""
        return subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "-o", "link",
                               "show", "lo"], capture_output=True, text=True, check=True,
                              timeout=TIMEOUT).stdout

    async def body() -> None:
        rt = await spawn(state_root, helper_pids)
        helper = rt.helper_pid
        seen_net = set()
        for n, bundle in enumerate([own, own, own, shared, shared, own, shared]):
            cid = f"n{n}"
            await rt.create(cid, bundle.path)
            pid = (await rt.state(cid)).pid
            if bundle is own:
                assert ns(pid, "net") != ns(helper, "net")
                assert ns(pid, "uts") != ns(helper, "uts")
                assert ns(pid, "net") not in seen_net  # each its own
                seen_net.add(ns(pid, "net"))
                assert ",UP," in lo_flags(pid)
            else:
                assert ns(pid, "net") == ns(helper, "net")
                assert ns(pid, "uts") == ns(helper, "uts")
            assert ns(pid, "ipc") != ns(helper, "ipc")
        # Deleted only now: a freed namespace's inode number can be given to the next one.
        for n in range(7):
            await rt.delete(f"n{n}", force=True)
        await rt.shutdown()

    run(body)


def test_exec_is_cloned_into_the_container(make_bundle: Callable[..., Bundle],
                                           state_root: Path, helper_pids: list[int]) -> None:
    """exec: one clone from the zygote straight into the container's pid namespace; the
    process is the helper's child; with no zygote the helper forks it as before."""
    sleeper = make_bundle(["sleep", "1000"])

    def host_pid(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"]
                                      if ns["type"] != "pid"]
    shared = make_bundle(["sleep", "1000"], host_pid)

    async def exec_out(rt: RuntimeHelper, cid: str, args: list[str]) -> tuple[bytes, int]:
        """Run ``sh -c SCRIPT`` in the container: it waits for a line on stdin first, so that
        it is still there to be looked at."""
        assert args[:2] == ["sh", "-c"]
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        proc = await rt.exec(cid, ["sh", "-c", "read go; " + args[2]], stdin=in_r,
                             stdout=out_w)
        os.close(in_r)
        os.close(out_w)
        assert ppid(proc.pid) == rt.helper_pid
        os.write(in_w, b"go\n")
        os.close(in_w)
        code = (await rt.wait_exec(cid, proc.pid)).code
        assert code is not None
        return read_all(out_r), code

    async def body() -> None:
        rt = await spawn(state_root, helper_pids)
        await rt.create("x1", sleeper.path)
        await rt.start("x1")
        await rt.create("x2", shared.path)
        await rt.start("x2")
        init2 = (await rt.state("x2")).pid
        show = ["sh", "-c", "echo $$ $(hostname) $(cat /proc/1/cmdline | tr '\\0' ' '); exit 6"]
        out, code = await exec_out(rt, "x1", show)
        words = out.split()
        assert code == 6 and words[0] != b"1" and words[1:] == [b"shoaltest", b"sleep", b"1000"]
        out, code = await exec_out(rt, "x2", ["sh", "-c", "echo $PPID; hostname"])
        assert code == 0 and out.split()[1] == b"shoaltest"
        assert int(out.split()[0]) == rt.helper_pid  # the host's pid namespace: real pids
        with pytest.raises(OperationFailed, match=r"process\.args"):
            await rt.exec("x1", ["/no/such/program"])
        zygotes, _ = zygote_kids(rt.helper_pid)
        kill_and_await(zygotes[0])
        # Forked by the helper this time (and the zygote restarted for next time).
        out, code = await exec_out(rt, "x1", show)
        assert code == 6 and out.split()[1:] == [b"shoaltest", b"sleep", b"1000"]
        out, code = await exec_out(rt, "x1", show)
        assert code == 6 and zygote_kids(rt.helper_pid)[0] not in ([], zygotes)
        assert Path(f"/proc/{init2}").exists()
        for cid in ("x1", "x2"):
            await rt.delete(cid, force=True)
        await rt.shutdown()

    run(body)
    assert cgroup_leftovers("x1") == cgroup_leftovers("x2") == []
