"""pause/unpause, rename, update and stats through a worker's Docker API, with Debian's docker
CLI and docker-py: the container's state, its cgroups, its DNS name and Docker's errors."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from tests.helpers.docker_api import DOCKER_CLI, docker_worker
from tests.helpers.docker_api import docker as docker_cli
from tests.helpers.worker_process import Worker

pytestmark = pytest.mark.root

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    assert DOCKER_CLI.exists(), "Debian's docker.io is missing: run deploy/setup.sh"
    with docker_worker(tmp_path_factory.mktemp("apiverbs") / "worker") as worker:
        yield worker


@pytest.fixture
def cli(node: Worker, tmp_path: Path) -> Cli:
    def run(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return docker_cli(node.docker, tmp_path, *args, **kwargs)  # type: ignore[arg-type]
    return run


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def cgroup_file(pid: int, controller: str, name: str) -> str:
    """A file of the cgroup ``pid`` is in, read from the host."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return (Path("/sys/fs/cgroup") / controller / path.lstrip("/") / name) \
                .read_text().strip()
    raise AssertionError(f"{pid} is in no {controller} cgroup")


def pid_of(cli: Cli, name: str) -> int:
    return int(cli("inspect", "-f", "{{.State.Pid}}", name).stdout)


def test_pause_freezes_and_unpause_thaws(cli: Cli) -> None:
    name = unique("frozen")
    assert cli("run", "-d", "--name", name, "busybox", "sleep", "600").returncode == 0
    try:
        paused = cli("pause", name)
        assert (paused.returncode, paused.stdout.strip()) == (0, name), paused.stderr
        assert cgroup_file(pid_of(cli, name), "freezer", "freezer.state") == "FROZEN"
        state = cli("inspect", "-f", "{{.State.Status}} {{.State.Paused}} {{.State.Running}}",
                    name)
        assert state.stdout.split() == ["paused", "true", "true"]
        listed = cli("ps", "--filter", f"name={name}", "--format", "{{.Status}}")
        assert listed.stdout.strip().endswith("(Paused)"), listed.stdout
        again = cli("pause", name)
        assert again.returncode == 1 and "is already paused" in again.stderr
        refused = cli("exec", name, "true")
        assert refused.returncode != 0 and "is paused, unpause the container" in refused.stderr
        assert cli("top", name).returncode == 0  # Docker lists a paused container's processes
        started = cli("start", name)
        assert started.returncode == 1 and "try unpause instead" in started.stderr

        resumed = cli("unpause", name)
        assert resumed.returncode == 0, resumed.stderr
        assert cgroup_file(pid_of(cli, name), "freezer", "freezer.state") == "THAWED"
        assert cli("inspect", "-f", "{{.State.Status}}", name).stdout.strip() == "running"
        assert cli("exec", name, "true").returncode == 0
        not_paused = cli("unpause", name)
        assert not_paused.returncode == 1 and "is not paused" in not_paused.stderr

        # A paused container stops: the stop signal is sent, then it is thawed to act on it.
        assert cli("pause", name).returncode == 0
        stopped = cli("stop", "-t", "1", name)
        assert stopped.returncode == 0, stopped.stderr
        assert cli("inspect", "-f", "{{.State.Status}}", name).stdout.strip() == "exited"
        idle = cli("pause", name)
        assert idle.returncode == 1 and "is not running" in idle.stderr
    finally:
        cli("rm", "-f", name)


def test_a_paused_container_is_removed_only_with_force(cli: Cli) -> None:
    name = unique("frozen")
    assert cli("run", "-d", "--name", name, "busybox", "sleep", "600").returncode == 0
    assert cli("pause", name).returncode == 0
    refused = cli("rm", name)
    assert refused.returncode == 1 and "paused" in refused.stderr
    assert cli("rm", "-f", name).returncode == 0
    assert cli("inspect", name).returncode == 1


