"""The same bundles under runc and under shoal's runtime: what the container sees must match."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.runtime_harness import Bundle, cli, run_both

pytestmark = pytest.mark.root

Edit = Callable[[dict[str, Any]], None] | None


def _user(cfg: dict[str, Any]) -> None:
    cfg["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5, 10]}
    cfg["process"]["capabilities"]["inheritable"] = ["CAP_KILL"]
    cfg["process"]["capabilities"]["ambient"] = ["CAP_KILL"]


def _rlimits(cfg: dict[str, Any]) -> None:
    cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 100},
                                 {"type": "RLIMIT_NPROC", "hard": 300, "soft": 200}]


def _userns(cfg: dict[str, Any]) -> None:
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def _memory(cfg: dict[str, Any]) -> None:
    cfg["linux"]["resources"] = {"memory": {"limit": 32 * 1024 * 1024,
                                            "swap": 32 * 1024 * 1024}}


def _pids(cfg: dict[str, Any]) -> None:
    cfg["linux"]["resources"] = {"pids": {"limit": 10}}


def _umask_cwd(cfg: dict[str, Any]) -> None:
    cfg["process"]["user"]["umask"] = 0o077
    cfg["process"]["cwd"] = "/tmp"


def _mknod(cfg: dict[str, Any]) -> None:
    for kind in ("bounding", "effective", "permitted"):
        cfg["process"]["capabilities"][kind].append("CAP_MKNOD")


# /dev/fuse opens without a capability: only the device cgroup can refuse it.
DEVICE_PROBE = ("mknod /dev/fuse2 c 10 229 && mknod /dev/null2 c 1 3 && echo made; "
                "(: > /dev/fuse2) 2>/dev/null && echo fuse-opened || echo fuse-refused; "
                "(: > /dev/null2) && echo null-opened")


def _sysctl(cfg: dict[str, Any]) -> None:
    cfg["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "123456789"}


STATUS = "grep -E '^(Cap|NoNewPrivs|Groups)' /proc/self/status"

CASES: list[tuple[str, list[str], Edit]] = [
    ("identity", ["sh", "-c", f"hostname; id; {STATUS}"], None),
    ("mounts", ["sh", "-c", "cat /proc/self/mounts"], None),
    ("devices", ["sh", "-c", "ls -l /dev | sed 's/ [A-Z][a-z][a-z] .*:.. / /'"], None),
    ("exit code", ["sh", "-c", "exit 7"], None),
    ("killed by signal", ["sh", "-c", "kill -9 $$"], None),
    ("user and ambient caps", ["sh", "-c", f"id; {STATUS}"], _user),
    ("rlimits", ["sh", "-c", "ulimit -n; ulimit -Hn; ulimit -u"], _rlimits),
    ("masked and readonly paths", ["sh", "-c",
     "cat /proc/kcore | wc -c; ls /sys/firmware | wc -l; echo 1 > /proc/sys/kernel/ostype;"
     " echo rc=$?; touch /newfile; echo rc=$?"], None),
    ("umask and cwd", ["sh", "-c", "pwd; umask"], _umask_cwd),
    ("user namespace", ["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id"], _userns),
    ("memory hog is OOM-killed", ["sh", "-c", "x=a; while true; do x=$x$x; done"], _memory),
    ("fork bomb hits pids.max", ["sh", "-c",
     "for i in $(seq 1 30); do sleep 5 & done 2>/dev/null; echo started;"
     " ls /proc | grep -c '^[0-9]'; kill $(jobs -p) 2>/dev/null; true"], _pids),
    ("device cgroup without rules", ["sh", "-c", DEVICE_PROBE], _mknod),
    ("sysctl", ["sh", "-c", "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax"],
     _sysctl),
]


@pytest.mark.parametrize(("args", "edit"), [(a, e) for _, a, e in CASES],
                         ids=[name for name, _, _ in CASES])
def test_same_as_runc(make_bundle: Callable[..., Bundle], state_root: Path, runc_root: Path,
                      args: list[str], edit: Edit) -> None:
    bundle = make_bundle(args, edit)
    theirs, ours = run_both(bundle, state_root, runc_root)
    assert ours.returncode == theirs.returncode, (theirs.stderr, ours.stderr)
    assert ours.stdout == theirs.stdout, ours.stderr
    # run deletes the container: nothing may be left under the state root.
    assert not state_root.exists() or not any(state_root.iterdir())


def test_joined_network_namespace(make_bundle: Callable[..., Bundle], state_root: Path,
                                  runc_root: Path) -> None:
    name = "shoalrt" + uuid.uuid4().hex[:6]
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        inode = os.stat(f"/var/run/netns/{name}").st_ino
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"],
                       check=True)

        def join(cfg: dict[str, Any]) -> None:
            cfg["linux"]["namespaces"] = [
                ns if ns["type"] != "network" else {"type": "network",
                                                   "path": f"/var/run/netns/{name}"}
                for ns in cfg["linux"]["namespaces"]]

        bundle = make_bundle(["sh", "-c", "readlink /proc/self/ns/net; ip link show lo"], join)
        theirs, ours = run_both(bundle, state_root, runc_root)
        assert ours.returncode == theirs.returncode == 0, (theirs.stderr, ours.stderr)
        assert f"net:[{inode}]" in ours.stdout
        assert "LOWER_UP" in ours.stdout  # the lo we brought up there, not a fresh one
        assert ours.stdout == theirs.stdout
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def test_user_namespace_reaches_what_only_the_hosts_root_can(
        make_bundle: Callable[..., Bundle], state_root: Path, runc_root: Path,
        tmp_path: Path) -> None:
    """The container's root is host uid 100000: a bind source in a 0700 directory of the
    host's root, and a state directory it cannot enter, are opened before the mapping (the
    gate fifo) or by the host's root inside the new mount namespace (the sources), as runc
    does; run and exec both see the files."""
    # The bundle's path is walked by the mapped root (runc's userns.bats does the same).
    for d in (tmp_path, *tmp_path.parents):
        d.chmod(d.stat().st_mode | 0o111)
    private = tmp_path / "private"
    for name in ("one", "two"):
        (private / name).mkdir(parents=True)
        (private / name / "foo.txt").write_text(name)
    private.chmod(0o700)
    state_root.mkdir(mode=0o700)

    def edit(cfg: dict[str, Any]) -> None:
        _userns(cfg)
        cfg["mounts"] += [{"destination": f"/tmp/{name}", "type": "bind",
                           "source": str(private / name), "options": ["bind"]}
                          for name in ("one", "two")]

    bundle = make_bundle(["cat", "/tmp/one/foo.txt", "/tmp/two/foo.txt"], edit)
    theirs, ours = run_both(bundle, state_root, runc_root)
    assert theirs.returncode == 0, theirs.stderr
    assert (ours.returncode, ours.stdout) == (0, "onetwo"), ours.stderr

    bundle.config["process"]["args"] = ["sleep", "1000"]
    bundle.write()
    cli(state_root, "run", "-d", "-b", str(bundle.path), "userns")
    seen = cli(state_root, "exec", "userns", "cat", "/tmp/one/foo.txt", "/tmp/two/foo.txt")
    assert seen.stdout == "onetwo"
    cli(state_root, "delete", "--force", "userns")
