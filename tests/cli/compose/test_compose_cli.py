"""``shoal compose`` end to end against a standalone worker on the native driver: a 3-service
app up in depends_on order on its own network, ps, logs, a second up that changes nothing, an
edited file that recreates only the edited service, a published port answering, and down -v
leaving nothing (containers, network, veths, published-port rules); a healthcheck-gated
depends_on order (service_healthy, service_completed_successfully) observed through a named
volume, the volume surviving a second up and gone after down -v, up --wait; file secrets and
configs, and ulimits, inside a container."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.helpers.compose_worker import compose, said
from tests.helpers.netns import client_namespace
from tests.helpers.worker_process import Worker
from worker.engine.native_driver import cgroup_scope
from worker.network import links, nat

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

    # The verbs that look at a service's containers.
    assert compose(native, app, "-p", project, "port", "web", "8000").stdout == \
        native.shoal("port", f"{project}-web-1", "8000").stdout
    assert compose(native, app, "-p", project, "exec", "-T", "api", "sh", "-c",
                   "echo $ROLE").stdout == "backend\n"
    one_off = compose(native, app, "-p", project, "run", "--rm", "-T", "--no-deps", "api",
                      "echo", "one-off")
    assert one_off.stdout == "one-off\n", one_off.stderr
    assert "sleep 1000" in compose(native, app, "-p", project, "top", "cache").stdout
    assert [r.split()[:3] for r in compose(native, app, "-p", project, "images").stdout
            .splitlines()[1:]] == [[f"{project}-{s}-1", s, "busybox"]
                                   for s in ("api", "cache", "web")]

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
        "services:\n  web:\n    image: busybox\n    external_links: [elsewhere]\n")
    refused = compose(native, app, "up", "-d", check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"Error: {app / 'compose.yaml'}:4: services.web.external_links: not supported: a "
        "container outside the project is reached by its own name on a shared network")
    assert native.shoal("ps", "-aq").stdout.strip() == ""
    assert "app_default" not in native.shoal("network", "ls").stdout

    # Without -d, up follows the output until the containers end. A file secret and a file
    # config are bind-mounted read-only, and ulimits are the process's. A secret from the
    # environment and a config's content come as files with the owner and mode asked
    # (compose's default: root, root, 0444).
    (app / "token.txt").write_text("s3cret\n")
    (app / "compose.yaml").write_text(
        "services:\n  once:\n    image: busybox\n    network_mode: none\n"
        "    secrets: [token, {source: env, uid: '1000', gid: '1001', mode: 0400}]\n"
        "    configs: [{source: token, target: /etc/app.conf}, {source: inline, target: /in}]\n"
        "    ulimits: {nofile: {soft: 300, hard: 400}}\n"
        "    command: [sh, -c, 'echo first; echo second; cat /run/secrets/token /etc/app.conf;"
        " ulimit -n; touch /run/secrets/token || echo read-only; cat /run/secrets/env /in;"
        " stat -c \"%u %g %a\" /run/secrets/env /in']\n"
        "secrets:\n  token: {file: ./token.txt}\n  env: {environment: CT_TOKEN}\n"
        "configs:\n  token: {file: ./token.txt}\n  inline: {content: \"port=80\\n\"}\n")
    runtime = tmp_path / "runtime"
    attached = compose(native, app, "-p", "ctonce", "up",
                       env={"CT_TOKEN": "from-env\n", "XDG_RUNTIME_DIR": str(runtime)})
    assert "ctonce-once-1 | first\nctonce-once-1 | second\nctonce-once-1 | s3cret\n" \
           "ctonce-once-1 | s3cret\nctonce-once-1 | 300\n" in attached.stdout, attached.stdout
    assert "ctonce-once-1 | read-only\n" in attached.stdout
    assert "ctonce-once-1 | from-env\nctonce-once-1 | port=80\n" \
           "ctonce-once-1 | 1000 1001 400\nctonce-once-1 | 0 0 444\n" in attached.stdout
    assert (runtime / "shoal" / "compose" / "ctonce").is_dir()
    # down -p needs no file: the labels say what is the project's.
    down = native.shoal("compose", "-p", "ctonce", "down",
                        env={"XDG_CACHE_HOME": str(app / "cache"),
                             "XDG_RUNTIME_DIR": str(runtime)})
    assert said(down.stdout) == [("ctonce-once-1", "Removed")]
    assert native.shoal("ps", "-aq").stdout.strip() == ""
    assert not (runtime / "shoal" / "compose" / "ctonce").exists()


GATED = """\
services:
  db:
    image: busybox
    command: [sh, -c, 'sleep 0.5; echo ready > /data/ready; exec sleep 1000']
    healthcheck: {test: [CMD, test, -f, /data/ready], interval: 100ms, retries: 100}
    stop_grace_period: 1s
    volumes: [data:/data]
  migrate:
    image: busybox
    # Fails unless the db was healthy before it started: the file is the db's proof.
    command: [sh, -c, 'cat /data/ready >> /data/count']
    volumes: [data:/data]
    depends_on: {db: {condition: service_healthy}}
  web:
    build: {context: ./web, args: {GREETING: built}}
    command: sleep 1000
    stop_grace_period: 1s
    depends_on:
      migrate: {condition: service_completed_successfully}
