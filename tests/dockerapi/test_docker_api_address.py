"""``--docker-api``: the unix socket by default, ``none``, and tcp only with TLS client
certificates (docker's ``--tlsverify``) or ``--insecure``."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from dockerapi.address import DockerListen, TlsFiles, parse_docker_api, tls_files
from protocol.errors import InvalidArgument
from tests.helpers.worker_process import ROOT, Worker

TLS = TlsFiles(Path("/ca.pem"), Path("/cert.pem"), Path("/key.pem"))


@pytest.mark.parametrize(("text", "tls", "insecure", "parsed"), [
    ("none", None, False, None),
    ("unix:///run/x.sock", None, False, DockerListen(path=Path("/run/x.sock"))),
    ("tcp://127.0.0.1:2376", TLS, False, DockerListen(host="127.0.0.1", port=2376, tls=TLS)),
    ("tcp://[::1]:0", None, True, DockerListen(host="::1", port=0)),
])
def test_parsed(text: str, tls: TlsFiles | None, insecure: bool,
                parsed: DockerListen | None) -> None:
    assert parse_docker_api(text, tls=tls, insecure=insecure) == parsed


@pytest.mark.parametrize(("text", "tls", "message"), [
    ("tcp://0.0.0.0:2375", None, "runs containers as root"),
    ("unix://relative.sock", None, "absolute path"),
    ("unix:///x.sock", TLS, "for a tcp:// --docker-api"),
    ("tcp://host", None, "expected tcp://HOST:PORT"),
    ("http://x:1", None, "expected unix:///PATH"),
])
def test_refused(text: str, tls: TlsFiles | None, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(")):
        parse_docker_api(text, tls=tls)


def test_tls_files_go_together() -> None:
    assert tls_files(None, None, None) is None
    with pytest.raises(InvalidArgument, match="go together"):
        tls_files(Path("/ca"), None, None)


def test_worker_refuses_plain_tcp_and_a_docker_api_without_ipc(tmp_path: Path) -> None:
    for extra, said in ((["--docker-api", "tcp://127.0.0.1:0"], "--docker-tlscacert"),
                        (["--ipc", "none", "--docker-api", "unix:///tmp/x.sock"],
                         "give --docker-api none with --ipc none")):
        done = subprocess.run(
            [sys.executable, "-m", "cli", "worker", "--state-dir", str(tmp_path / "w"),
             "--driver", "process", *extra], cwd=ROOT, capture_output=True, text=True,
            timeout=30)
        assert done.returncode == 2 and said in done.stderr, done.stderr


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_certificates(where: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, both signed by it."""
    paths = {n: where / f"{n}.pem" for n in ("ca", "ca-key", "server", "server-key",
                                            "client", "client-key")}
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
             "/CN=test-ca", "-keyout", str(paths["ca-key"]), "-out", str(paths["ca"]))
    for name, extension in (("server", "subjectAltName=IP:127.0.0.1"),
                            ("client", "extendedKeyUsage=clientAuth")):
        request = where / f"{name}.csr"
        (where / f"{name}.ext").write_text(extension + "\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout",
                 str(paths[f"{name}-key"]), "-out", str(request))
        _openssl("x509", "-req", "-in", str(request), "-CA", str(paths["ca"]), "-CAkey",
                 str(paths["ca-key"]), "-CAcreateserial", "-days", "1", "-out",
                 str(paths[name]), "-extfile", str(where / f"{name}.ext"))
    return paths


def test_tcp_with_client_certificates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # requests lets these override the CA a session is given (docker-py's ca_cert)
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    certs = make_certificates(tmp_path)
    node = Worker(tmp_path / "w", "process", args=(
        "--docker-api", "tcp://127.0.0.1:0", "--docker-tlscacert", str(certs["ca"]),
        "--docker-tlscert", str(certs["server"]), "--docker-tlskey", str(certs["server-key"])))
    node.start()
    try:
        assert node.docker.startswith("tcp://127.0.0.1:")
        host, port = node.docker.removeprefix("tcp://").split(":")
        tls = docker.tls.TLSConfig(client_cert=(str(certs["client"]),
                                                str(certs["client-key"])),
                                   ca_cert=str(certs["ca"]), verify=True)
        client = docker.DockerClient(base_url=f"https://{host}:{port}", tls=tls)
        assert client.ping()
        client.close()
        # without a client certificate the handshake itself is refused
        assert ping_without_certificate(host, int(port), certs["ca"]) is None
    finally:
        node.kill()


def ping_without_certificate(host: str, port: int, ca: Path) -> bytes | None:
    """What a TLS client with no certificate of its own is answered (None: nothing)."""
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with socket.create_connection((host, port), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname=host) as wrapped:
            wrapped.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
            return wrapped.recv(100) or None  # TLS 1.3: the refusal comes on the first read
    except (ssl.SSLError, ConnectionError):
        return None
