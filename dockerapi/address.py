"""``--docker-api ADDR``: where the Docker API listens, and how it is protected.

``unix:///path`` (docker.sock's model: mode 0660, root and the ``shoal`` group), ``tcp://HOST:PORT``
only with TLS and client certificates (docker's ``--tlsverify``) or, explicitly, insecure; ``none``
turns the API off. Pure parsing: nothing is bound here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from protocol.errors import InvalidArgument


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Docker's ``--tlsverify`` trio: the CA that signs clients' certificates, and ours."""

    cacert: Path
    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class DockerListen:
    """A parsed ``--docker-api``: a unix socket path, or a tcp host and port (0: any free one)."""

    path: Path | None = None
    host: str = ""
    port: int = 0
    tls: TlsFiles | None = None


def parse_docker_api(text: str, *, tls: TlsFiles | None = None,
                     insecure: bool = False) -> DockerListen | None:
    """``none`` → None; ``unix://PATH``; ``tcp://HOST:PORT`` with ``tls`` or ``insecure``."""
    if text == "none":
        return None
    if text.startswith("unix://"):
        path = text.removeprefix("unix://")
        if not path.startswith("/"):
            raise InvalidArgument(f"--docker-api {text}: a unix socket needs an absolute path")
        if tls is not None:
            raise InvalidArgument("--docker-tls* options are for a tcp:// --docker-api")
        return DockerListen(path=Path(path))
    if text.startswith("tcp://"):
        host, sep, port = text.removeprefix("tcp://").rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise InvalidArgument(f"--docker-api {text}: expected tcp://HOST:PORT")
        if tls is None and not insecure:
            raise InvalidArgument(
                f"--docker-api {text}: anyone who reaches a tcp Docker API runs containers as "
                "root; give --docker-tlscacert, --docker-tlscert and --docker-tlskey (clients "
                "then need a certificate signed by that CA), or --insecure to allow it")
        return DockerListen(host=host, port=int(port), tls=tls)
    raise InvalidArgument(f"--docker-api {text}: expected unix:///PATH, tcp://HOST:PORT or none")


def tls_files(cacert: Path | None, cert: Path | None, key: Path | None) -> TlsFiles | None:
    """All three or none of ``--docker-tlscacert/--docker-tlscert/--docker-tlskey``."""
    given = [p for p in (cacert, cert, key) if p is not None]
    if not given:
        return None
    if cacert is None or cert is None or key is None:
        raise InvalidArgument("--docker-tlscacert, --docker-tlscert and --docker-tlskey go "
                              "together: client certificates are checked against the CA")
    return TlsFiles(cacert=cacert, cert=cert, key=key)
