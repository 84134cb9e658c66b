"""Debian's docker CLI against the dev cluster's scheduler: creates are scheduled (Swarm
classic's constraint: env entries included), and logs, exec, wait and attach reach the
container's worker through the scheduler; networks and volumes (Swarm classic's NODE/NAME)."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import docker as docker_py
import pytest

from cli.dev import DevCluster
from tests.helpers.docker_api import DOCKER_CLI, docker

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    assert DOCKER_CLI.exists(), "Debian's docker.io is missing: run deploy/setup.sh"
    dev = DevCluster(tmp_path_factory.mktemp("dockercluster") / "dev", "tcp://127.0.0.1:0",
                     workers=2, heartbeat=0.2, node_timeout=2.0)
    asyncio.run(dev.start())
    try:
        assert dev.docker.startswith("unix://"), dev.ready["scheduler"]
        yield dev
    finally:
        asyncio.run(dev.stop())


@pytest.fixture
def cli(cluster: DevCluster, tmp_path: Path):  # type: ignore[no-untyped-def]
    def run(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return docker(cluster.docker, tmp_path, *args, **kwargs)  # type: ignore[arg-type]
    return run


def test_version_and_info_show_the_nodes(cli) -> None:  # type: ignore[no-untyped-def]
    version = cli("version", "--format", "{{.Server.Os}} {{.Server.APIVersion}}")
    assert version.stdout.split() == ["linux", "1.45"], version.stderr
    info = cli("info", "--format", "{{json .SystemStatus}}")
    status = json.loads(info.stdout)
    assert ["Nodes", "2"] in status
    assert {row[0].strip() for row in status} >= {"worker1", "worker2"}, status
    assert cli("images", "--format", "{{.Repository}}").stdout.split() == ["busybox"]


def test_run_rm_through_the_scheduler(cli) -> None:  # type: ignore[no-untyped-def]
    done = cli("run", "--rm", "busybox", "sh", "-c", "echo hi; exit 3")
    assert (done.returncode, done.stdout) == (3, "hi\n"), done.stderr
    assert cli("ps", "-aq").stdout.split() == []


def test_scheduled_with_a_classic_constraint(cli) -> None:  # type: ignore[no-untyped-def]
    started = cli("run", "-d", "-e", "constraint:node==worker2", "busybox", "sh", "-c",
                  "echo ready; exec sleep 600")
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    try:
        node = cli("inspect", "-f", "{{.Node.Name}} {{.Node.ID}}", cid)
        assert node.stdout.split()[-1] == "worker2", node.stdout + node.stderr
        env = cli("inspect", "-f", "{{json .Config.Env}}", cid)
        assert "constraint" not in env.stdout  # a rule, not the container's environment
        assert cli("ps", "--format", "{{.ID}}").stdout.split() == [cid[:12]]
        executed = cli("exec", cid, "sh", "-c", "echo from $(hostname); exit 6")
        assert executed.returncode == 6 and executed.stdout.startswith("from "), executed
        deadline = time.monotonic() + 30
        while (logs := cli("logs", cid)).stdout != "ready\n":  # the log fills on its own time
            assert time.monotonic() < deadline, logs.stdout + logs.stderr
        assert cli("stop", "-t", "1", cid).returncode == 0
    finally:
        assert cli("rm", "-f", cid).returncode == 0


def test_refusals_through_the_scheduler(cli) -> None:  # type: ignore[no-untyped-def]
    nowhere = cli("run", "-d", "-e", "constraint:node==nosuchnode", "busybox", "true")
    assert nowhere.returncode != 0
    assert "0/2 nodes" in nowhere.stderr or "no node" in nowhere.stderr.lower() \
        or "nosuchnode" in nowhere.stderr, nowhere.stderr
    assert cli("rm", "-f", "nope").returncode == 0
    missing = cli("inspect", "nope")
    assert missing.returncode == 1 and "No such object: nope" in missing.stderr


def test_networks_and_volumes_through_the_scheduler(cli) -> None:  # type: ignore[no-untyped-def]
    net, vol = f"da2cn{secrets.token_hex(3)}", f"da2cv{secrets.token_hex(3)}"
    created = cli("network", "create", net)
    assert created.returncode == 0, created.stderr
    assert net in cli("network", "ls", "--format", "{{.Name}}").stdout.split()
    # Swarm classic's NODE/NAME: the volume on worker2; a container that mounts it goes there
    made = cli("volume", "create", f"worker2/{vol}")
    assert made.returncode == 0, made.stderr
    try:
        shown = json.loads(cli("volume", "inspect", f"worker2/{vol}").stdout)[0]
        assert shown["Name"] == vol and shown["Status"] == {"Node": "worker2"}
        ran = cli("run", "-d", "--network", net, "-v", f"{vol}:/data", "busybox", "sh", "-c",
                  "echo kept > /data/f; exec sleep 600")
        assert ran.returncode == 0, ran.stderr
        cid = ran.stdout.strip()
        try:
            where = cli("inspect", "-f", "{{.Node.Name}} {{.HostConfig.NetworkMode}}", cid)
            assert where.stdout.split() == ["worker2", net], where.stdout + where.stderr
        finally:
            gone = cli("rm", "-f", cid)
            assert gone.returncode == 0, gone.stderr
    finally:
        # Best effort: the scheduler still counts a container removed a moment ago among a
        # volume's users (after its destroy event), so the dev cluster's teardown does it.
        cli("volume", "rm", f"worker2/{vol}")
        cli("network", "rm", net)


def test_connected_networks_show_in_inspect_through_the_scheduler(  # type: ignore[no-untyped-def]
        cli, cluster: DevCluster) -> None:
    net = f"da2ce{secrets.token_hex(3)}"
    assert cli("network", "create", net).returncode == 0
    ran = cli("run", "-d", "busybox", "sleep", "600")
    assert ran.returncode == 0, ran.stderr
    cid = ran.stdout.strip()
    try:
        linked = cli("network", "connect", "--link", "other:o", net, cid)
        assert linked.returncode != 0 and "Links" in linked.stderr, linked.stderr
        connected = cli("network", "connect", "--alias", "extra", net, cid)
        assert connected.returncode == 0, connected.stderr
        shown = json.loads(cli("inspect", cid).stdout)[0]["NetworkSettings"]
        assert set(shown["Networks"]) == {"bridge", net}, shown
        net_id = cli("network", "inspect", "-f", "{{.Id}}", net).stdout.strip()
        for endpoint in shown["Networks"].values():
            ip = endpoint["IPAddress"]
            assert ip and endpoint["Gateway"] and 8 <= endpoint["IPPrefixLen"] <= 30, endpoint
            assert endpoint["MacAddress"] == "02:42:" + ":".join(
                f"{int(b):02x}" for b in ip.split(".")), endpoint
            assert len(endpoint["EndpointID"]) == 64 and endpoint["NetworkID"], endpoint
            # The address is the one the container has on that network.
            inside = cli("exec", cid, "ip", "-o", "-4", "addr")
            assert f"inet {ip}/{endpoint['IPPrefixLen']}" in inside.stdout, inside.stdout
        assert shown["Networks"][net]["NetworkID"] == net_id
        assert "extra" in shown["Networks"][net]["Aliases"]
        assert shown["IPAddress"] == shown["Networks"]["bridge"]["IPAddress"]
        listed = cli("ps", "--filter", f"id={cid}", "--format", "{{.Networks}}").stdout
        assert sorted(listed.strip().split(",")) == sorted(["bridge", net]), listed
        on_net = json.loads(cli("network", "inspect", net).stdout)[0]["Containers"]
        assert on_net[cid]["EndpointID"] == shown["Networks"][net]["EndpointID"], on_net

        # docker-py sees the same, and its disconnect takes the network away.
        client = docker_py.DockerClient(base_url=cluster.docker, timeout=60)
        try:
            container = client.containers.get(cid)
            assert set(container.attrs["NetworkSettings"]["Networks"]) == {"bridge", net}
            client.networks.get(net).disconnect(container)
            container.reload()
            assert set(container.attrs["NetworkSettings"]["Networks"]) == {"bridge"}
        finally:
            client.close()
    finally:
        assert cli("rm", "-f", cid).returncode == 0
        cli("network", "rm", net)
