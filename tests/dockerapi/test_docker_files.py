"""Files in and out of containers through a worker's Docker API: ``docker cp`` both ways on a
running and a stopped container, ``docker export``, ``docker system df`` and ``docker history``
with Debian's docker CLI, the same through docker-py, and the archive endpoint's refusals."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import secrets
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.helpers.docker_api import DOCKER_CLI, docker_worker
from tests.helpers.docker_api import docker as docker_cli
from tests.helpers.worker_process import Worker

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    assert DOCKER_CLI.exists(), "Debian's docker.io is missing: run deploy/setup.sh"
    with docker_worker(tmp_path_factory.mktemp("dockerfiles") / "worker") as worker:
        yield worker


@pytest.fixture
def cli(node: Worker, tmp_path: Path):  # type: ignore[no-untyped-def]
    def run(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return docker_cli(node.docker, tmp_path / "config", *args,  # type: ignore[arg-type]
                          **kwargs)
    return run


def _name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def test_cp_both_ways_running_and_stopped(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    name = _name("cp")
    started = cli("run", "-d", "--name", name, "busybox", "sleep", "600")
    assert started.returncode == 0, started.stderr
    source = tmp_path / "in"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "data.txt").write_text("hello from the host\n")
    (source / "top.txt").write_text("top\n")
    copied = cli("cp", str(source), f"{name}:/tmp/")
    assert copied.returncode == 0, copied.stderr
    shown = cli("exec", name, "cat", "/tmp/in/sub/data.txt", "/tmp/in/top.txt")
    assert shown.stdout == "hello from the host\ntop\n", shown.stderr
    # out again, a file and a directory
    out = tmp_path / "out"
    out.mkdir()
    assert cli("cp", f"{name}:/etc/hostname", str(out / "hostname")).returncode == 0
    assert (out / "hostname").read_text().strip() != ""
    back = cli("cp", f"{name}:/tmp/in", str(out))
    assert back.returncode == 0, back.stderr
    assert (out / "in" / "sub" / "data.txt").read_text() == "hello from the host\n"
    # a symlink: copied as one, or followed inside the container with -L (linkTarget)
    assert cli("exec", name, "ln", "-s", "/tmp/in/top.txt", "/tmp/top-link").returncode == 0
    assert cli("cp", f"{name}:/tmp/top-link", str(out / "as-link")).returncode == 0
    assert (out / "as-link").readlink() == Path("/tmp/in/top.txt")
    followed = cli("cp", "-L", f"{name}:/tmp/top-link", str(out / "followed"))
    assert followed.returncode == 0, followed.stderr
    assert (out / "followed").read_text() == "top\n"
    # a stopped container: its files are still there, and take new ones
    assert cli("stop", "-t", "0", name).returncode == 0
    (tmp_path / "later.txt").write_text("later\n")
    assert cli("cp", str(tmp_path / "later.txt"), f"{name}:/tmp/in/").returncode == 0
    again = cli("cp", f"{name}:/tmp/in/later.txt", str(out / "later.txt"))
    assert again.returncode == 0, again.stderr
    assert (out / "later.txt").read_text() == "later\n"
    assert cli("start", name).returncode == 0
    assert cli("exec", name, "cat", "/tmp/in/later.txt").stdout == "later\n"
    # what is not there: a 404 to the stat the CLI asks first (HEAD: no body, so the CLI
    # says it in its own words, as it does against dockerd)
    missing = cli("cp", f"{name}:/no/such/file", str(out))
    assert missing.returncode != 0
    assert f"No such container:path: {name}:/no/such/file" in missing.stderr, missing.stderr
    gone = cli("cp", "nosuchcontainer:/etc/hostname", str(out))
    assert gone.returncode != 0 and "No such container" in gone.stderr, gone.stderr
    assert cli("rm", "-f", name).returncode == 0


def test_export_is_the_whole_root(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    name = _name("export")
    made = cli("run", "--name", name, "busybox", "sh", "-c", "echo mark > /marker")
    assert made.returncode == 0, made.stderr
    target = tmp_path / "root.tar"
    exported = cli("export", "-o", str(target), name)
    assert exported.returncode == 0, exported.stderr
    with tarfile.open(target) as tar:
        names = set(tar.getnames())
        marker = tar.extractfile("marker")
        assert marker is not None and marker.read() == b"mark\n"
    assert {"bin/sh", "etc", "marker"} <= names, sorted(names)[:20]
    assert cli("rm", name).returncode == 0


def test_system_df_and_history(cli) -> None:  # type: ignore[no-untyped-def]
    df = cli("system", "df", "--format", "{{json .}}")
    assert df.returncode == 0, df.stderr
    rows = {row["Type"]: row for row in map(json.loads, df.stdout.splitlines())}
    assert set(rows) == {"Images", "Containers", "Local Volumes", "Build Cache"}, rows
    assert rows["Images"]["TotalCount"] == "1" and rows["Images"]["Size"] != "0B"
    verbose = cli("system", "df", "-v")
    assert verbose.returncode == 0 and "busybox" in verbose.stdout, verbose
    history = cli("history", "--no-trunc", "--format", "{{.ID}}|{{.Size}}", "busybox")
    assert history.returncode == 0, history.stderr
    lines = history.stdout.splitlines()
    assert lines and lines[0].startswith("sha256:"), lines
    missing = cli("history", "nosuchimage:1")
    assert missing.returncode != 0 and "No such image" in missing.stderr


def test_docker_py_archive_and_df(client: docker.DockerClient) -> None:
    container = client.containers.run("busybox", "sleep 600", detach=True,
                                      name=_name("dockerpy-cp"))
    try:
        payload = io.BytesIO()
        with tarfile.open(fileobj=payload, mode="w") as tar:
            data = b"py bytes\n"
            info = tarfile.TarInfo("py.txt")
            info.size, info.uid, info.gid = len(data), 1234, 99
            tar.addfile(info, io.BytesIO(data))
            link = tarfile.TarInfo("py-link")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(link)
        assert container.put_archive("/tmp", payload.getvalue())
        code, output = container.exec_run("sh -c 'cat /tmp/py.txt; stat -c %u:%g /tmp/py.txt'")
        assert (code, output) == (0, b"py bytes\n1234:99\n")
        stream, found = container.get_archive("/tmp/py.txt")
        assert found["name"] == "py.txt" and found["size"] == 9
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.extractfile("py.txt")
            assert member is not None and member.read() == b"py bytes\n"
        _, linked = container.get_archive("/tmp/py-link")
        assert linked["linkTarget"] == "/etc/passwd"
        # HEAD: the stat alone, the mode as Go's os.FileMode (ModeDir is 1 << 31)
        head = client.api.head(client.api._url("/containers/{0}/archive", container.id),
                               params={"path": "/tmp/"})
        assert head.status_code == 200 and not head.content
        found = json.loads(base64.b64decode(head.headers["X-Docker-Container-Path-Stat"]))
        assert found["name"] == "tmp" and found["mode"] & (1 << 31), found
        usage = client.df()
        assert any(c["Id"] == container.id for c in usage["Containers"])
        assert usage["LayersSize"] > 0
    finally:
        container.remove(force=True)


def test_archive_refusals(client: docker.DockerClient) -> None:
    container = client.containers.run("busybox", "sleep 600", detach=True,
                                      name=_name("refuse"))
    try:
        escaping = io.BytesIO()
        with tarfile.open(fileobj=escaping, mode="w") as tar:
            info = tarfile.TarInfo("../../escaped.txt")
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
        with pytest.raises(docker.errors.APIError) as refused:
            container.put_archive("/tmp", escaping.getvalue())
        assert refused.value.status_code == 400 and "path traversal" in str(refused.value)
        assert not Path("/escaped.txt").exists()
        # through a link the tar made itself
        through = io.BytesIO()
        with tarfile.open(fileobj=through, mode="w") as tar:
            link = tarfile.TarInfo("out")
            link.type, link.linkname = tarfile.SYMTYPE, "/"
            tar.addfile(link)
            info = tarfile.TarInfo("out/etc/shoal-escape")
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
        with pytest.raises(docker.errors.APIError) as refused:
            container.put_archive("/tmp", through.getvalue())
        assert refused.value.status_code == 400
        # a symlink in the container pointing out is followed inside its root only
        assert container.exec_run("ln -s / /tmp/root-link")[0] == 0
        outside = io.BytesIO()
        with tarfile.open(fileobj=outside, mode="w") as tar:
            info = tarfile.TarInfo("inside-only.txt")
            info.size = 1
            tar.addfile(info, io.BytesIO(b"y"))
        assert container.put_archive("/tmp/root-link/tmp", outside.getvalue())
        assert container.exec_run("cat /tmp/inside-only.txt") == (0, b"y")
        assert not Path("/tmp/inside-only.txt").exists()
        with pytest.raises(docker.errors.NotFound):
            container.put_archive("/no/such/dir", outside.getvalue())
        with pytest.raises(docker.errors.APIError) as refused:
            container.put_archive("/etc/hostname/", outside.getvalue())
        assert refused.value.status_code == 400
        with pytest.raises(docker.errors.APIError) as refused:
            container.get_archive("/proc/1/environ")
        assert refused.value.status_code == 400
    finally:
        container.remove(force=True)


def test_shoal_cp_export_history_df(node: Worker, tmp_path: Path) -> None:
    name = _name("shoalcp")
    node.shoal("run", "-d", "--name", name, "busybox", "sleep", "600")
    try:
        tree = tmp_path / "tree"
        (tree / "deep").mkdir(parents=True)
        (tree / "deep" / "f.txt").write_text("shoal cp\n")
        (tree / "link").symlink_to("deep/f.txt")
        node.shoal("cp", str(tree), f"{name}:/srv")  # /srv does not exist: tree becomes it
        listed = node.shoal("exec", name, "sh", "-c",
                            "cat /srv/deep/f.txt /srv/link; stat -c %u /srv/deep/f.txt")
        assert listed.stdout == "shoal cp\nshoal cp\n0\n", listed.stderr
        node.shoal("cp", str(tree / "deep" / "f.txt"), f"{name}:/srv/")  # into the directory
        assert node.shoal("exec", name, "cat", "/srv/f.txt").stdout == "shoal cp\n"
        out = tmp_path / "out"
        out.mkdir()
        node.shoal("cp", f"{name}:/srv", str(out))
        assert (out / "srv" / "deep" / "f.txt").read_text() == "shoal cp\n"
        assert (out / "srv" / "link").readlink() == Path("deep/f.txt")
        node.shoal("cp", f"{name}:/srv/.", str(out / "contents"))
        assert (out / "contents" / "f.txt").read_text() == "shoal cp\n"
        node.shoal("cp", f"{name}:/srv/f.txt", str(out / "renamed.txt"))
        assert (out / "renamed.txt").read_text() == "shoal cp\n"
        refused = node.shoal("cp", f"{name}:/srv", str(out / "renamed.txt"), check=False)
        assert refused.returncode != 0 and "cannot copy a directory" in refused.stderr
        missing = node.shoal("cp", f"{name}:/nope", str(out), check=False)
        assert missing.returncode != 0 and "/nope" in missing.stderr, missing.stderr
        node.shoal("export", "-o", str(tmp_path / "fs.tar"), name)
        with tarfile.open(tmp_path / "fs.tar") as tar:
            assert "srv/deep/f.txt" in tar.getnames()
        steps = node.shoal("history", "busybox").stdout.splitlines()
        assert steps[0].split()[:2] == ["IMAGE", "CREATED"] and len(steps) >= 2, steps
        df = node.shoal("system", "df").stdout.splitlines()
        assert [line.split()[0] for line in df] == ["TYPE", "Images", "Containers", "Local",
                                                    "Build"], df
    finally:
        node.shoal("rm", "-f", name, check=False)


def test_volumes_are_copied_while_running_and_refused_when_stopped(
        client: docker.DockerClient) -> None:
    volume = _name("cpvol")
    container = client.containers.run("busybox", "sleep 600", detach=True,
                                      name=_name("cpvol"), volumes={volume: {"bind": "/data"}})
    try:
        payload = io.BytesIO()
        with tarfile.open(fileobj=payload, mode="w") as tar:
            info = tarfile.TarInfo("in-volume.txt")
            info.size = 3
            tar.addfile(info, io.BytesIO(b"vol"))
        assert container.put_archive("/data", payload.getvalue())
        assert container.exec_run("cat /data/in-volume.txt") == (0, b"vol")
        stream, found = container.get_archive("/data/in-volume.txt")
        assert found["size"] == 3 and b"".join(stream)
        container.stop(timeout=0)
        with pytest.raises(docker.errors.APIError) as refused:
            container.get_archive("/data/in-volume.txt")
        assert refused.value.status_code == 409
        assert "mounted only while the container runs" in str(refused.value)
        # the container's own files are there when it is stopped
        stream, found = container.get_archive("/etc/hostname")
        assert found["name"] == "hostname"
    finally:
        container.remove(force=True)
        client.volumes.get(volume).remove()


def _open_files(pid: int, needle: str) -> list[str]:
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if needle in target:
                found.append(target)
    return found


def test_a_client_that_leaves_mid_copy_ends_it(node: Worker,
                                               client: docker.DockerClient) -> None:
    """The tar is written as the client reads it: a client that stops reading holds the
    copy at the stream's window, and one that goes away ends it (the file is closed)."""
    container = client.containers.run("busybox", "sleep 600", detach=True,
                                      name=_name("leaver"))
    try:
        big = "shoal-big-" + secrets.token_hex(3)
        assert container.exec_run(f"dd if=/dev/zero of=/{big} bs=1M count=256")[0] == 0
        socket_path = node.docker.removeprefix("unix://")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(socket_path)
            sock.sendall(f"GET /containers/{container.id}/archive?path=/{big} HTTP/1.1\r\n"
                         "Host: docker\r\n\r\n".encode())
            head = sock.recv(65536)
            assert head.startswith(b"HTTP/1.1 200"), head[:200]
            deadline = time.monotonic() + 30
            while not _open_files(node.proc.pid, big):  # being read, held by the window
                assert time.monotonic() < deadline, "the worker never opened the file"
        deadline = time.monotonic() + 30
        while _open_files(node.proc.pid, big):
            assert time.monotonic() < deadline, "the copy went on after the client left"
        assert container.exec_run(f"rm /{big}")[0] == 0
    finally:
        container.remove(force=True)
