"""``shoal pause``, ``unpause``, ``rename``, ``update`` and ``stats`` against a worker: served
on the native driver, refused with the reason on the process driver (no freezer, no cgroups),
where rename and a restart policy change still work."""

from __future__ import annotations

import json

from tests.helpers.worker_process import Worker


def test_rename_and_restart_policy_on_any_driver(worker: Worker) -> None:
    worker.shoal("run", "-d", "--name", "first", "busybox", "sleep", "600")
    worker.shoal("run", "-d", "--name", "other", "busybox", "sleep", "600")
    worker.shoal("rename", "first", "second")
    assert worker.shoal("ps", "--format", "{{.Names}}").stdout.split() == ["other", "second"]
    taken = worker.shoal("rename", "second", "other", check=False)
    assert taken.returncode == 1 and "already in use" in taken.stderr
    assert worker.shoal("update", "--restart", "always", "second").stdout.split() == ["second"]
    info = json.loads(worker.shoal("inspect", "second").stdout)[0]
    assert info["spec"]["restart"] == {"name": "always"}
    nothing = worker.shoal("update", "second", check=False)
    assert nothing.returncode == 2 and "give at least one of" in nothing.stderr


def test_pause_update_stats(worker: Worker) -> None:
    worker.shoal("run", "-d", "--name", "steady", "busybox", "sleep", "600")
    if worker.driver == "process":
        refused = worker.shoal("pause", "steady", check=False)
        assert refused.returncode == 1 and "cannot pause a container" in refused.stderr
        limits = worker.shoal("update", "--memory", "64m", "steady", check=False)
        assert limits.returncode == 1 and "cannot change a container's limits" in limits.stderr
        stats = worker.shoal("stats", "--no-stream", "steady", check=False)
        assert stats.returncode == 1 and "keeps no resource statistics" in stats.stderr
        return
    assert worker.shoal("pause", "steady").stdout.split() == ["steady"]
    assert "(Paused)" in worker.shoal("ps").stdout
    again = worker.shoal("pause", "steady", check=False)
    assert again.returncode == 1 and "already paused" in again.stderr
    worker.shoal("unpause", "steady")
    worker.shoal("update", "--memory", "64m", "--pids-limit", "10", "steady")
    shown = worker.shoal("stats", "--no-stream", "steady")
    header, row = shown.stdout.splitlines()
    assert header.split()[:3] == ["CONTAINER", "ID", "NAME"]
    cells = row.split()
    assert cells[1] == "steady" and cells[2].endswith("%") and "64MiB" in cells, row
    assert cells[-1] == "1"  # PIDS
