"""Debian's docker CLI against a worker's Docker API for what lives beside containers: networks
(create, ls, inspect, connect, disconnect, rm, prune, aliases), volumes (create, ls, inspect,
rm, a named volume shared by two runs), healthchecks (``run --health-cmd``, the ``health``
filter), builds, tags, and push and pull through Debian's docker-registry on loopback."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench._registry_server import RunningRegistry, available, registry
from tests.helpers.docker_api import DOCKER_CLI, docker, docker_worker, wait_for_event
from tests.helpers.requirements import missing
from tests.helpers.worker_process import Worker

pytestmark = pytest.mark.root
HEALTHY_WITHIN = 60.0


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    assert DOCKER_CLI.exists(), "Debian's docker.io is missing: run deploy/setup.sh"
    with docker_worker(tmp_path_factory.mktemp("dockerobj") / "worker") as worker:
        yield worker


@pytest.fixture
def cli(node: Worker, tmp_path: Path):  # type: ignore[no-untyped-def]
    def run(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return docker(node.docker, tmp_path, *args, **kwargs)  # type: ignore[arg-type]
    return run


def unique(prefix: str) -> str:
    return f"da2{prefix}{secrets.token_hex(3)}"


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_network_lifecycle_with_aliases(cli) -> None:  # type: ignore[no-untyped-def]
    net = unique("net")
    network_id = ok(cli("network", "create", "--label", "team=a", net)).strip()
    try:
        names = ok(cli("network", "ls", "--format", "{{.Name}} {{.Driver}}")).splitlines()
        assert f"{net} bridge" in names and "bridge bridge" in names and "host host" in names
        assert ok(cli("network", "ls", "-q", "--filter", "label=team=a")).split() == \
            [network_id[:12]]
        shown = json.loads(ok(cli("network", "inspect", net)))[0]
        assert shown["Id"] == network_id and shown["Labels"] == {"team": "a"}
        subnet = shown["IPAM"]["Config"][0]["Subnet"]
        assert shown["Driver"] == "bridge" and shown["Scope"] == "local"
        cid = ok(cli("run", "-d", "--name", f"{net}-srv", "--network", net, "--network-alias",
                     "db", "busybox", "sleep", "600")).strip()
        inspected = json.loads(ok(cli("inspect", f"{net}-srv")))[0]
        endpoint = inspected["NetworkSettings"]["Networks"][net]
        # the short id last, as docker 24 lists it (Compose 1.29 reads it)
        assert endpoint["Aliases"] == ["db", cid[:12]] and endpoint["NetworkID"] == network_id
        address = endpoint["IPAddress"]
        assert address and endpoint["Gateway"] and endpoint["IPPrefixLen"] == \
            int(subnet.rpartition("/")[2])
        # The alias answers on that network (the embedded resolver).
        looked = ok(cli("run", "--rm", "--network", net, "busybox", "nslookup", "db"))
        assert address in looked, looked
        members = json.loads(ok(cli("network", "inspect", net)))[0]["Containers"]
        assert [m["IPv4Address"].partition("/")[0] for m in members.values()] == [address]
        # connect and disconnect another network
        other = unique("oth")
        ok(cli("network", "create", other))
        ok(cli("network", "connect", "--alias", "cache", other, f"{net}-srv"))
        on = json.loads(ok(cli("inspect", f"{net}-srv")))[0]["NetworkSettings"]["Networks"]
        assert set(on) == {net, other} and on[other]["IPAddress"]
        listed = ok(cli("ps", "--filter", f"network={other}", "--format", "{{.Names}}"))
        assert listed.split() == [f"{net}-srv"]
        busy = cli("network", "rm", other)
        assert busy.returncode == 1 and "in use" in busy.stderr
        ok(cli("network", "disconnect", other, f"{net}-srv"))
        ok(cli("network", "rm", other))
        gone = cli("network", "inspect", other)
        assert gone.returncode == 1 and f"No such network: {other}" in gone.stderr
    finally:
        cli("rm", "-f", f"{net}-srv")
    pruned = ok(cli("network", "prune", "-f"))
    assert net in pruned
    assert "bridge" in ok(cli("network", "ls", "--format", "{{.Name}}")).split()


def test_a_named_volume_outlives_its_containers(cli) -> None:  # type: ignore[no-untyped-def]
    vol = unique("vol")
    assert ok(cli("volume", "create", "--label", "keep=1", vol)).strip() == vol
    try:
        assert vol in ok(cli("volume", "ls", "-q", "--filter", "label=keep=1")).split()
        shown = json.loads(ok(cli("volume", "inspect", vol)))[0]
        assert shown["Driver"] == "local" and shown["Labels"] == {"keep": "1"}
        assert shown["Mountpoint"].endswith("/_data")
        ok(cli("run", "--rm", "-v", f"{vol}:/data", "busybox", "sh", "-c",
               "echo kept > /data/f"))
        read = ok(cli("run", "--rm", "--mount", f"type=volume,source={vol},target=/v,readonly",
                      "--tmpfs", "/scratch:size=1m", "busybox", "sh", "-c",
                      "cat /v/f; touch /v/g 2>/dev/null || echo ro; df /scratch | tail -1"))
        lines = read.splitlines()
        assert lines[:2] == ["kept", "ro"] and lines[2].split()[1] == "1024", read
        ok(cli("run", "-d", "--name", f"{vol}-user", "-v", f"{vol}:/data", "busybox", "sleep",
               "600"))
        mounts = json.loads(ok(cli("inspect", f"{vol}-user")))[0]["Mounts"]
        assert mounts[0]["Type"] == "volume" and mounts[0]["Name"] == vol
        assert mounts[0]["Source"] == shown["Mountpoint"]
        busy = cli("volume", "rm", vol)
        assert busy.returncode == 1 and "in use" in busy.stderr
    finally:
        cli("rm", "-f", f"{vol}-user")
    ok(cli("volume", "rm", vol))
    assert cli("volume", "inspect", vol).returncode == 1
    assert cli("volume", "rm", "-f", vol).returncode == 0  # -f: a missing one is fine


def test_run_with_a_health_command(cli, node: Worker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    name = unique("hc")
    since = time.time() - 1
    cid = ok(cli("run", "-d", "--name", name, "--health-cmd", "test -f /tmp/up",
                 "--health-interval", "1s", "--health-retries", "1", "busybox", "sh", "-c",
                 "touch /tmp/up; exec sleep 600")).strip()
    try:
        assert wait_for_event(node.docker, tmp_path, cid, since, "health_status: healthy",
                              HEALTHY_WITHIN)
        status = ok(cli("inspect", "--format", "{{.State.Health.Status}}", name)).strip()
        assert status == "healthy"
        config = json.loads(ok(cli("inspect", name)))[0]["Config"]["Healthcheck"]
        assert config["Test"] == ["CMD-SHELL", "test -f /tmp/up"]
        assert config["Interval"] == 1_000_000_000 and config["Retries"] == 1
        listed = ok(cli("ps", "--filter", "health=healthy", "--format", "{{.Names}} {{.Status}}"))
        assert listed.startswith(f"{name} Up") and "(healthy)" in listed
        log = json.loads(ok(cli("inspect", "--format", "{{json .State.Health.Log}}", name)))
        assert log and log[-1]["ExitCode"] == 0
    finally:
        cli("rm", "-f", name)


def test_build_and_tag(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    context = tmp_path / "context"
    context.mkdir()
    (context / "greeting").write_text("built here\n")
    (context / "Dockerfile.alt").write_text(
        "FROM busybox\nARG WHO=nobody\nCOPY greeting /greeting\n"
        "RUN echo \"for $WHO\" >> /greeting\nCMD [\"cat\", \"/greeting\"]\n")
    tag = unique("img") + ":1"
    built = cli("build", "-t", tag, "-f", str(context / "Dockerfile.alt"), "--build-arg",
                "WHO=docker", str(context), timeout=300)
    assert built.returncode == 0, built.stderr
    assert "Successfully built" in built.stdout and f"Successfully tagged {tag}" in built.stdout
    assert ok(cli("run", "--rm", tag)) == "built here\nfor docker\n"
    quiet = ok(cli("build", "-q", "-f", str(context / "Dockerfile.alt"), str(context),
                   timeout=300))
    assert quiet.strip().startswith("sha256:")
    other = unique("tag") + ":2"
    ok(cli("tag", tag, other))
    assert ok(cli("image", "inspect", "--format", "{{.Id}}", other)) == \
        ok(cli("image", "inspect", "--format", "{{.Id}}", tag))
    (context / "Dockerfile").write_text("FROM busybox\nRUN exit 7\n")
    failed = cli("build", str(context), timeout=300)
    # As with docker: the RUN's exit code is the build's (the error line's code).
    assert failed.returncode == 7 and "returned a non-zero code: 7" in failed.stderr
    ok(cli("rmi", tag, other))


@pytest.fixture(scope="module")
def local_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    why = available()
    if why is not None:
        missing(why)
    with registry(tmp_path_factory.mktemp("dockerapi-registry")) as running:
        yield running


def test_push_and_pull_through_a_registry(cli, local_registry: RunningRegistry) -> None:  # type: ignore[no-untyped-def]
    remote = f"{local_registry.address}/{unique('repo')}:v1"
    ok(cli("tag", "busybox", remote))
    pushed = ok(cli("push", remote, timeout=120))
    assert "digest: sha256:" in pushed
    ok(cli("rmi", remote))
    assert cli("image", "inspect", remote).returncode == 1
    pulled = cli("pull", remote, timeout=120)
    assert pulled.returncode == 0, pulled.stderr
    assert "Digest: sha256:" in pulled.stdout and "Status: " in pulled.stdout
    assert ok(cli("run", "--rm", remote, "echo", "pulled")) == "pulled\n"
    absent = cli("pull", f"{local_registry.address}/nothing-here:v1", timeout=60)
    assert absent.returncode == 1 and "Error response from daemon" in absent.stderr
    ok(cli("rmi", remote))
