"""Every error path of the Docker API answered with Docker's status and message, and garbage
HTTP (bad JSON, huge bodies and heads, slow or silent peers, invalid UTF-8) answered without
hurting the daemon. A process-driver worker: no image, no root needed."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.docker_api import docker_worker, raw_exchange, status_and_json
from tests.helpers.worker_process import Worker


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    with docker_worker(tmp_path_factory.mktemp("apierrors") / "worker", "process") as worker:
        yield worker


def sock_path(node: Worker) -> str:
    return node.docker.removeprefix("unix://")


def call(node: Worker, method: str, path: str, body: Any = None,
         raw_body: bytes | None = None) -> tuple[int, dict[str, str], Any]:
    data = raw_body if raw_body is not None else (
        json.dumps(body).encode() if body is not None else b"")
    head = (f"{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode()
    return status_and_json(raw_exchange(sock_path(node), head + data))


def test_ping_and_headers_with_and_without_a_version(node: Worker) -> None:
    for path in ("/_ping", "/v1.45/_ping", "/v1.24/_ping"):
        answer = raw_exchange(sock_path(node), f"GET {path} HTTP/1.1\r\nHost: d\r\n"
                              "Connection: close\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 200"), answer
        assert answer.endswith(b"\r\n\r\nOK")
        headers = answer.partition(b"\r\n\r\n")[0].lower()
        assert b"api-version: 1.45" in headers and b"ostype: linux" in headers
        assert b"server: shoal" in headers
    head = raw_exchange(sock_path(node), b"HEAD /_ping HTTP/1.1\r\nHost: d\r\n"
                        b"Connection: close\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n")


# (method, path, body, status, message or the start of it)
ERRORS: list[tuple[str, str, Any, int, str]] = [
    ("GET", "/v1.99/version", None, 400, "client version 1.99 is too new. Maximum supported "
                                         "API version is 1.45"),
    ("GET", "/v1.12/version", None, 400, "client version 1.12 is too old"),
    ("GET", "/nothing/here", None, 404, "page not found"),
    ("GET", "/containers/nope/json", None, 404, "No such container: nope"),
    ("POST", "/containers/nope/start", None, 404, "No such container: nope"),
    ("POST", "/containers/nope/stop", None, 404, "No such container: nope"),
    ("POST", "/containers/nope/kill", None, 404, "No such container: nope"),
    ("POST", "/containers/nope/restart", None, 404, "No such container: nope"),
    ("POST", "/containers/nope/wait", None, 404, "No such container: nope"),
    ("DELETE", "/containers/nope", None, 404, "No such container: nope"),
    ("GET", "/containers/nope/logs?stdout=1", None, 404, "No such container: nope"),
    ("GET", "/containers/nope/top", None, 404, "No such container: nope"),
    ("POST", "/containers/nope/exec", {"Cmd": ["true"]}, 404, "No such container: nope"),
    ("POST", "/containers/nope/resize?h=10&w=10", None, 404, "No such container: nope"),
    ("POST", "/containers/nope/attach?stream=1", None, 404, "No such container: nope"),
    ("GET", "/containers/nope/stats", None, 404, "No such container: nope"),
    ("POST", "/exec/nope/start", {}, 404, "No such exec instance: nope"),
    ("GET", "/exec/nope/json", None, 404, "No such exec instance: nope"),
    ("GET", "/images/nope:1/json", None, 404, "No such image: nope:1"),
    ("DELETE", "/images/nope:1", None, 404, "No such image: nope:1"),
    ("GET", "/containers/json?filters=%7Bbad", None, 400, "invalid filters"),
    ("GET", "/containers/json?filters=%7B%22colour%22%3A%5B%22red%22%5D%7D", None, 400,
     "invalid filter 'colour'"),
    ("GET", "/containers/json?limit=many", None, 400, "invalid value for limit"),
    ("POST", "/containers/create", {}, 400, "Config.Image: an image is required"),
    ("POST", "/containers/create?name=a%20b", {"Image": "busybox"}, 400,
     "Invalid container name (a b)"),
    ("POST", "/containers/create", {"Image": "busybox", "HostConfig": {
        "CapAdd": ["NET_ADMIN"], "CapDrop": ["NET_ADMIN"]}},
     400, "invalid cap_add: CAP_NET_ADMIN both added and dropped"),
    ("POST", "/containers/create", {"Image": "busybox", "HostConfig": {
        "Devices": [{"PathOnHost": "/dev/fuse", "CgroupPermissions": "rwx"}]}},
     400, "invalid container config"),
    ("POST", "/containers/create", {"Image": "busybox", "Healthcheck": {"Test": ["CMD", "x"],
                                                                       "Retries": "3"}},
     400, "Healthcheck.Retries: expected a whole number"),
    ("POST", "/containers/create", {"Image": "busybox", "HostConfig": {"Binds": ["a b:/d"]}},
     400, "HostConfig.Binds: 'a b' is not a volume name"),
    ("POST", "/containers/create", {"Image": "busybox", "HostConfig": {"Binds": ["data"]}},
     400, "invalid volume specification: 'data'"),
    ("POST", "/containers/create", {"Image": "busybox", "HostConfig": {
        "Tmpfs": {"/t": "size=lots"}}}, 400, "HostConfig.Tmpfs: bad size 'lots'"),
    ("POST", "/containers/create", {"Image": "busybox", "HostConfig": {
        "Mounts": [{"Type": "volume", "Target": "/d"}]}}, 400,
     "HostConfig.Mounts: a volume needs a Source"),
    ("POST", "/containers/create", {"Image": "busybox", "HostConfig": {
        "Mounts": [{"Type": "npipe", "Source": "x", "Target": "/d"}]}}, 400,
     "HostConfig.Mounts: type 'npipe' is not supported"),
    ("POST", "/containers/create", {"Image": "busybox", "NetworkingConfig": {
        "EndpointsConfig": {"a": {}, "b": {}}}}, 400,
     "Container cannot be connected to network endpoints: a, b"),
    ("POST", "/containers/create", {"Image": "busybox", "HostConfig": {"NetworkMode": "a"},
                                    "NetworkingConfig": {"EndpointsConfig": {"b": {}}}}, 400,
     "NetworkingConfig names network 'b', but HostConfig.NetworkMode is 'a'"),
    ("POST", "/containers/create", {"Image": "busybox", "Volumes": {"/data": {}}}, 400,
     "Config.Volumes: anonymous volumes are not supported"),
    ("POST", "/containers/create", {"Image": "busybox",
                                    "HostConfig": {"RestartPolicy": {"Name": "sometimes"}}},
     400, "invalid container config"),
    ("POST", "/containers/create", {"Image": "busybox", "HostConfig": {"Memory": "lots"}},
     400, "Memory: expected a whole number"),
    ("POST", "/containers/create", {"Image": "busybox", "HostConfig": {
        "LogConfig": {"Type": "syslog", "Config": {}}}}, 400, "HostConfig.LogConfig: syslog: "
                                                             "not supported: shoal keeps every "
                                                             "container's log as json-file"),
    ("POST", "/containers/create", {"Image": "busybox", "HostConfig": {
        "SecurityOpt": ["apparmor=x"]}}, 400, "HostConfig.SecurityOpt: 'apparmor=x' is not "
                                              "supported"),
    ("POST", "/containers/create", {"Image": "busybox", "HostConfig": {
        "NetworkMode": "container:db", "Dns": ["192.0.2.1"]}}, 400,
     "invalid dns: a container on --network container:db shares its network: --dns "
     "conflicts with it"),
    ("POST", "/containers/create", {"Image": "busybox", "Env": ["affinity:container==db"]},
     400, "placement rules (container==db) choose among a cluster's nodes"),
    ("POST", "/containers/create", [1, 2], 400, "body: expected a JSON object"),
    ("POST", "/images/create?fromSrc=-", None, 501,
     "shoal's Docker API does not serve importing a rootfs tar"),
    ("POST", "/images/create", None, 400, "fromImage is required"),
    ("POST", "/images/nope:1/tag?repo=x&tag=y", None, 404, "No such image: nope:1"),
    ("POST", "/images/busybox/tag", None, 400, "repository name (repo) is required"),
    ("POST", "/images/prune?filters=%7B%22until%22%3A%5B%2210m%22%5D%7D", None, 400,
     "image prune filters until and label are not supported"),
    ("GET", "/images/nope:1/history", None, 404, "No such image: nope:1"),
    ("GET", "/containers/nope/archive?path=/etc", None, 404, "No such container: nope"),
    ("PUT", "/containers/nope/archive?path=/etc", None, 404, "No such container: nope"),
    ("GET", "/containers/nope/export", None, 404, "No such container: nope"),
    ("GET", "/system/df?type=disks", None, 400, "unknown type: 'disks'"),
    ("POST", "/build?version=2", None, 400, "build parameter version='2' is not supported"),
    ("POST", "/build?squash=1", None, 400, "build parameter squash='1' is not supported"),
    ("POST", "/build", None, 400, "the build context is not a tar"),
    ("GET", "/networks/x", None, 404, "network x not found"),
    ("POST", "/networks/create", {}, 400, "network name is required"),
    ("POST", "/networks/create", {"Name": "host"}, 403, "host is a pre-defined network"),
    ("POST", "/networks/create", {"Name": "n", "Driver": "macvlan"}, 400,
     "network driver 'macvlan' is not supported"),
    ("POST", "/networks/create", {"Name": "n", "Driver": "overlay",
                                  "Options": {"encrypted": ""}}, 400,
     "--opt encrypted: overlay encryption (IPsec between the hosts for VXLAN traffic) is not "
     "built"),
    ("POST", "/networks/create", {"Name": "n", "Options": {"com.docker.network.mtu": "1"}}, 400,
     "--opt 'com.docker.network.mtu': shoal's network drivers take no options"),
    ("DELETE", "/networks/none", None, 403, "none is a pre-defined network"),
    ("GET", "/networks?filters=%7B%22colour%22%3A%5B%22x%22%5D%7D", None, 400,
     "invalid filter 'colour'"),
    ("POST", "/volumes/create", {"Driver": "nfs"}, 400, "volume driver 'nfs' is not supported"),
    ("POST", "/volumes/create", {"Name": "a b"}, 400, "invalid volume"),
    ("GET", "/events?filters=%7B%22type%22%3A%5B%22a%22%2C%22b%22%5D%7D", None, 400,
     "filter 'type': only one value per key is supported"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), ERRORS,
                         ids=[f"{m} {p[:50]}" for m, p, *_ in ERRORS])
def test_error_answers(node: Worker, method: str, path: str, body: Any, status: int,
                       message: str) -> None:
    got, headers, answer = call(node, method, path, body)
    assert got == status, answer
    assert headers["content-type"].startswith("application/json")
    assert answer["message"].startswith(message), answer["message"]


def test_conflicts(node: Worker) -> None:
    status, _, created = call(node, "POST", "/containers/create?name=dup",
                              {"Image": "any", "Cmd": ["sleep", "60"]})
    assert status == 201, created
    try:
        again = call(node, "POST", "/containers/create?name=dup", {"Image": "any",
                                                                   "Cmd": ["true"]})
        assert again[0] == 409 and "already in use" in again[2]["message"]
        killed = call(node, "POST", "/containers/dup/kill")
        assert killed[0] == 409 and "is not running" in killed[2]["message"]
        exec_ = call(node, "POST", "/containers/dup/exec", {"Cmd": ["true"]})
        assert exec_[0] == 409 and "is not running" in exec_[2]["message"]
        assert call(node, "POST", "/containers/dup/start")[0] == 204
        assert call(node, "POST", "/containers/dup/start")[0] == 304  # already running
        removed = call(node, "DELETE", "/containers/dup")
        assert removed[0] == 409 and "You cannot remove a running container" in \
            removed[2]["message"]
    finally:
        assert call(node, "DELETE", "/containers/dup?force=True")[0] == 204


@pytest.mark.parametrize(("value", "forced"), [
    ("1", True), ("true", True), ("True", True), ("yes", True), ("0", False),
    ("false", False), ("False", False), ("no", False), ("none", False), ("", False)])
def test_query_booleans_as_docker_reads_them(node: Worker, value: str, forced: bool) -> None:
    status, _, created = call(node, "POST", "/containers/create",
                              {"Image": "any", "Cmd": ["sleep", "60"]})
    assert status == 201, created
    cid = created["Id"]
    call(node, "POST", f"/containers/{cid}/start")
    removed = call(node, "DELETE", f"/containers/{cid}?force={value}")
    assert removed[0] == (204 if forced else 409)
    call(node, "DELETE", f"/containers/{cid}?force=1")


def test_bad_json_and_huge_bodies(node: Worker) -> None:
    bad = call(node, "POST", "/containers/create", raw_body=b"{\"Image\": ")
    assert bad[0] == 400 and bad[2]["message"].startswith("invalid JSON")
    not_utf8 = call(node, "POST", "/containers/create", raw_body=b"{\"Image\": \"\xff\xfe\"}")
    assert not_utf8[0] == 400
    huge = b"{\"Image\": \"" + b"a" * (2 << 20) + b"\"}"
    too_big = call(node, "POST", "/containers/create", raw_body=huge)
    assert too_big[0] == 413
    assert call(node, "GET", "/_ping")[0] == 200


def test_garbage_requests(node: Worker) -> None:
    path = sock_path(node)
    for garbage in (b"\x00\x01\x02 nonsense\r\n\r\n", b"GET /_ping HTTP/9.9\r\n\r\n",
                    b"GET /containers/\xff\xfe/json HTTP/1.1\r\nHost: d\r\n\r\n",
                    b"GET /_ping HTTP/1.1\r\nX-Long: " + b"a" * 100_000 + b"\r\n\r\n",
                    b"POST /containers/create HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                    b"POST /containers/create HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"zz\r\n"):
        answer = raw_exchange(path, garbage, timeout=5)
        status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.") else 0
        assert status in (400, 404, 413, 431, 505) or answer == b"", answer[:200]
    assert call(node, "GET", "/_ping")[0] == 200


def test_silent_and_slow_peers_cost_nothing_to_others(node: Worker) -> None:
    """A hundred connections that send half a request head and stop: the API still answers
    at once, and every one of them is still held (not crashed, not answered)."""
    peers = []
    try:
        for _ in range(100):
            peer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            peer.connect(sock_path(node))
            peer.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\nX-Slow: ")
            peers.append(peer)
        assert call(node, "GET", "/_ping")[0] == 200
        peers[0].sendall(b"done\r\nConnection: close\r\n\r\n")  # a slow one finishes
        peers[0].settimeout(10)
        assert peers[0].recv(100).startswith(b"HTTP/1.1 200")
    finally:
        for peer in peers:
            peer.close()


def test_socket_is_root_only(node: Worker) -> None:
    mode = Path(sock_path(node)).stat().st_mode & 0o777
    assert mode == 0o660


def test_exec_start_without_upgrade_streams_the_body(node: Worker) -> None:
    """The non-upgraded form: 200, Docker's multiplexed stream as the body, to the close;
    with the upgrade: 101 and the same frames."""
    status, _, created = call(node, "POST", "/containers/create",
                              {"Image": "any", "Cmd": ["sleep", "60"]})
    assert status == 201, created
    cid = created["Id"]
    try:
        assert call(node, "POST", f"/containers/{cid}/start")[0] == 204
        for upgrade, expected in ((b"", b"HTTP/1.1 200"),
                                  (b"Connection: Upgrade\r\nUpgrade: tcp\r\n", b"HTTP/1.1 101")):
            _, _, made = call(node, "POST", f"/containers/{cid}/exec",
                              {"Cmd": ["sh", "-c", "echo out; echo err >&2"],
                               "AttachStdout": True, "AttachStderr": True})
            body = b'{"Detach": false, "Tty": false}'
            answer = raw_exchange(sock_path(node), (
                f"POST /v1.41/exec/{made['Id']}/start HTTP/1.1\r\nHost: d\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                ).encode() + upgrade + b"\r\n" + body)
            head, _, stream = answer.partition(b"\r\n\r\n")
            assert head.startswith(expected), head
            assert b"application/vnd.docker.multiplexed-stream" in head
            assert b"transfer-encoding" not in head.lower()
            frames = sorted({stream[i:i + 12] for i in range(0, len(stream), 12)})
            assert frames == [b"\x01\x00\x00\x00\x00\x00\x00\x04out\n",
                              b"\x02\x00\x00\x00\x00\x00\x00\x04err\n"], stream
            inspected = call(node, "GET", f"/exec/{made['Id']}/json")[2]
            assert (inspected["ExitCode"], inspected["Running"]) == (0, False)
    finally:
        call(node, "DELETE", f"/containers/{cid}?force=1")
