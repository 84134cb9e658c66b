"""``--network container:NAME`` on the real kernel: the joined container has its peer's
interfaces, address, hostname and network files and reaches what the peer serves on
127.0.0.1; it needs its peer running; when the peer restarts it keeps the namespace it had
(as in Docker) until its own next start, which joins the peer's new one."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from protocol.errors import Conflict, NotFound
from protocol.specs import ContainerSpec, RestartPolicy
from tests.helpers.network_engine import with_engine
from worker.engine.engine import Engine
from worker.engine.native_driver import NativeDriver

pytestmark = pytest.mark.root

# Serves on loopback only: only a container in its namespace can reach it.
SERVE = "echo served-by-$(hostname) > /tmp/index.html; exec httpd -f -p 127.0.0.1:8000 -h /tmp"
NETNS = ["readlink", "/proc/self/ns/net"]


def busybox(*command: str, **fields: object) -> ContainerSpec:
    return ContainerSpec(image="busybox", command=list(command), **fields)  # type: ignore[arg-type]


async def output(engine: Engine, container_id: str) -> str:
    return "".join([e.data.decode() async for e in engine.logs(container_id)])


async def netns(engine: Engine, ref: str) -> str:
    result = await engine.exec(ref, NETNS)
    assert result.exit_code == 0, result.output
    return result.output.decode().strip()


def test_a_joined_container_shares_the_peers_network(tmp_path: Path) -> None:
    async def body(engine: Engine, driver: NativeDriver, state: Path) -> None:
        with pytest.raises(NotFound, match="no such container: web"):
            await engine.create(busybox("true", network="container:web"))
        web = await engine.create(busybox("sh", "-c", SERVE, network="bridge", name="web",
                                          hostname="webhost", add_hosts=["db:10.9.9.9"]))
        side = await engine.create(busybox(
            "sh", "-c", "for i in $(seq 50); do wget -qO- http://127.0.0.1:8000/ && break; "
            "sleep 0.1; done; ip -4 -o addr show eth0; hostname; cat /etc/hosts",
            network="container:web", name="side"))
        with pytest.raises(Conflict, match="cannot join the network of web: it is not running"):
            await engine.start(side.id)
        await engine.start(web.id)
        address = engine.inspect(web.id).details["ip_address"]
        await engine.start(side.id)
        assert (await engine.wait(side.id)).exit_code == 0
        text = await output(engine, side.id)
        assert "served-by-webhost" in text
        assert f"inet {address}/" in text  # the peer's eth0, with the peer's address
        assert "\nwebhost\n" in text and "10.9.9.9\tdb" in text
        joined = engine.inspect(side.id)
        assert joined.spec.network == "container:web"
        assert "ip_address" not in joined.details and not engine.ps(all=True)[0].ports
        await engine.remove(side.id)
        await engine.remove(web.id, force=True)

    with_engine(tmp_path, body)


def test_the_peer_restarting_leaves_the_old_namespace_until_a_restart(tmp_path: Path) -> None:
    async def body(engine: Engine, driver: NativeDriver, state: Path) -> None:
        web = await engine.create(busybox("sleep", "600", network="bridge", name="web"))
        await engine.start(web.id)
        side = await engine.create(busybox("sleep", "600", network="container:" + web.id[:12]))
        await engine.start(side.id)
        first = await netns(engine, web.id)
        assert await netns(engine, side.id) == first
        await engine.restart(web.id, timeout=0)
        second = await netns(engine, web.id)
        assert second != first
        assert await netns(engine, side.id) == first  # Docker's: it keeps what it joined
        gone = await engine.exec(side.id, ["ip", "-o", "link", "show", "eth0"])
        assert gone.exit_code != 0  # the peer's interface went with the peer's exit
        await engine.restart(side.id, timeout=0)
        assert await netns(engine, side.id) == second  # its start joins the peer's new one
        # A peer that stopped: its joined container's restart policy cannot bring it back,
        # and says why.
        await engine.stop(web.id, timeout=0)
        with pytest.raises(Conflict, match="not running"):
            await engine.restart(side.id, timeout=0)
        assert engine.inspect(side.id).state.status == "exited"

    with_engine(tmp_path, body)


def test_restarted_by_policy_with_its_peer_it_joins_the_peers_new_namespace(
        tmp_path: Path) -> None:
    async def body(engine: Engine, driver: NativeDriver, state: Path) -> None:
        always = RestartPolicy(name="always")
        web = await engine.create(busybox("sleep", "600", network="bridge", name="web",
                                          restart=always))
        await engine.start(web.id)
        side = await engine.create(busybox("sleep", "600", network="container:web",
                                           restart=always))
        await engine.start(side.id)
        before = {r.id: r.restart_count for r in (web, side)}
        # The joined one first: its restart comes due before its peer's, and waits for it.
        for record in (side, web):
            os.kill(record.state.pid, signal.SIGKILL)

        def both_back() -> bool:
            return all(r.state.status == "running" and r.restart_count > before[r.id]
                       for r in (web, side))

        async with engine._changed:
            await asyncio.wait_for(engine._changed.wait_for(both_back), 30)
        assert await netns(engine, side.id) == await netns(engine, web.id)

    with_engine(tmp_path, body)
