"""Networks through the real CLI against a standalone worker on the native driver: network
verbs, ``-p`` and ``shoal port``, a published port reached from a namespace of the test's own,
and nothing left behind after kill -9 of the worker, its restart and rm."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.native_worker import native_worker
from tests.helpers.netns import client_namespace
from tests.helpers.worker_process import Worker
from worker.engine.native_driver import cgroup_scope
from worker.network import links, nat

pytestmark = pytest.mark.root

SERVE = "echo served-by-$(hostname) > /tmp/index.html; exec httpd -f -p 8000 -h /tmp"


@pytest.fixture
def native(tmp_path: Path) -> Iterator[Worker]:
    with native_worker(tmp_path / "worker") as node:
        yield node


def leftovers(state_dir: Path) -> tuple[list[str], list[object]]:
    scope = cgroup_scope(state_dir)
    return (links.links_named(f"v{scope[:6]}"),
            [r for r in nat.rules(nat.table_name(scope)) if r.get("chain") == "published"])


def test_networks_ports_and_restart(native: Worker) -> None:
    assert native.shoal("network", "ls").stdout.split("\n")[1].split()[1] == "bridge"
    native.shoal("network", "create", "--internal", "-l", "tier=db", "back")
    [info] = json.loads(native.shoal("network", "inspect", "back").stdout)
    assert info["spec"]["internal"] is True and info["spec"]["labels"] == {"tier": "db"}
    native.shoal("run", "-d", "--name", "web", "--network", "bridge", "-p", "8000",
                 "--hostname", "web", "busybox", "sh", "-c", SERVE)
    [line] = native.shoal("port", "web").stdout.splitlines()
    assert line.startswith("8000/tcp -> 0.0.0.0:")
    host_port = int(line.rsplit(":", 1)[1])
    assert native.shoal("port", "web", "8000/tcp").stdout.strip() == f"0.0.0.0:{host_port}"
    assert f"0.0.0.0:{host_port}->8000/tcp" in native.shoal("ps").stdout
    with client_namespace() as client:
        done = client.run("sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do busybox wget -qO- "
                          f"http://{client.host_ip}:{host_port}/ && exit 0; sleep 0.2; done; "
                          "exit 1")
    assert (done.returncode, done.stdout.strip()) == (0, "served-by-web"), done.stderr

    native.shoal("run", "-d", "--name", "db", "--network", "back", "busybox", "sleep", "100")
    refused = native.shoal("network", "rm", "back", check=False)
    assert refused.returncode == 1 and "in use by db" in refused.stderr
    for network in ("none", "host"):
        refused = native.shoal("run", "--network", network, "-p", "80", "busybox", "true",
                               check=False)
        assert refused.returncode != 0
        assert f"--network {network}" in refused.stderr
        assert "no port can be published" in refused.stderr

    native.kill(signal.SIGKILL)  # the containers run on; a new worker takes them over
    native.start()
    veths, rules = leftovers(native.state_dir)
    assert (len(veths), len(rules)) == (2, 1)
    assert "Up " in native.shoal("ps").stdout
    native.shoal("rm", "-f", "web", "db")
    native.shoal("network", "rm", "back")
    assert leftovers(native.state_dir) == ([], [])


def test_names_connect_prune_and_publish_all(native: Worker) -> None:
    native.shoal("network", "create", "front")
    native.shoal("network", "create", "back")
    native.shoal("network", "create", "spare")
    native.shoal("run", "-d", "--name", "web", "--network", "front", "--network-alias", "www",
                 "--expose", "8000", "-P", "--hostname", "web", "busybox", "sh", "-c", SERVE)
    native.shoal("run", "-d", "--name", "app", "--network", "back", "busybox", "sleep", "100")
    [line] = native.shoal("port", "web").stdout.splitlines()
    assert line.startswith("8000/tcp -> 0.0.0.0:")

    def resolves(container: str, name: str) -> bool:
        return native.shoal("exec", container, "nslookup", name, check=False).returncode == 0

    assert not resolves("app", "www")
    native.shoal("network", "connect", "--alias", "cache", "front", "app")
    assert resolves("app", "www") and resolves("web", "cache")
    refused = native.shoal("network", "connect", "front", "app", check=False)
    assert refused.returncode == 1 and "already on network front" in refused.stderr
    native.kill(signal.SIGKILL)  # a new worker serves the names of the running containers
    native.start()  # ready once its resolvers are open again
    assert resolves("app", "www")
    native.shoal("network", "disconnect", "front", "app")
    assert not resolves("app", "www") and not resolves("web", "cache")
    assert native.shoal("network", "prune").stdout.split() == ["spare"]
    native.shoal("rm", "-f", "web", "app")
    assert sorted(native.shoal("network", "prune").stdout.split()) == ["back", "front"]
    assert leftovers(native.state_dir) == ([], [])
