"""A worker partitioned from its scheduler (its link down, on ``deploy/netns-cluster.sh``
hosts), real processes throughout: an ``--exclusive`` container is killed by its cut-off worker
before its replacement starts on the other worker, so it never runs on two hosts at once; a
plain one is replaced (at least once) and its stale copy ends soon after the link is back.

The containers run under the ``process`` driver, so each copy is a process of the host it runs
on: the test follows them in ``/proc`` (which host: the process's network namespace), polling
between the events it waits for.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cli.readiness import parse_notification

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "deploy" / "netns-cluster.sh"
PREFIX = f"fx{os.getpid() % 100000}"
SUBNET = "10.241.91"
HEARTBEAT = 0.2
NODE_TIMEOUT = 2.0
# The containers are told apart by their command: a sleep of a length nothing else uses.
EXCLUSIVE_MARK = str(7_000_000 + os.getpid() % 100000 * 10 + 1)
PLAIN_MARK = str(7_000_000 + os.getpid() % 100000 * 10 + 2)


def topology(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHOAL_NETNS_PREFIX": PREFIX, "SHOAL_NETNS_SUBNET": SUBNET}
    return subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True,
                          timeout=60, check=check)


class Hosts:
    """The topology's hosts, the daemons started on them, and the shoal command on one."""

    def __init__(self, addresses: dict[str, str], state: Path) -> None:
        self.addresses = addresses
        self.state = state
        self.procs: list[subprocess.Popen[bytes]] = []
        self.netns = {host: os.stat(f"/run/netns/{PREFIX}-{host}").st_ino for host in addresses}

    def launch(self, host: str, *args: str) -> dict[str, str]:
        read_end, write_end = os.pipe()
        env = {**os.environ, "SHOAL_NETNS_PREFIX": PREFIX, "PYTHONPATH": str(ROOT),
               "SHOAL_LOG": "info"}
        with (self.state / f"{host}.log").open("ab") as log:
            proc = subprocess.Popen(
                [str(SCRIPT), "exec", host, sys.executable, "-m", "cli", *args,
                 "--ready-fd", str(write_end)],
                cwd=ROOT, env=env, pass_fds=(write_end,), stdout=subprocess.DEVNULL,
                stderr=log)
        self.procs.append(proc)
        os.close(write_end)
        try:
            said = b""
            while (facts := parse_notification(said)) is None:
                assert select.select([read_end], [], [], 60)[0], f"{host} not ready in 60 s"
                chunk = os.read(read_end, 4096)
                assert chunk, f"{host} exited before it was ready; see {self.state}"
                said += chunk
            return facts
        finally:
            os.close(read_end)

    def shoal(self, host: str, *args: str) -> str:
        env = {**os.environ, "SHOAL_NETNS_PREFIX": PREFIX, "PYTHONPATH": str(ROOT)}
        done = subprocess.run([str(SCRIPT), "exec", host, sys.executable, "-m", "cli", *args],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def copies(self, mark: str) -> dict[int, str]:
        """The live copies of the container whose command ends in ``mark``: pid → host."""
        hosts = {inode: host for host, inode in self.netns.items()}
        found = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
                if argv[:2] != [b"sleep", mark.encode()]:
                    continue
                state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
                inode = os.stat(f"/proc/{entry}/ns/net").st_ino
            except (FileNotFoundError, ProcessLookupError):
                continue  # ended while looked at
            if state != "Z":
                found[int(entry)] = hosts.get(inode, "?")
        return found

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for mark in (EXCLUSIVE_MARK, PLAIN_MARK):
            for pid in self.copies(mark):
                os.kill(pid, 9)


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Hosts]:
    topology("down", check=False)
    up = topology("up", "mgr", "wa", "wb")
    cluster = Hosts(dict(line.split() for line in up.stdout.splitlines()), tmp_path)
    try:
        yield cluster
    finally:
        try:
            cluster.close()
        finally:
            topology("down")


