"""docker-py (PyPI ``docker`` 7.x) against a worker's Docker API: its high-level and low-level
clients driving containers, exec, logs, events, images (save/load, build, tag, push and pull
through Debian's docker-registry), networks, volumes and healthchecks."""

from __future__ import annotations

import io
import secrets
import tarfile
import time
from collections.abc import Iterator

import docker
import pytest

from bench._registry_server import available, registry
from tests.helpers.docker_api import docker_worker
from tests.helpers.requirements import missing
from tests.helpers.worker_process import Worker

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    with docker_worker(tmp_path_factory.mktemp("dockerpy") / "worker") as worker:
        yield worker


def test_run_with_remove_returns_the_output(client: docker.DockerClient) -> None:
    out = client.containers.run("busybox", ["sh", "-c", "echo out; echo err >&2"],
                                remove=True, stderr=True)
    assert sorted(out.splitlines()) == [b"err", b"out"]
    with pytest.raises(docker.errors.ContainerError) as failed:
        client.containers.run("busybox", ["sh", "-c", "exit 9"], remove=True)
    assert failed.value.exit_status == 9
    assert client.containers.list(all=True) == []


def test_detached_container_exec_logs_and_filters(client: docker.DockerClient) -> None:
    box = client.containers.run("busybox", ["sh", "-c", "echo started; exec sleep 600"],
                                detach=True, name="pybox", labels={"tier": "test"},
                                environment={"MOOD": "fine"})
    try:
        box.reload()
        assert box.status == "running" and box.name == "pybox"
        assert box.attrs["Config"]["Labels"] == {"tier": "test"}
        assert "MOOD=fine" in box.attrs["Config"]["Env"]
        result = box.exec_run(["sh", "-c", "echo $MOOD; exit 2"])
        assert (result.exit_code, result.output) == (2, b"fine\n")
        split = box.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
        assert split.output == (b"o\n", b"e\n")
        streamed = box.exec_run(["sh", "-c", "sleep 0.2; echo 1; echo 2"], stream=True)
        assert b"".join(streamed.output) == b"1\n2\n"
        fed = client.api.exec_create(box.id, ["cat"], stdin=True)
        sock = client.api.exec_start(fed["Id"], socket=True)
        sock._sock.sendall(b"through stdin\n")
        sock._sock.shutdown(1)  # half-close: stdin ends, the output still comes
        got = b""
        while chunk := sock._sock.recv(4096):
            got += chunk
        assert got[8:] == b"through stdin\n" and got[0] == 1
        assert client.api.exec_inspect(fed["Id"])["ExitCode"] == 0
        deadline = time.monotonic() + 30
        while box.logs() != b"started\n":  # the shell's echo reaches the log on its own time
            assert time.monotonic() < deadline, box.logs()
        assert [c.name for c in client.containers.list(filters={"label": "tier=test"})] == \
            ["pybox"]
        assert client.containers.list(filters={"label": "tier=prod"}) == []
        assert [c.name for c in client.containers.list(filters={"name": "pyb"})] == ["pybox"]
        assert [c.name for c in client.containers.list(filters={"ancestor": "busybox"})] == \
            ["pybox"]
        assert client.containers.list(filters={"status": "exited"}) == []
        top = box.top()
        assert top["Titles"] == ["PID", "CMD"] and any("sleep 600" in p[1]
                                                       for p in top["Processes"])
    finally:
        box.remove(force=True)
    with pytest.raises(docker.errors.NotFound, match="No such container: pybox"):
        client.containers.get("pybox")


def test_low_level_lifecycle_and_wait(client: docker.DockerClient) -> None:
    api = client.api
    created = api.create_container("busybox", ["sh", "-c", "echo bye; exit 4"],
                                   host_config=api.create_host_config(mem_limit="64m",
                                                                      nano_cpus=500_000_000))
    cid = created["Id"]
    hc = api.inspect_container(cid)["HostConfig"]
    assert (hc["Memory"], hc["NanoCpus"]) == (64 << 20, 500_000_000)
    api.start(cid)
    assert api.wait(cid) == {"StatusCode": 4, "Error": None}
    assert api.logs(cid, timestamps=False) == b"bye\n"
    frames = list(api.logs(cid, stream=True, follow=True))
    assert b"".join(frames) == b"bye\n"
    api.remove_container(cid)


