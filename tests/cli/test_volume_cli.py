"""Named volumes on a standalone native worker through the CLI: create, ls, inspect, rm
refused while used (naming the users), prune, made on first use with the image's content
copied in once (docker's copy-up), kept across containers, tmpfs and bind options."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.native_worker import native_worker
from tests.helpers.worker_process import Worker

pytestmark = pytest.mark.root


@pytest.fixture
def native(tmp_path: Path) -> Iterator[Worker]:
    with native_worker(tmp_path / "worker", networks=False) as node:
        try:
            yield node
        finally:
            for ref in node.shoal("ps", "-aq", check=False).stdout.split():
                node.shoal("rm", "-f", ref, check=False)
            node.shoal("volume", "prune", "-a", "-f", check=False)


def test_first_use_copies_the_image_content_in_once_and_the_data_stays(native: Worker
                                                                        ) -> None:
    out = native.shoal("run", "--rm", "-v", "cache:/var/cache", "busybox", "sh", "-c",
                       "cat /var/cache/fresh; echo kept > /var/cache/mine").stdout
    assert out == "written by layer 2\n"
    assert native.shoal("volume", "ls", "-q").stdout == "cache\n"
    # Another container, another path: what the first wrote is there.
    assert native.shoal("run", "--rm", "--mount", "type=volume,src=cache,dst=/data",
                        "busybox", "sh", "-c", "ls /data | sort").stdout == "fresh\nmine\n"
    # No copy-up into a volume that has content (nor ever again once filled).
    native.shoal("run", "--rm", "-v", "cache:/var/cache", "busybox", "sh", "-c",
                 "rm /var/cache/fresh")
    assert native.shoal("run", "--rm", "-v", "cache:/var/cache", "busybox", "ls",
                        "/var/cache").stdout == "mine\n"
    # volume-nocopy: a new volume stays empty.
    assert native.shoal("run", "--rm", "--mount",
                        "type=volume,source=empty,target=/var/cache,volume-nocopy",
                        "busybox", "ls", "/var/cache").stdout == ""
    # read-only.
    failed = native.shoal("run", "--rm", "-v", "cache:/c:ro", "busybox", "touch", "/c/x",
                          check=False)
    assert failed.returncode != 0 and "Read-only file system" in failed.stderr


def test_create_inspect_rm_refused_while_used_and_prune(native: Worker) -> None:
    assert native.shoal("volume", "create", "-l", "tier=db", "data").stdout == "data\n"
    assert native.shoal("volume", "create", "data").stdout == "data\n"  # idempotent
    [info] = json.loads(native.shoal("volume", "inspect", "data").stdout)
    assert info["spec"]["labels"] == {"tier": "db"}
    assert info["mountpoint"].endswith("/volumes/data/_data")
    native.shoal("create", "--name", "user1", "-v", "data:/data", "busybox", "true")
    native.shoal("run", "-d", "--name", "user2", "-v", "data:/data", "busybox", "sleep", "60")
    refused = native.shoal("volume", "rm", "data", check=False)
    assert refused.returncode == 1
    assert "volume data is in use by 2 containers: user1, user2" in refused.stderr
    forced = native.shoal("volume", "rm", "-f", "data", check=False)
    assert forced.returncode == 1 and "in use" in forced.stderr
    [info] = json.loads(native.shoal("volume", "inspect", "data").stdout)
    assert info["users"] == ["user1", "user2"]
    assert json.loads(native.shoal("inspect", "--format", "{{json .Mounts}}", "user2").stdout
                      ) == [{"Type": "volume", "Destination": "/data", "RW": True,
                             "Name": "data", "Driver": "local", "Source": info["mountpoint"]}]
    native.shoal("volume", "create", "spare")
    assert native.shoal("volume", "prune", "-f").stdout == "Total reclaimed space: 0B\n"
    pruned = native.shoal("volume", "prune", "-a", "-f").stdout
    assert pruned.startswith("Deleted Volumes:\nspare\n")
    assert native.shoal("volume", "ls", "-q").stdout == "data\n"
    native.shoal("rm", "-f", "user1", "user2")
    assert native.shoal("volume", "rm", "data").stdout == "data\n"
    assert native.shoal("volume", "rm", "-f", "data").stdout == "data\n"  # gone: fine with -f
    missing = native.shoal("volume", "rm", "data", check=False)
    assert missing.returncode == 1 and "no such volume: data" in missing.stderr


def test_local_driver_options_tmpfs_and_bind(native: Worker, tmp_path: Path) -> None:
    native.shoal("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs",
                 "-o", "o=size=1m", "scratch")
    out = native.shoal("run", "--rm", "-v", "scratch:/s", "busybox", "sh", "-c",
                       "grep ' /s ' /proc/mounts | cut -d' ' -f3").stdout
    assert out == "tmpfs\n"
    host_dir = tmp_path / "hostdir"
    host_dir.mkdir()
    (host_dir / "here").write_text("from the host\n")
    native.shoal("volume", "create", "-o", "type=none", "-o", f"device={host_dir}",
                 "-o", "o=bind", "bound")
    assert native.shoal("run", "--rm", "-v", "bound:/b", "busybox", "cat", "/b/here"
                        ).stdout == "from the host\n"
    bad = native.shoal("volume", "create", "-o", "size=1m", "x", check=False)
    assert bad.returncode == 2 and "the local driver takes type, device and o" in bad.stderr
    native.shoal("volume", "rm", "scratch", "bound")
    assert (host_dir / "here").exists()  # unmounted, never emptied


def test_tmpfs_flag(native: Worker) -> None:
    out = native.shoal("run", "--rm", "--tmpfs", "/t:size=1m,mode=700", "busybox", "sh", "-c",
                       "grep ' /t ' /proc/mounts; stat -c %a /t").stdout
    assert "tmpfs /t tmpfs" in out and "size=1024k" in out and out.endswith("700\n")