volumes:
  data: {labels: {purpose: test}}
"""


def test_healthchecks_gate_the_start_order_and_a_named_volume_outlives_up(
        native: Worker, tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "compose.yaml").write_text(GATED)
    (app / "web").mkdir()
    (app / "web" / "Dockerfile").write_text(
        "FROM busybox\nARG GREETING\nRUN echo $GREETING > /greeting\n")
    project = f"cg{os.urandom(3).hex()}"
    first = compose(native, app, "-p", project, "up", "-d")
    # The service with a build section is built first, as its image does not exist yet.
    assert f"Image {project}-web  Built" in first.stdout
    assert said(first.stdout) == [
        (f"{project}-db-1", "Created"), (f"{project}-db-1", "Started"),
        (f"{project}-db-1", "Waiting"), (f"{project}-db-1", "Healthy"),
        (f"{project}-migrate-1", "Created"), (f"{project}-migrate-1", "Started"),
        (f"{project}-migrate-1", "Waiting"), (f"{project}-migrate-1", "Exited"),
        (f"{project}-web-1", "Created"), (f"{project}-web-1", "Started")], first.stdout
    assert f"Volume {project}_data  Created" in first.stdout
    inspected = json.loads(native.shoal("volume", "inspect", f"{project}_data").stdout)
    assert inspected[0]["spec"]["labels"]["purpose"] == "test"
    ps = compose(native, app, "-p", project, "ps").stdout
    assert "(healthy)" in next(r for r in ps.splitlines() if "-db-1" in r), ps

    # Up again: the one-shot runs again on the same volume; --wait sees the db healthy.
    again = compose(native, app, "-p", project, "up", "-d", "--wait", "--wait-timeout", "60")
    assert (f"{project}-db-1", "Running") in said(again.stdout)
    assert (f"{project}-db-1", "Healthy") in said(again.stdout)
    count = native.shoal("exec", f"{project}-db-1", "cat", "/data/count").stdout
    assert count == "ready\nready\n"
    assert "Built" not in again.stdout
    assert compose(native, app, "-p", project, "exec", "-T", "web", "cat",
                   "/greeting").stdout == "built\n"

    down = compose(native, app, "-p", project, "down", "-v")
    assert f"Volume {project}_data  Removed" in down.stdout
    assert f"{project}_data" not in native.shoal("volume", "ls").stdout
    assert native.shoal("ps", "-aq").stdout.strip() == ""

    # A dependency that never becomes healthy stops the dependants, within --wait-timeout.
    (app / "compose.yaml").write_text(GATED.replace("test, -f, /data/ready", "'false'"))
    stuck = compose(native, app, "-p", project, "up", "-d", "--wait-timeout", "2",
                    check=False)
    assert stuck.returncode == 1
    assert f"Error: dependency failed to start: {project}-db-1: not ready after 2 s" in \
        stuck.stderr, stuck.stderr
    assert f"{project}-migrate-1" not in stuck.stdout
    compose(native, app, "-p", project, "down", "-v")
    assert native.shoal("volume", "ls", "-q").stdout.strip() == ""


RESTARTED = """\
services:
  db:
    image: busybox
    command: sleep 1000
    environment: {VERSION: "1"}
    stop_grace_period: 1s
    network_mode: none
  app:
    image: busybox
    command: sleep 1000
    stop_grace_period: 1s
    network_mode: none
    depends_on:
      db: {condition: service_started, restart: true}
  other:
    image: busybox
    command: sleep 1000
    stop_grace_period: 1s
    network_mode: none
    depends_on: [db]
"""


def test_depends_on_restart_restarts_the_dependant_with_its_dependency(
        native: Worker, tmp_path: Path) -> None:
    """``restart: true``: the dependant is restarted when up recreates its dependency and
    when compose restart restarts it; a plain dependant is left alone."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "compose.yaml").write_text(RESTARTED)
    first = compose(native, app, "-p", "ctrst", "up", "-d")
    assert first.returncode == 0, first.stderr
    (app / "compose.yaml").write_text(RESTARTED.replace('VERSION: "1"', 'VERSION: "2"'))
    edited = compose(native, app, "-p", "ctrst", "up", "-d")
    assert said(edited.stdout) == [("ctrst-db-1", "Recreate"), ("ctrst-db-1", "Recreated"),
                                   ("ctrst-db-1", "Started"), ("ctrst-app-1", "Restarted"),
                                   ("ctrst-other-1", "Running")], edited.stdout
    restarted = compose(native, app, "-p", "ctrst", "restart", "db")
    assert said(restarted.stdout) == [("ctrst-db-1", "Restarted"),
                                      ("ctrst-app-1", "Restarted")], restarted.stdout
    compose(native, app, "-p", "ctrst", "down")
