"""A sidecar through ``network_mode: service:X`` and ``shoal run --network container:X``
against a standalone worker on the native driver: the sidecar reaches what X serves on
127.0.0.1 and has X's hostname; an edited X recreates the sidecar with it (compose's rule);
and the CLI refuses what Docker refuses beside container:X, each in one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.compose_worker import compose, said
from tests.helpers.worker_process import Worker

pytestmark = [pytest.mark.root, pytest.mark.timeout(240)]

APP = """\
services:
  web:
    image: busybox
    hostname: webhost
    command: >-
      sh -c 'echo web-${GREETING:-hello} > /tmp/index.html;
      exec httpd -f -p 127.0.0.1:8000 -h /tmp'
  side:
    image: busybox
    network_mode: service:web
    command: >-
      sh -c 'until wget -qO- http://127.0.0.1:8000/; do sleep 0.1; done;
      exec sleep 1000'
"""


def test_a_sidecar_shares_the_services_network(native: Worker, tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "compose.yaml").write_text(APP)
    project = f"sc{os.urandom(3).hex()}"
    up = compose(native, app, "-p", project, "up", "-d")
    assert [n for n, a in said(up.stdout) if a == "Started"] == \
        [f"{project}-web-1", f"{project}-side-1"]
    inspected = native.shoal("inspect", "-f", "{{.HostConfig.NetworkMode}}",
                             f"{project}-side-1").stdout.strip()
    assert inspected == f"container:{project}-web-1"
    served = compose(native, app, "-p", project, "exec", "-T", "side", "sh", "-c",
                     "wget -qO- http://127.0.0.1:8000/; hostname")
    assert served.stdout == "web-hello\nwebhost\n", served.stderr

    again = compose(native, app, "-p", project, "up", "-d")
    assert {a for _, a in said(again.stdout)} == {"Running"}
    # X made anew: the sidecar is recreated after it, joining its new namespace.
    changed = compose(native, app, "-p", project, "up", "-d", env={"GREETING": "again"})
    assert {n for n, a in said(changed.stdout) if a == "Recreated"} == \
        {f"{project}-web-1", f"{project}-side-1"}
    served = compose(native, app, "-p", project, "exec", "-T", "side", "wget", "-qO-",
                     "http://127.0.0.1:8000/")
    assert served.stdout == "web-again\n", served.stderr
    compose(native, app, "-p", project, "down")
    assert native.shoal("ps", "-aq").stdout.strip() == ""


def test_run_joins_a_container_and_refuses_what_docker_refuses(native: Worker) -> None:
    native.shoal("run", "-d", "--name", "web", "busybox", "httpd", "-f", "-p",
                 "127.0.0.1:8000", "-h", "/etc")
    joined = native.shoal("run", "--rm", "--network", "container:web", "busybox", "sh", "-c",
                          "until wget -qO- http://127.0.0.1:8000/hostname; do sleep 0.1; "
                          "done")
    assert joined.stdout.strip() == native.shoal("exec", "web", "hostname").stdout.strip()
    for flags, why in (
            (["-p", "80"], "--publish conflicts with it (publish the port on web)"),
            (["--hostname", "h"], "--hostname conflicts with it (it has the hostname of web)"),
            (["--dns", "192.0.2.1"], "--dns conflicts with it"),
            (["--add-host", "db:10.0.0.2"], "--add-host conflicts with it"),
            (["--network-alias", "x"], "--network-alias conflicts with it")):
        refused = native.shoal("run", "--network", "container:web", *flags, "busybox",
                               "true", check=False)
        assert refused.returncode != 0
        [line] = refused.stderr.strip().splitlines()
        assert why in line, line
    native.shoal("stop", "-t", "0", "web")
    stopped = native.shoal("run", "--network", "container:web", "busybox", "true", check=False)
    assert "cannot join the network of web: it is not running" in stopped.stderr
    missing_peer = native.shoal("run", "--network", "container:nope", "busybox", "true",
                                check=False)
    assert "no such container: nope" in missing_peer.stderr
