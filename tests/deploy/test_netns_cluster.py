"""``deploy/netns-cluster.sh``: hosts made of network namespaces, each with its own address and
hostname and the machine's cgroups; a real worker on one host answers the CLI on another; a
partition cuts a host off and healing plugs it back; ``down`` leaves nothing."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.readiness import parse_notification

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "netns-cluster.sh"
PREFIX = f"st{os.getpid() % 100000}"  # namespaces of this test run only
SUBNET = "10.241.77"


def topology(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHOAL_NETNS_PREFIX": PREFIX, "SHOAL_NETNS_SUBNET": SUBNET}
    return subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True,
                          timeout=60, check=check)


@pytest.fixture(scope="module")
def hosts() -> Iterator[dict[str, str]]:
    up = topology("up", "alpha", "beta", "gamma")
    try:
        yield dict(line.split() for line in up.stdout.splitlines())
    finally:
        topology("down")


def reachable(source: str, address: str) -> bool:
    ping = topology("exec", source, "/bin/busybox", "ping", "-c1", "-W1", address, check=False)
    return ping.returncode == 0


def test_hosts_have_their_own_address_and_name_and_the_machines_cgroups(
        hosts: dict[str, str]) -> None:
    assert hosts == {"alpha": f"{SUBNET}.11", "beta": f"{SUBNET}.12", "gamma": f"{SUBNET}.13"}
    assert topology("exec", "beta", "hostname").stdout.strip() == "beta"
    assert topology("ip", "gamma").stdout.strip() == f"{SUBNET}.13"
    addresses = topology("exec", "alpha", "/bin/busybox", "ip", "-4", "-o", "addr").stdout
    assert f"{SUBNET}.11/24" in addresses and "127.0.0.1" in addresses
    cgroups = topology("exec", "alpha", "ls", "/sys/fs/cgroup").stdout.split()
    assert "memory" in cgroups or "unified" in cgroups  # /sys is the machine's, not remounted
    refused = topology("up", "delta", check=False)
    assert refused.returncode == 1 and "is up already" in refused.stderr


def test_a_worker_on_one_host_answers_the_cli_on_another(hosts: dict[str, str],
                                                        tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    env = {**os.environ, "SHOAL_NETNS_PREFIX": PREFIX, "PYTHONPATH": str(ROOT)}
    env.pop("SHOAL_HOST", None)
    worker = subprocess.Popen(
        [str(SCRIPT), "exec", "alpha", sys.executable, "-m", "cli", "worker", "--listen",
         f"tcp://{hosts['alpha']}:0", "--state-dir", str(tmp_path / "alpha"), "--driver",
         "process", "--ready-fd", str(write_end)],
        cwd=ROOT, env=env, pass_fds=(write_end,), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    os.close(write_end)
    try:
        said = b""
        facts = None
        while facts is None:
            ready, _, _ = select.select([read_end], [], [], 30)
            assert ready, "the worker was not ready within 30 s"
            chunk = os.read(read_end, 4096)
            assert chunk, "the worker exited before it was ready"
            said += chunk
            facts = parse_notification(said)
        address = facts["LISTEN"]
        assert address.startswith(f"tcp://{hosts['alpha']}:")
        listed = topology("exec", "beta", sys.executable, "-m", "cli", "-H", address, "ps",
                          "--format", "json", check=False)
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.strip() == "[]"
    finally:
        os.close(read_end)
        worker.terminate()
        worker.wait(timeout=30)


def test_a_partition_cuts_a_host_off_and_healing_plugs_it_back(hosts: dict[str, str]) -> None:
    assert reachable("alpha", hosts["beta"])
    topology("partition", "beta")
    try:
        assert not reachable("alpha", hosts["beta"])
        assert reachable("alpha", hosts["gamma"])
    finally:
        topology("heal", "beta")
    assert reachable("alpha", hosts["beta"])


def test_down_leaves_no_namespace() -> None:
    prefix = f"{PREFIX}d"
    env = {**os.environ, "SHOAL_NETNS_PREFIX": prefix, "SHOAL_NETNS_SUBNET": "10.241.78"}
    subprocess.run([str(SCRIPT), "up", "one", "two"], env=env, check=True, timeout=60,
                   capture_output=True)
    subprocess.run([str(SCRIPT), "down"], env=env, check=True, timeout=60)
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                            check=True).stdout
    assert not [line for line in listed.splitlines() if line.startswith(f"{prefix}-")]
    assert not Path(f"/run/shoal-netns/{prefix}").exists()
