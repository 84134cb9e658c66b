"""Debian's docker CLI against a worker's Docker API: the commands a user types, their output
and their exit codes."""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.docker_api import DOCKER_CLI, docker, docker_worker
from tests.helpers.worker_process import Worker

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    assert DOCKER_CLI.exists(), "Debian's docker.io is missing: run deploy/setup.sh"
    with docker_worker(tmp_path_factory.mktemp("dockercli") / "worker") as worker:
        yield worker


@pytest.fixture
def cli(node: Worker, tmp_path: Path):  # type: ignore[no-untyped-def]
    def run(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return docker(node.docker, tmp_path, *args, **kwargs)  # type: ignore[arg-type]
    return run


def test_version_info_images_ps(cli) -> None:  # type: ignore[no-untyped-def]
    version = cli("version", "--format", "{{json .Server}}")
    assert version.returncode == 0, version.stderr
    server = json.loads(version.stdout)
    assert server["ApiVersion"] == "1.45" and server["MinAPIVersion"] == "1.24"
    info = cli("info", "--format", "{{.OperatingSystem}} {{.Images}}")
    assert info.returncode == 0 and info.stdout.split() == ["shoal", "worker", "1"], info
    images = cli("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert images.stdout.split() == ["busybox:latest"]
    assert cli("ps").returncode == 0


def test_run_rm_gives_output_and_exit_code(cli, node: Worker) -> None:  # type: ignore[no-untyped-def]
    done = cli("run", "--rm", "busybox", "sh", "-c", "echo hi; echo oops >&2; exit 3")
    assert done.returncode == 3, done.stderr
    assert done.stdout == "hi\n" and done.stderr == "oops\n"
    assert node.shoal("ps", "-aq").stdout.split() == []  # --rm: gone


def test_run_detached_logs_exec_stop_rm(cli) -> None:  # type: ignore[no-untyped-def]
    started = cli("run", "-d", "--name", "ticker", "busybox", "sh", "-c",
                  "echo one; echo two; echo three; exec sleep 600")
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    assert len(cid) == 64
    listed = cli("ps", "--format", "{{.Names}} {{.Status}}")
    assert listed.stdout.startswith("ticker Up"), listed.stdout
    # the three lines are in the log once the shell has become sleep and its output is read
    deadline = time.monotonic() + 30
    while cli("logs", "ticker").stdout != "one\ntwo\nthree\n":
        assert time.monotonic() < deadline, "the three lines never reached the log"
    tail = cli("logs", "-t", "--tail", "2", "ticker")
    assert [line.split(" ", 1)[1] for line in tail.stdout.splitlines()] == ["two", "three"]
    assert tail.stdout.startswith("20")  # an RFC 3339 time first
    executed = cli("exec", "ticker", "sh", "-c", "echo in; exit 7")
    assert (executed.returncode, executed.stdout) == (7, "in\n")
    stopped = cli("stop", "-t", "1", "ticker")
    assert stopped.returncode == 0 and stopped.stdout.strip() == "ticker"
    # logs -f of a stopped container ends by itself
    followed = cli("logs", "-f", "--tail", "1", cid, timeout=20)
    assert followed.stdout == "three\n"
    state = cli("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", cid)
    assert state.stdout.split() == ["exited", "137"]  # sleep ignores nothing: SIGKILL after 1 s
    assert cli("rm", "ticker").returncode == 0


def test_logs_follow_streams_until_the_exit(cli) -> None:  # type: ignore[no-untyped-def]
    cid = cli("run", "-d", "busybox", "sh", "-c",
              "read line < /dev/stdin; echo a; echo b; exit 0").stdout.strip()
    # stdin is not open: the read ends at once, the two lines follow, the container exits
    followed = cli("logs", "-f", cid, timeout=20)
    assert followed.stdout == "a\nb\n"
    assert cli("rm", cid).returncode == 0


def test_run_interactive_with_a_terminal(cli, node: Worker) -> None:  # type: ignore[no-untyped-def]
    host = node.docker
    command = f"{DOCKER_CLI} run -it --rm busybox sh"
    done = subprocess.run(
        ["script", "-qec", command, "/dev/null"], input="echo typed-$((20+22)); exit 4\n",
        capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "DOCKER_HOST": host, "TERM": "xterm"})
    assert done.returncode == 4, done.stdout + done.stderr
    assert "typed-42" in done.stdout


def test_run_interactive_stdin_without_terminal(cli) -> None:  # type: ignore[no-untyped-def]
    done = cli("run", "-i", "--rm", "busybox", "sh", "-c", "tr a-z A-Z; echo done",
               stdin="hello\n")
    assert (done.returncode, done.stdout) == (0, "HELLO\ndone\n"), done.stderr


def test_missing_objects(cli) -> None:  # type: ignore[no-untyped-def]
    inspected = cli("inspect", "no-such-thing")
    assert inspected.returncode == 1
    assert "No such object: no-such-thing" in inspected.stderr
    container = cli("container", "inspect", "nope")
    assert container.returncode == 1 and "No such container: nope" in container.stderr
    image = cli("image", "inspect", "nope:1")
    assert image.returncode == 1 and "No such image: nope:1" in image.stderr
    removed = cli("rm", "-f", "nope")
    assert removed.returncode == 0, removed.stderr  # docker rm -f: a missing one is fine
    assert cli("rm", "nope").returncode == 1
    stopped = cli("stop", "nope")
    assert stopped.returncode == 1 and "No such container: nope" in stopped.stderr


def test_refusals_say_what_is_missing(cli) -> None:  # type: ignore[no-untyped-def]
    linked = cli("run", "--rm", "--volumes-from", "db", "busybox", "true")
    assert linked.returncode == 125
    assert "HostConfig.VolumesFrom is not supported" in linked.stderr
    paused = cli("pause", "nope")
    assert paused.returncode == 1 and "No such container: nope" in paused.stderr
    placed = cli("run", "--rm", "-e", "constraint:zone==a", "busybox", "true")
    assert placed.returncode == 125 and "send the container to a scheduler" in placed.stderr


def test_a_quoted_command_reaches_the_container_whole(cli) -> None:  # type: ignore[no-untyped-def]
    done = cli("run", "--rm", "-e", "GREETING=a b", "-w", "/etc", "busybox", "sh", "-c",
               'echo "$GREETING" $(pwd)')
    assert done.stdout == "a b /etc\n", shlex.quote(done.stderr)


def test_exec_interactive_with_a_terminal(cli, node: Worker) -> None:  # type: ignore[no-untyped-def]
    assert cli("run", "-d", "--name", "shell", "busybox", "sleep", "600").returncode == 0
    try:
        command = f"{DOCKER_CLI} exec -it shell sh"
        done = subprocess.run(
            ["script", "-qec", command, "/dev/null"], input="echo in-$((6*7)); exit 5\n",
            capture_output=True, text=True, timeout=60,
            env={"PATH": "/usr/bin:/bin", "DOCKER_HOST": node.docker, "TERM": "xterm"})
        assert done.returncode == 5, done.stdout + done.stderr
        assert "in-42" in done.stdout
    finally:
        cli("rm", "-f", "shell")


def test_run_network_container_joins_the_other(cli) -> None:  # type: ignore[no-untyped-def]
    web = cli("run", "-d", "--name", "cliweb", "busybox", "httpd", "-f", "-p",
              "127.0.0.1:8000", "-h", "/etc")
    assert web.returncode == 0, web.stderr
    try:
        joined = cli("run", "--rm", "--network", "container:cliweb", "busybox", "sh", "-c",
                     "until wget -qO- http://127.0.0.1:8000/hostname; do sleep 0.1; done")
        assert joined.returncode == 0, joined.stderr
        assert joined.stdout.strip() == web.stdout.strip()[:12]  # the peer's hostname
        refused = cli("run", "--rm", "--network", "container:cliweb", "--dns", "192.0.2.1",
                      "busybox", "true")
        assert refused.returncode != 0
        assert "--dns conflicts with it" in refused.stderr, refused.stderr
    finally:
        cli("rm", "-f", "cliweb")
