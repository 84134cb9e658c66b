"""Shared by the Docker API tests: a worker serving the API on its default unix socket (with
the busybox test image where it runs images), the docker CLI pointed at it, and raw HTTP."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvloop

from tests.helpers.worker_process import Worker
from worker.images import ImageStore
from worker.images.testimage import import_test_image
from worker.teardown import tear_down_worker

# Debian's docker.io client (API 1.41), not whatever other docker a PATH finds first.
DOCKER_CLI = Path("/usr/bin/docker")


@contextmanager
def docker_worker(state_dir: Path, driver: str = "native") -> Iterator[Worker]:
    """A worker serving the Docker API at ``worker.docker`` until the block ends; every
    container it holds is removed at the end."""
    if driver == "native":
        import_test_image(ImageStore(state_dir / "images"))
    node = Worker(state_dir, driver)
    node.start()
    try:
        assert node.docker == f"unix://{state_dir.resolve()}/docker.sock", node.docker
        yield node
    finally:
        for ref in node.shoal("ps", "-aq", check=False).stdout.split():
            node.shoal("rm", "-f", ref, check=False)
        node.kill(signal.SIGTERM)
        if driver == "native":
            uvloop.run(tear_down_worker(state_dir))


def docker(host: str, config: Path, *args: str, timeout: float = 60,
           stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The docker CLI against ``host`` with a config directory of its own."""
    return subprocess.run([str(DOCKER_CLI), *args], capture_output=True, text=True,
                          timeout=timeout, input=stdin,
                          env={"PATH": "/usr/bin:/bin", "DOCKER_HOST": host,
                               "DOCKER_CONFIG": str(config), "HOME": str(config)})


def wait_for_event(host: str, config: Path, container: str, since: float, action: str,
                   within: float) -> bool:
    """Whether ``docker events`` shows ``action`` for ``container`` (from ``since``, so one
    that came first counts) within ``within`` seconds; it returns at the first one."""
    watch = subprocess.Popen(
        [str(DOCKER_CLI), "events", "--since", f"{since:.3f}", "--filter",
         f"container={container}", "--format", "{{.Action}}"], stdout=subprocess.PIPE,
        text=True, env={"PATH": "/usr/bin:/bin", "DOCKER_HOST": host,
                        "DOCKER_CONFIG": str(config), "HOME": str(config)})
    timer = threading.Timer(within, watch.kill)
    timer.start()
    try:
        assert watch.stdout is not None
        return any(line.strip() == action for line in watch.stdout)
    finally:
        timer.cancel()
        watch.kill()
        watch.wait()


def raw_exchange(path: str, request: bytes, *, timeout: float = 10.0) -> bytes:
    """Send ``request`` as is on a new connection to the unix socket ``path``; everything the
    server answers until it closes (or ``timeout`` passes without a byte)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(request)
        chunks = []
        while True:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            chunks.append(data)
            if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                break
    return b"".join(chunks)


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def status_and_json(answer: bytes) -> tuple[int, dict[str, str], Any]:
    """(status, headers, JSON body) of one HTTP answer."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in
               (line.partition(":") for line in lines[1:])}
    if not body.strip() or "json" not in headers.get("content-type", ""):
        return status, headers, body
    return status, headers, json.loads(body)