def test_events_stream_with_filters(client: docker.DockerClient) -> None:
    since = time.time()
    box = client.containers.run("busybox", "true", detach=True)
    box.wait()
    box.remove()
    events = client.events(since=since, until=time.time() + 0.5, decode=True,
                           filters={"container": box.id})
    actions = [e["Action"] for e in events]
    assert actions[:2] == ["create", "start"] and "die" in actions, actions


def test_images_list_inspect_and_load(client: docker.DockerClient) -> None:
    [image] = client.images.list()
    assert image.tags == ["busybox:latest"]
    assert client.images.get("busybox").id == image.id
    assert client.images.get("busybox").attrs["Config"]["Cmd"] == ["sh"]
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("nothing:here")
    # docker save (images/{name}/get) and load back: the same image
    saved = b"".join(client.images.get("busybox").save())
    [loaded] = client.images.load(saved)
    assert loaded.id == image.id
    # a docker save tar that is not one: refused with the importer's reason, daemon fine
    bad = io.BytesIO()
    with tarfile.open(fileobj=bad, mode="w") as tar:
        data = b"not a manifest"
        entry = tarfile.TarInfo("manifest.json")
        entry.size = len(data)
        tar.addfile(entry, io.BytesIO(data))
    with pytest.raises(docker.errors.APIError) as unloadable:
        client.images.load(bad.getvalue())
    assert unloadable.value.status_code == 400
    assert client.ping()


def unique(prefix: str) -> str:
    return f"da2py{prefix}{secrets.token_hex(3)}"


def test_networks_and_volumes(client: docker.DockerClient) -> None:
    net = client.networks.create(unique("net"), driver="bridge", labels={"by": "py"},
                                 ipam=docker.types.IPAMConfig(pool_configs=[
                                     docker.types.IPAMPool(subnet="10.251.7.0/24")]))
    vol = client.volumes.create(unique("vol"), labels={"by": "py"})
    try:
        assert net.attrs["IPAM"]["Config"] == [{"Subnet": "10.251.7.0/24",
                                                "Gateway": "10.251.7.1"}]
        assert net.id in [n.id for n in client.networks.list(filters={"label": "by=py"})]
        box = client.containers.run(
            "busybox", ["sleep", "600"], detach=True, network=net.name,
            volumes={vol.name: {"bind": "/data", "mode": "rw"}},
            networking_config={net.name: client.api.create_endpoint_config(
                aliases=["pyalias"], ipv4_address="10.251.7.9")})
        try:
            box.reload()
            endpoint = box.attrs["NetworkSettings"]["Networks"][net.name]
            assert endpoint["IPAddress"] == "10.251.7.9"
            assert endpoint["Gateway"] == "10.251.7.1"
            assert endpoint["Aliases"] == ["pyalias", box.id[:12]]
            net.reload()
            assert list(net.containers) == [box]
            # Connected to the default bridge too: both in a listing's row, as dockerd's are.
            client.networks.get("bridge").connect(box)
            [row] = [r for r in client.api.containers() if r["Id"] == box.id]
            listed = row["NetworkSettings"]["Networks"]
            assert set(listed) == {net.name, "bridge"}
            assert listed[net.name]["MacAddress"] == "02:42:0a:fb:07:09"
            box.reload()
            inspected = box.attrs["NetworkSettings"]["Networks"]
            assert inspected["bridge"]["IPAddress"] == listed["bridge"]["IPAddress"] != ""
            assert inspected["bridge"]["EndpointID"] == listed["bridge"]["EndpointID"]
            assert box.exec_run(["sh", "-c", "echo v > /data/f"]).exit_code == 0
            assert client.volumes.get(vol.name).attrs["Labels"] == {"by": "py"}
            with pytest.raises(docker.errors.APIError) as busy:
                vol.remove()
            assert busy.value.status_code == 409
        finally:
            box.remove(force=True)
        assert client.containers.run("busybox", ["cat", "/data/f"], remove=True,
                                     volumes=[f"{vol.name}:/data:ro"]) == b"v\n"
    finally:
        net.remove()
        vol.remove()
    with pytest.raises(docker.errors.NotFound):
        client.networks.get(net.id)
    with pytest.raises(docker.errors.NotFound):
        client.volumes.get(vol.name)


def test_reconnected_to_its_network_a_container_keeps_its_ports(
        client: docker.DockerClient) -> None:
    """Compose 1.29 against docker 25 disconnects and connects a created container before its
    start: its published ports must survive that."""
    net = client.networks.create(unique("rc"))
    try:
        box = client.containers.create("busybox", ["sleep", "600"], network=net.name,
                                       ports={"80/tcp": None})
        try:
            client.api.disconnect_container_from_network(box.id, net.name)
            client.api.connect_container_to_network(box.id, net.name, aliases=["again"])
            box.start()
            box.reload()
            [bound] = box.attrs["NetworkSettings"]["Ports"]["80/tcp"]
            assert int(bound["HostPort"]) > 0
            assert box.attrs["NetworkSettings"]["Networks"][net.name]["IPAddress"]
        finally:
            box.remove(force=True)
    finally:
        net.remove()


