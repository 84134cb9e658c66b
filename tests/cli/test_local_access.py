"""Who on a host reaches a daemon without a key: root, by its socket or the keys it leaves for
root; an unprivileged user neither (the attack of issue 12: `shoal run -v /:/host` as nobody).
The unprivileged side runs as uid 65534 with the system's Python and its standard library
only: what it may open and connect to is the question, not shoal's code."""

from __future__ import annotations

import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from channels.credentials import runtime_dir
from tests.helpers.requirements import missing
from tests.helpers.worker_process import Worker

pytestmark = pytest.mark.root
NOBODY = 65534
PROBE = r"""
import socket, sys
kind, where = sys.argv[1], sys.argv[2]
try:
    if kind == "open":
        open(where).read()
    else:
        s = socket.socket(socket.AF_UNIX)
        s.connect(where)
except PermissionError:
    print("denied")
else:
    print("allowed")
"""


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory everyone may traverse, on a path everyone may traverse: a refusal there is
    the socket's own mode speaking, not a parent directory's."""
    path = Path(tempfile.mkdtemp(prefix="shoal-local-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def worker(tmp_path: Path, open_dir: Path) -> Iterator[Worker]:
    node = Worker(tmp_path / "w", "process", args=("--ipc", str(open_dir / "w.sock")))
    node.start()
    try:
        yield node
    finally:
        node.kill()


def as_nobody(kind: str, where: str) -> str:
    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None:
        missing("the system's python3 (for a probe run as nobody)")
    done = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                           "--clear-groups", python, "-I", "-c", PROBE, kind, where],
                          capture_output=True, text=True, timeout=30, cwd="/")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_root_reaches_a_daemon_without_keys_and_nobody_else_does(
        worker: Worker, tmp_path: Path, open_dir: Path) -> None:
    sock = open_dir / "w.sock"
    mode = sock.stat()
    assert stat.S_ISSOCK(mode.st_mode) and stat.S_IMODE(mode.st_mode) == 0o660
    assert mode.st_uid == 0
    # root's CLI: by the socket, and over tcp with the keys the worker left for root
    assert worker.shoal("-H", f"ipc://{sock}", "ps").returncode == 0
    assert worker.shoal("ps").returncode == 0  # SHOAL_HOST is its tcp address
    published = [p for p in (runtime_dir() / "local").glob("worker-*.json")
                 if worker.address in p.read_text()]
    assert len(published) == 1
    assert stat.S_IMODE(published[0].stat().st_mode) == 0o600
    assert stat.S_IMODE((runtime_dir() / "local").stat().st_mode) == 0o700
    # nobody: neither the socket (its own mode refuses) nor root's keys
    assert as_nobody("connect", str(sock)) == "denied"
    assert as_nobody("open", str(published[0])) == "denied"
    # and its tcp port asks for a key nobody has (the CLI says so in one line)
    stranger = worker.shoal("ps", check=False,
                            env={"SHOAL_CONFIG": str(tmp_path / "none"),
                                 "SHOAL_RUNTIME_DIR": str(tmp_path / "no-runtime")})
    assert stranger.returncode == 1
    assert "it may require CURVE" in stranger.stderr


def test_the_keys_left_for_root_go_with_the_daemon(tmp_path: Path) -> None:
    node = Worker(tmp_path / "w", "process", args=("--ipc", "none"))
    node.start()
    left = [p for p in (runtime_dir() / "local").glob("worker-*.json")
            if node.address in p.read_text()]
    assert len(left) == 1
    node.kill(15)  # SIGTERM: a clean stop withdraws them
    assert not left[0].exists()


def test_a_standalone_worker_enrolls_a_client_with_its_token_and_revokes_it(
        worker: Worker, tmp_path: Path) -> None:
    elsewhere = {"SHOAL_CONFIG": str(tmp_path / "someone"),
                 "SHOAL_RUNTIME_DIR": str(tmp_path / "no-runtime")}  # not root's local keys
    token = worker.shoal("join-token", "client", "-q").stdout.strip()
    assert token.startswith("SHOAL-1-")
    refused = worker.shoal("join-token", "worker", check=False)
    assert refused.returncode == 1 and "client tokens only" in refused.stderr
    enrolled = worker.shoal("enroll", worker.address, "--token", token, "--name", "ann",
                            env=elsewhere)
    assert "Enrolled 'ann'" in enrolled.stdout
    assert worker.shoal("ps", env=elsewhere).returncode == 0
    assert "ann" in worker.shoal("key", "ls").stdout
    worker.shoal("key", "rm", "ann")
    cut = worker.shoal("ps", check=False, env=elsewhere)
    assert cut.returncode == 1 and "refused this client's key" in cut.stderr
    # a rotated token enrolls no one any more
    worker.shoal("join-token", "client", "--rotate", "-q")
    stale = worker.shoal("enroll", worker.address, "--token", token, check=False,
                         env=elsewhere)
    assert stale.returncode == 1 and "refused" in stale.stderr, stale.stderr
