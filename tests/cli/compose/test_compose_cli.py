"""``shoal compose`` end to end against a standalone worker on the native driver: a 3-service
app up in depends_on order on its own network, ps, logs, a second up that changes nothing, an
edited file that recreates only the edited service, a published port answering, and down -v
leaving nothing (containers, network, veths, published-port rules)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvloop

from tests.helpers.netns import client_namespace
from tests.helpers.requirements import missing
from tests.helpers.worker_process import Worker
from worker.engine.native_driver import cgroup_scope
from worker.images import ImageStore
from worker.images.testimage import import_test_image
from worker.network import links, nat
from worker.teardown import tear_down_worker

# Some twenty CLI processes and a dozen containers: over a minute on a loaded machine.
pytestmark = [pytest.mark.root, pytest.mark.timeout(240)]

APP = """\
services:
  web:
    image: busybox:latest
    command: sh -c 'echo web-${GREETING:-hello} > /tmp/index.html; exec httpd -f -p 8000 -h /tmp'
    ports: ["8000"]
    depends_on: [api]
  api:
    image: busybox
    command: ["sh", "-c", "echo api up as $$ROLE; exec sleep 1000"]
    environment:
      ROLE: backend
    depends_on:
      cache: {condition: service_started}
  cache:
    image: busybox
    command: sleep 1000
    stop_grace_period: 1s
"""


@pytest.fixture
def native(tmp_path: Path) -> Iterator[Worker]:
    if shutil.which("nft") is None:
        missing("nftables (nft)")
    import_test_image(ImageStore(tmp_path / "worker" / "images"))
    node = Worker(tmp_path / "worker", "native")
    node.start()
    try:
        yield node
    finally:
        for ref in node.shoal("ps", "-aq", check=False).stdout.split():
            node.shoal("rm", "-f", ref, check=False)
        node.kill(signal.SIGTERM)
        uvloop.run(tear_down_worker(tmp_path / "worker"))


def compose(node: Worker, app: Path, *args: str, check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return node.shoal("compose", "-f", str(app / "compose.yaml"), *args, check=check,
                      env={"XDG_CACHE_HOME": str(app / "cache"), **(env or {})})


def said(output: str) -> list[tuple[str, str]]:
    """``Container NAME  Action`` lines as (name, action)."""
    return re.findall(r"^Container (\S+)  (\w+)$", output, re.MULTILINE)


def ids(node: Worker) -> dict[str, str]:
    rows = node.shoal("ps", "-a", "--format", "{{.Names}} {{.ID}}").stdout.split("\n")
    return dict(row.split() for row in rows if row)


def test_an_app_up_ps_logs_converges_and_down(native: Worker, tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "compose.yaml").write_text(APP)
    project = f"ct{os.urandom(3).hex()}"
    scope = cgroup_scope(tmp_path / "worker")

    first = compose(native, app, "-p", project, "up", "-d")
    assert f"Network {project}_default  Created" in first.stdout
    assert [name for name, action in said(first.stdout) if action == "Started"] == \
        [f"{project}-cache-1", f"{project}-api-1", f"{project}-web-1"]

    rows = compose(native, app, "-p", project, "ps").stdout.splitlines()
    assert rows[0].split()[:4] == ["NAME", "IMAGE", "SERVICE", "STATUS"]
    assert sorted(r.split()[2] for r in rows[1:]) == ["api", "cache", "web"]
    assert all(" Up " in f" {r} " for r in rows[1:]), rows
    assert "->8000/tcp" in next(r for r in rows if "-web-1" in r)

    logs = compose(native, app, "-p", project, "logs", "api").stdout
    assert f"{project}-api-1 | api up as backend" in logs

    # The published port answers from another namespace.
    port = native.shoal("port", f"{project}-web-1", "8000").stdout.strip().rsplit(":", 1)[1]
    with client_namespace() as client:
        got = client.run("sh", "-c", "for i in $(seq 30); do busybox wget -qO- "
                         f"http://{client.host_ip}:{port}/ && exit 0; sleep 0.2; done; exit 1")
    assert (got.returncode, got.stdout.strip()) == (0, "web-hello"), got.stderr

    before = ids(native)
    again = compose(native, app, "-p", project, "up", "-d")
    assert {action for _, action in said(again.stdout)} == {"Running"}
    assert "Created" not in again.stdout and ids(native) == before

    # An edited service is recreated alone; so is one whose interpolated value changed.
    (app / "compose.yaml").write_text(APP.replace("ROLE: backend", "ROLE: edited"))
    edited = compose(native, app, "-p", project, "up", "-d")
    assert dict(said(edited.stdout))[f"{project}-api-1"] == "Started"
    assert (f"{project}-api-1", "Recreated") in said(edited.stdout)
    assert {n for n, a in said(edited.stdout) if a == "Running"} == \
        {f"{project}-cache-1", f"{project}-web-1"}
    after = ids(native)
    assert after[f"{project}-api-1"] != before[f"{project}-api-1"]
    assert {k: v for k, v in after.items() if "-api-" not in k} == \
        {k: v for k, v in before.items() if "-api-" not in k}
    changed = compose(native, app, "-p", project, "up", "-d", env={"GREETING": "again"})
    assert {n for n, a in said(changed.stdout) if a == "Recreated"} == {f"{project}-web-1"}

    listed = native.shoal("compose", "ls").stdout
    assert re.search(rf"^{project}\s+running\(3\)", listed, re.MULTILINE), listed

    down = compose(native, app, "-p", project, "down", "-v")
    assert f"Network {project}_default  Removed" in down.stdout
    assert native.shoal("ps", "-aq").stdout.strip() == ""
    assert f"{project}_default" not in native.shoal("network", "ls").stdout
    assert links.links_named(f"v{scope[:6]}") == []
    assert [r for r in nat.rules(nat.table_name(scope)) if r.get("chain") == "published"] == []
    assert compose(native, app, "-p", project, "ps", "-a").stdout.splitlines()[1:] == []


def test_refusals_make_nothing_and_an_attached_up_shows_the_output(
        native: Worker, tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "compose.yaml").write_text(
        "services:\n  web:\n    image: busybox\n    healthcheck: {test: [CMD, 'true']}\n")
    refused = compose(native, app, "up", "-d", check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == ("Error: compose.yaml:4: services.web.healthcheck: not "
                                      "supported yet: the engine has no healthchecks"
                                      ).replace("compose.yaml", str(app / "compose.yaml"))
    assert native.shoal("ps", "-aq").stdout.strip() == ""
    assert "app_default" not in native.shoal("network", "ls").stdout

    # Without -d, up follows the output until the containers end.
    (app / "compose.yaml").write_text(
        "services:\n  once:\n    image: busybox\n    network_mode: none\n"
        "    command: [sh, -c, 'echo first; echo second']\n")
    attached = compose(native, app, "-p", "ctonce", "up")
    assert "ctonce-once-1 | first\nctonce-once-1 | second\n" in attached.stdout
    # down -p needs no file: the labels say what is the project's.
    down = native.shoal("compose", "-p", "ctonce", "down",
                        env={"XDG_CACHE_HOME": str(app / "cache")})
    assert said(down.stdout) == [("ctonce-once-1", "Removed")]
    assert native.shoal("ps", "-aq").stdout.strip() == ""
