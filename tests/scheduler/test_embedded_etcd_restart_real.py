"""A real ``shoal scheduler`` on its embedded etcd (no --etcd), the etcd killed with SIGKILL:
its supervisor starts it again and the scheduler reconnects by itself; a verb sent after the
kill is answered within a bounded time, by the same leader."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

import channels
from cli.dev import DevCluster
from protocol.messages import ContainerList, ListContainers
from tests.helpers import cluster_keys
from tests.helpers.bounded_run import run
from tests.helpers.store_fixtures import kill_9

# From the kill to the answer: etcd's restart (its election timeout included) and the
# client's reconnection, with room for a loaded machine.
ANSWER_WITHIN = 15.0


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children of all its threads, and theirs)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:  # the thread ended meanwhile
            continue
        for child in map(int, children):
            found += [child, *descendants(child)]
    return found


def etcd_below(pid: int) -> int:
    found = [p for p in descendants(pid)
             if Path(f"/proc/{p}/comm").read_text().strip() == "etcd"]
    assert len(found) == 1, f"etcd processes below {pid}: {found}"
    return found[0]


def test_a_killed_embedded_etcd_is_restarted_and_the_scheduler_answers() -> None:
    with tempfile.TemporaryDirectory(prefix="shoal-etcd-restart-") as tmp:
        procs = DevCluster(Path(tmp), "", workers=0)  # its process plumbing, not its start()

        async def body() -> None:
            restarted = 0
            try:
                scheduler = await procs.launch("s1", [
                    "scheduler", "--listen", "tcp://127.0.0.1:0", "--name", "s1",
                    "--state-dir", str(Path(tmp) / "s1")])
                address = procs.ready["s1"]["LISTEN"]
                killed = etcd_below(scheduler.pid)
                kill_9(killed)
                started = time.monotonic()
                async with asyncio.timeout(ANSWER_WITHIN):
                    async with await cluster_keys.connect(address) as conn:
                        listed = await channels.request(
                            conn.sender, lambda r: ListContainers(reply=r),
                            timeout=ANSWER_WITHIN)
                assert isinstance(listed, ContainerList)
                print(f"answered {time.monotonic() - started:.2f} s after the kill")
                assert scheduler.poll() is None
                restarted = etcd_below(scheduler.pid)
                assert restarted != killed
                log = (Path(tmp) / "s1.log").read_text()
                assert "leadership lost" not in log, log[-2000:]
            finally:
                await procs.stop()
            assert restarted and not os.path.exists(f"/proc/{restarted}"), \
                "etcd outlived its scheduler"

        run(body, 60.0)