def test_rename_keeps_names_unique_and_dns_follows(cli: Cli) -> None:
    network, old, new, other = unique("ren-net"), unique("ren"), unique("ren"), unique("ren")
    assert cli("network", "create", network).returncode == 0
    try:
        for name in (old, other):
            started = cli("run", "-d", "--name", name, "--network", network, "busybox",
                          "sleep", "600")
            assert started.returncode == 0, started.stderr
        assert cli("rename", old, new).returncode == 0
        assert cli("inspect", "-f", "{{.Name}}", new).stdout.strip() == f"/{new}"
        assert "No such object" in cli("inspect", old).stderr
        taken = cli("rename", new, other)
        assert taken.returncode == 1 and f'The container name "/{other}" is already in use' \
            in taken.stderr
        same = cli("rename", new, new)
        assert same.returncode == 1 and "same name as its current name" in same.stderr
        bad = cli("rename", new, "no/slash")
        assert bad.returncode == 1 and "Invalid container name" in bad.stderr
        # The resolver answers the new name, and the old one no more.
        found = cli("exec", other, "nslookup", "-type=a", new)
        assert found.returncode == 0, found.stdout + found.stderr
        gone = cli("exec", other, "nslookup", "-type=a", old)
        assert gone.returncode != 0, gone.stdout
    finally:
        cli("rm", "-f", old, new, other)
        cli("network", "rm", network)