def watch(hosts: Hosts, done: Callable[[dict[str, set[str]]], bool], timeout: float,
          seen: list[dict[str, set[str]]]) -> float:
    """Poll both containers' copies until ``done`` (their hosts by mark) holds; every poll is
    kept in ``seen``. The exclusive one must never be on two hosts. Returns the time taken."""
    began = time.monotonic()
    while True:
        now = {mark: set(hosts.copies(mark).values()) for mark in (EXCLUSIVE_MARK, PLAIN_MARK)}
        seen.append(now)
        assert len(now[EXCLUSIVE_MARK]) <= 1, f"the exclusive container ran twice: {now}"
        if done(now):
            return time.monotonic() - began
        assert time.monotonic() - began < timeout, f"not done in {timeout} s: last saw {now}"


def test_partition_exclusive_never_doubles_and_stale_copies_end_after_healing(
        hosts: Hosts, tmp_path: Path) -> None:
    mgr, wa, wb = (hosts.addresses[h] for h in ("mgr", "wa", "wb"))
    ready = hosts.launch("mgr", "scheduler", "--listen", f"tcp://{mgr}:0", "--state-dir",
                         str(tmp_path / "mgr"), "--name", "mgr", "--heartbeat-interval",
                         str(HEARTBEAT), "--node-timeout", str(NODE_TIMEOUT))
    scheduler = ready["LISTEN"]
    # The token, asked on the scheduler's host as root would (its keys for its own address).
    token = hosts.shoal("mgr", "-H", scheduler, "join-token", "worker", "-q").strip()
    hosts.launch("wa", "worker", "--join", scheduler, "--listen", f"tcp://{wa}:0",
                 "--state-dir", str(tmp_path / "wa"), "--name", "wa", "--driver", "process",
                 "--token", token)
    # Both start on wa, the only worker yet; wb joins to take them over.
    for name, mark, extra in (("ex", EXCLUSIVE_MARK, ["--exclusive"]), ("plain", PLAIN_MARK, [])):
        hosts.shoal("mgr", "-H", scheduler, "run", "-d", "--restart", "always", "--name",
                    name, *extra, "busybox", "sleep", mark)
    seen: list[dict[str, set[str]]] = []
    watch(hosts, lambda now: now[EXCLUSIVE_MARK] == {"wa"} and now[PLAIN_MARK] == {"wa"},
          30, seen)
    hosts.launch("wb", "worker", "--join", scheduler, "--listen", f"tcp://{wb}:0",
                 "--state-dir", str(tmp_path / "wb"), "--name", "wb", "--driver", "process",
                 "--token", token)
    assert "wb" in hosts.shoal("mgr", "-H", scheduler, "nodes")

    topology("partition", "wa")
    cut = time.monotonic()
    # The exclusive one is killed on wa (fenced) before it starts on wb; the plain one runs on
    # both for a while (at least once), then only on wb once wa is back.
    watch(hosts, lambda now: now[EXCLUSIVE_MARK] == {"wb"} and now[PLAIN_MARK] == {"wa", "wb"},
          30, seen)
    replaced_after = time.monotonic() - cut
    assert replaced_after >= NODE_TIMEOUT - HEARTBEAT, replaced_after
    assert any(not now[EXCLUSIVE_MARK] for now in seen), \
        "no poll saw the exclusive container gone between its two copies"

    topology("heal", "wa")
    stale_for = watch(hosts, lambda now: now[PLAIN_MARK] == {"wb"}, 30, seen)
    assert all(len(now[EXCLUSIVE_MARK]) <= 1 for now in seen)
    inspect = hosts.shoal("mgr", "-H", scheduler, "inspect", "--format",
                          "{{.HostConfig.Exclusive}}", "ex")
    assert inspect.strip() == "true"
    print(f"exclusive replaced {replaced_after:.2f} s after the cut; plain stale copy ended "
          f"{stale_for:.2f} s after healing")
