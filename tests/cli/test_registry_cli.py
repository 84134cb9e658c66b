"""The registry verbs end to end: the shoal command against a real worker joined to a real
scheduler, and Debian's docker-registry (plain, and TLS + htpasswd) on loopback.

``push``/``pull``/``tag`` against a worker; ``run`` of an image a worker lacks pulls it there
(through a scheduler: tests/cli/test_cluster_pull.py); ``login`` keeps checked credentials in a
0600 config.json, wrong ones are refused in docker's words; ``search`` is refused with the
reason by a registry without it."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench._registry_server import RunningRegistry, available, registry
from cli.dev import DevCluster
from cli.images import upload_to
from scheduler.store import EmbeddedEtcd
from tests.helpers import cluster_keys
from tests.helpers.bounded_run import run
from tests.helpers.requirements import missing
from tests.helpers.scheduler_processes import scheduler_args
from worker.images.testimage import build_layout

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]
USERS = {"alice": "correct horse"}


@dataclass
class Setup:
    leader: str
    worker: str
    plain: RunningRegistry
    secured: RunningRegistry
    config: Path  # SHOAL_CONFIG of the CLI runs


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    why = available()
    if why is not None:
        missing(why)
    tmp = tmp_path_factory.mktemp("registry-cli")
    procs = DevCluster(tmp, "", workers=0)
    etcd = EmbeddedEtcd(tmp / "etcd")

    async def start() -> tuple[str, str]:
        await procs.launch("a", scheduler_args(etcd, tmp, "a"))
        leader = procs.ready["a"]["LISTEN"]
        await procs.launch("worker1", [
            "worker", "--join", leader, "--listen", "tcp://127.0.0.1:0",
            "--state-dir", str(tmp / "worker1"), "--name", "w1",
            "--token", await asyncio.to_thread(cluster_keys.join_token, leader)])
        worker = procs.ready["worker1"]["LISTEN"]
        layout = await asyncio.to_thread(build_layout, tmp / "busybox")
        await asyncio.to_thread(upload_to, worker, layout, "busybox:latest")
        return leader, worker

    with registry(tmp / "plain") as plain, \
            registry(tmp / "secured", tls=True, users=USERS) as secured:
        etcd.start()
        try:
            leader, worker = run(start, timeout=60)
            yield Setup(leader, worker, plain, secured, tmp / "cli-config")
        finally:
            run(procs.stop, timeout=60)
            etcd.stop()


def shoal(setup: Setup, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SHOAL_HOST"}
    env["SHOAL_CONFIG"] = str(setup.config)
    result = subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, env=env,
                            input=stdin, capture_output=True, text=True, timeout=120,
                            check=False)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def _skopeo_digest(ref: str, *extra: str) -> str:
    done = subprocess.run(["skopeo", "inspect", *extra, f"docker://{ref}"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["Digest"])


def test_tag_push_pull_against_a_worker(setup: Setup) -> None:
    ref = f"{setup.plain.address}/cli/busybox:1"
    tagged = shoal(setup, "-H", setup.worker, "tag", "busybox", ref)
    assert tagged.returncode == 0, tagged.stderr
    pushed = shoal(setup, "-H", setup.worker, "push", ref)
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout.startswith(f"The push refers to repository [{ref[:-2]}]")
    digest = re.search(r"1: digest: (sha256:[0-9a-f]{64}) size: \d+", pushed.stdout)
    assert digest is not None, pushed.stdout
    assert _skopeo_digest(ref, "--tls-verify=false") == digest.group(1)
    assert re.search(r"[0-9a-f]{12}: Pushed", pushed.stdout)

    assert shoal(setup, "-H", setup.worker, "rmi", ref).returncode == 0
    pulled = shoal(setup, "-H", setup.worker, "pull", ref)
    assert pulled.returncode == 0, pulled.stderr
    assert f"Digest: {digest.group(1)}" in pulled.stdout
    assert "Already exists" in pulled.stdout  # busybox:latest holds the same blobs
    assert pulled.stdout.endswith(f"{ref}\n")
    quiet = shoal(setup, "-H", setup.worker, "pull", "-q", ref)
    assert quiet.returncode == 0 and quiet.stdout == f"{ref}\n"
    other = f"{setup.plain.address}/cli/other:2"
    assert shoal(setup, "-H", setup.worker, "image", "tag", ref, other).returncode == 0
    listed = shoal(setup, "-H", setup.worker, "images").stdout
    assert f"{setup.plain.address}/cli/other" in listed and " 2 " in listed
    unknown = shoal(setup, "-H", setup.worker, "pull", f"{setup.plain.address}/cli/nope:1")
    assert unknown.returncode == 1 and "ManifestUnknown" in unknown.stderr


def test_run_pulls_a_missing_image_on_a_worker(setup: Setup) -> None:
    ref = f"{setup.plain.address}/runs/busybox:w"
    assert shoal(setup, "-H", setup.worker, "tag", "busybox", ref).returncode == 0
    assert shoal(setup, "-H", setup.worker, "push", "-q", ref).returncode == 0
    assert shoal(setup, "-H", setup.worker, "rmi", ref).returncode == 0
    ran = shoal(setup, "-H", setup.worker, "run", "--rm", ref, "echo", "hi")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "hi\n"
    assert f"Unable to find image '{ref}' locally" in ran.stderr


def test_login_push_pull_logout_with_tls_and_htpasswd(setup: Setup) -> None:
    secured = setup.secured
    assert secured.ca_file is not None
    ca = str(secured.ca_file)
    wrong = shoal(setup, "login", "-u", "alice", "-p", "wrong", "--ca", ca, secured.address)
    assert wrong.returncode == 1
    assert "unauthorized: authentication required" in wrong.stderr
    assert not (setup.config / "config.json").exists()

    good = shoal(setup, "login", "-u", "alice", "--password-stdin", "--ca", ca,
                 secured.address, stdin=USERS["alice"] + "\n")
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith("Login Succeeded")
    config = setup.config / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    auth = json.loads(config.read_text())["auths"][secured.address]["auth"]
    assert base64.b64decode(auth).decode() == f"alice:{USERS['alice']}"

    ref = f"{secured.address}/private/busybox:s"
    assert shoal(setup, "-H", setup.worker, "tag", "busybox", ref).returncode == 0
    pushed = shoal(setup, "-H", setup.worker, "push", "--ca", ca, ref)
    assert pushed.returncode == 0, pushed.stderr
    assert shoal(setup, "-H", setup.worker, "rmi", ref).returncode == 0
    pulled = shoal(setup, "-H", setup.worker, "pull", "--ca", ca, "-q", ref)
    assert pulled.returncode == 0, pulled.stderr
    assert _skopeo_digest(ref, "--cert-dir", str(secured.ca_file.parent), "--creds",
                          f"alice:{USERS['alice']}") in pushed.stdout

    searched = shoal(setup, "search", "--registry", secured.address, "--ca", ca, "busybox")
    assert searched.returncode == 1 and "does not support search" in searched.stderr

    out = shoal(setup, "logout", secured.address)
    assert out.returncode == 0 and secured.address in out.stdout
    assert secured.address not in json.loads(config.read_text())["auths"]
    refused = shoal(setup, "-H", setup.worker, "pull", "--ca", ca, ref)
    assert refused.returncode == 1
    assert "unauthorized: authentication required" in refused.stderr


def test_compose_up_pulls_a_missing_image_on_a_worker(setup: Setup, tmp_path: Path) -> None:
    ref = f"{setup.plain.address}/compose/busybox:c"
    assert shoal(setup, "-H", setup.worker, "tag", "busybox", ref).returncode == 0
    assert shoal(setup, "-H", setup.worker, "push", "-q", ref).returncode == 0
    assert shoal(setup, "-H", setup.worker, "rmi", ref).returncode == 0
    compose_file = tmp_path / "compose.yaml"
    compose_file.write_text(f"services:\n  web:\n    image: {ref}\n"
                            "    command: [\"sleep\", \"60\"]\n")
    up = shoal(setup, "-H", setup.worker, "compose", "-f", str(compose_file), "-p", "pulled",
               "up", "-d")
    try:
        assert up.returncode == 0, up.stderr
        # compose pulls a service's missing image before it creates the container
        # (pull_policy "missing"), as docker compose does
        assert "c: Pulling from compose/busybox" in up.stderr
        assert "Started" in up.stdout + up.stderr
    finally:
        shoal(setup, "-H", setup.worker, "compose", "-f", str(compose_file), "-p", "pulled",
              "down")