def test_update_changes_the_cgroups_now_and_after_a_restart(cli: Cli) -> None:
    name = unique("upd")
    assert cli("run", "-d", "--name", name, "--memory", "64m", "busybox", "sleep",
               "600").returncode == 0
    try:
        pid = pid_of(cli, name)
        assert cgroup_file(pid, "memory", "memory.limit_in_bytes") == str(64 << 20)
        updated = cli("update", "--memory", "128m", "--cpus", "0.5", "--pids-limit", "50",
                      "--restart", "on-failure:3", name)
        assert updated.returncode == 0, updated.stderr
        assert cgroup_file(pid, "memory", "memory.limit_in_bytes") == str(128 << 20)
        assert cgroup_file(pid, "cpu", "cpu.cfs_quota_us") == "50000"
        assert cgroup_file(pid, "pids", "pids.max") == "50"
        shown = json.loads(cli("inspect", "-f", "{{json .HostConfig}}", name).stdout)
        assert (shown["Memory"], shown["NanoCpus"], shown["PidsLimit"]) == \
            (128 << 20, 500_000_000, 50)
        assert shown["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
        # The next start has the new limits from the beginning.
        assert cli("restart", "-t", "0", name).returncode == 0
        pid = pid_of(cli, name)
        assert cgroup_file(pid, "memory", "memory.limit_in_bytes") == str(128 << 20)
        assert cgroup_file(pid, "pids", "pids.max") == "50"
        # Lifting a limit (the CLI's -1; it sends nothing for 0) writes the kernel's unlimited.
        assert cli("update", "--pids-limit", "-1", name).returncode == 0
        assert cgroup_file(pid, "pids", "pids.max") == "max"

        small = cli("update", "--memory", "1m", name)
        assert small.returncode == 1 and "Minimum memory limit allowed is 6MB" in small.stderr
        refused = cli("update", "--cpuset-cpus", "0", name)
        assert refused.returncode == 1 and "CpusetCpus is not supported" in refused.stderr
        missing = cli("update", "--memory", "64m", "nope")
        assert missing.returncode == 1 and "No such container: nope" in missing.stderr
    finally:
        cli("rm", "-f", name)


def _percent(text: str) -> float:
    return float(text.rstrip("%"))


def test_stats_no_stream_prints_sensible_numbers(cli: Cli) -> None:
    busy, idle = unique("busy"), unique("idle")
    assert cli("run", "-d", "--name", busy, "busybox", "sh", "-c",
               "while :; do :; done").returncode == 0
    assert cli("run", "-d", "--name", idle, "--memory", "64m", "busybox", "sleep",
               "600").returncode == 0
    try:
        shown = cli("stats", "--no-stream", "--format", "{{json .}}", busy, idle)
        assert shown.returncode == 0, shown.stderr
        rows = {row["Name"]: row for row in map(json.loads, shown.stdout.splitlines())}
        # A shell spinning has most of a CPU (two cores, shared with other tests); one that
        # sleeps, next to nothing.
        assert _percent(rows[busy]["CPUPerc"]) > 10, rows[busy]
        assert _percent(rows[idle]["CPUPerc"]) < 5, rows[idle]
        used, limit = rows[idle]["MemUsage"].split(" / ")
        assert limit == "64MiB" and re.fullmatch(r"[\d.]+(B|KiB|MiB)", used), rows[idle]
        assert 0 < _percent(rows[idle]["MemPerc"]) < 100
        assert rows[idle]["PIDs"] == "1"
        assert re.fullmatch(r"[\d.]+k?B / [\d.]+k?B", rows[idle]["NetIO"]), rows[idle]
        # Without a limit the host's memory is the limit, as Docker shows it.
        assert rows[busy]["MemUsage"].split(" / ")[1].endswith("GiB"), rows[busy]
        stopped = cli("stop", "-t", "0", busy)
        assert stopped.returncode == 0
        after = cli("stats", "--no-stream", "--format", "{{.CPUPerc}} {{.PIDs}}", busy)
        assert after.returncode == 0 and after.stdout.split() == ["0.00%", "0"], after
        missing = cli("stats", "--no-stream", "nope")
        assert missing.returncode == 1 and "No such container: nope" in missing.stderr
    finally:
        cli("rm", "-f", busy, idle)


def test_dockerpy_pause_rename_update_and_stats(client: docker.DockerClient) -> None:
    name, renamed = unique("py"), unique("py")
    container = client.containers.run("busybox", ["sh", "-c", "echo hi; exec sleep 600"],
                                      name=name, detach=True)
    try:
        container.pause()
        container.reload()
        assert container.status == "paused"
        with pytest.raises(docker.errors.APIError) as twice:
            container.pause()
        assert twice.value.status_code == 409
        container.unpause()
        container.reload()
        assert container.status == "running"

        container.rename(renamed)
        container.reload()
        assert container.name == renamed
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(name)

        container.update(mem_limit="96m", cpu_quota=25000, cpu_period=100000,
                         restart_policy={"Name": "unless-stopped"})
        host = client.api.inspect_container(renamed)["HostConfig"]
        assert (host["Memory"], host["NanoCpus"]) == (96 << 20, 250_000_000)
        assert host["RestartPolicy"]["Name"] == "unless-stopped"
        with pytest.raises(docker.errors.APIError) as refused:
            container.update(cpuset_cpus="0")
        assert refused.value.status_code == 400

        one = container.stats(stream=False)
        assert one["id"] == container.id and one["name"] == f"/{renamed}"
        assert one["memory_stats"]["limit"] == 96 << 20
        assert 0 < one["memory_stats"]["usage"] <= one["memory_stats"]["limit"]
        assert one["cpu_stats"]["system_cpu_usage"] > one["precpu_stats"]["system_cpu_usage"]
        assert one["cpu_stats"]["online_cpus"] >= 1 and one["pids_stats"]["current"] == 1
        assert set(one["networks"]) == {"eth0"}
        assert one["networks"]["eth0"]["rx_bytes"] >= 0
        assert "io_service_bytes_recursive" in one["blkio_stats"]

        stream = container.stats(stream=True, decode=True)
        try:
            first, second = next(stream), next(stream)
        finally:
            stream.close()
        assert second["read"] > first["read"] and second["preread"] == first["read"]
        assert second["precpu_stats"]["cpu_usage"]["total_usage"] == \
            first["cpu_stats"]["cpu_usage"]["total_usage"]

        container.stop(timeout=0)
        began = time.monotonic()
        empty = container.stats(stream=False)
        assert time.monotonic() - began < 5  # no second sample to wait for
        assert empty["read"].startswith("0001-01-01") and empty["pids_stats"]["current"] == 0
    finally:
        container.remove(force=True)