def test_network_mode_container_joins_the_others_namespace(
        client: docker.DockerClient) -> None:
    web = client.containers.run("busybox", ["httpd", "-f", "-p", "127.0.0.1:8000", "-h",
                                            "/etc"], detach=True, name="pyweb")
    try:
        side = client.containers.run(
            "busybox", ["sh", "-c", "until wget -qO- http://127.0.0.1:8000/hostname; do "
                        "sleep 0.1; done"], detach=True, network_mode="container:pyweb")
        assert side.wait(timeout=30)["StatusCode"] == 0
        assert side.logs().decode().strip() == web.attrs["Config"]["Hostname"]
        side.reload()
        assert side.attrs["HostConfig"]["NetworkMode"] == "container:pyweb"
        assert side.attrs["NetworkSettings"]["Networks"] == {}
        with pytest.raises(docker.errors.APIError, match="--publish conflicts with it") as bad:
            client.containers.create("busybox", ["true"], network_mode="container:pyweb",
                                     ports={"80/tcp": 8080})
        assert bad.value.status_code == 400
        with pytest.raises(docker.errors.APIError, match="--mac-address conflicts with it"):
            client.api.create_container("busybox", ["true"], mac_address="02:42:ac:11:00:09",
                                        host_config=client.api.create_host_config(
                                            network_mode="container:pyweb"))
        with pytest.raises(docker.errors.APIError, match="shares the network of pyweb"):
            client.networks.get("bridge").connect(side)
        web.stop(timeout=0)
        with pytest.raises(docker.errors.APIError, match="cannot join the network of pyweb: "
                           "it is not running") as stopped:
            side.start()
        assert stopped.value.status_code == 409
        side.remove(force=True)
    finally:
        web.remove(force=True)


def test_healthcheck(client: docker.DockerClient) -> None:
    box = client.containers.run("busybox", ["sleep", "600"], detach=True,
                                healthcheck={"test": ["CMD", "true"], "interval": 500_000_000,
                                             "retries": 1})
    try:
        deadline = time.monotonic() + 60
        for event in client.events(decode=True, since=time.time() - 60,
                                   filters={"container": box.id}):
            if event["Action"] == "health_status: healthy" or time.monotonic() > deadline:
                break
        box.reload()
        assert box.attrs["State"]["Health"]["Status"] == "healthy"
        assert box in client.containers.list(filters={"health": "healthy"})
        assert box not in client.containers.list(filters={"health": "unhealthy"})
    finally:
        box.remove(force=True)


def test_build_tag_push_and_pull(client: docker.DockerClient,
                                 tmp_path_factory: pytest.TempPathFactory) -> None:
    why = available()
    if why is not None:
        missing(why)
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w:gz") as tar:
        text = b"FROM busybox\nRUN echo py > /made\nCMD [\"cat\", \"/made\"]\n"
        entry = tarfile.TarInfo("Dockerfile")
        entry.size = len(text)
        tar.addfile(entry, io.BytesIO(text))
    tag = unique("img") + ":b"
    image, logs = client.images.build(fileobj=io.BytesIO(context.getvalue()),
                                      custom_context=True, encoding="gzip", tag=tag)
    assert image.tags == [tag] and any("stream" in line for line in logs)
    assert client.containers.run(tag, remove=True) == b"py\n"
    with registry(tmp_path_factory.mktemp("dockerpy-registry")) as running:
        remote = f"{running.address}/{unique('repo')}"
        assert image.tag(remote, "v1")
        lines = list(client.images.push(remote, "v1", stream=True, decode=True,
                                        auth_config={"username": "u", "password": "p"}))
        assert lines[-1]["aux"]["Tag"] == "v1", lines
        client.images.remove(f"{remote}:v1")
        pulled = client.images.pull(remote, "v1")
        assert pulled.id == image.id
        with pytest.raises(docker.errors.NotFound):
            client.images.pull(f"{running.address}/absent", "v1")
    client.images.remove(tag)
    client.images.remove(f"{remote}:v1")
    assert client.images.prune(filters={"dangling": True})["SpaceReclaimed"] >= 0
