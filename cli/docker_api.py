"""``--docker-api ADDR`` on ``shoal worker`` and ``shoal scheduler``: the Docker Engine API
served beside the daemon (``dockerapi``), reaching it through the daemon's root-only ipc socket.

Default ``unix://STATE_DIR/docker.sock`` (mode 0660, like docker.sock), or none with ``--ipc
none`` (the API reaches its daemon through that socket); ``none`` turns it off;
``tcp://HOST:PORT`` needs ``--docker-tlscacert/--docker-tlscert/--docker-tlskey`` (clients then
present a certificate that CA signed, docker's ``--tlsverify``) or ``--insecure``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from dockerapi.address import DockerListen, parse_docker_api, tls_files
from protocol.errors import InvalidArgument

F = TypeVar("F", bound=Callable[..., object])
SOCKET_NAME = "docker.sock"


def docker_api_options(function: F) -> F:
    """The options: ``docker_api``, ``docker_tlscacert``, ``docker_tlscert``, ``docker_tlskey``."""
    path = click.Path(dir_okay=False, exists=True, path_type=Path)
    for option in reversed([
        click.option("--docker-api", "docker_api", default="", metavar="ADDR",
                     help="Serve the Docker Engine API here: unix:///PATH, tcp://HOST:PORT "
                          "(with the --docker-tls* files or --insecure) or none (default: "
                          f"unix://STATE_DIR/{SOCKET_NAME}, mode 0660; none with --ipc none)."),
        click.option("--docker-tlscacert", type=path, default=None,
                     help="CA certificate that signs the Docker API's clients' certificates."),
        click.option("--docker-tlscert", type=path, default=None,
                     help="The Docker API's TLS certificate."),
        click.option("--docker-tlskey", type=path, default=None,
                     help="The Docker API's TLS key."),
    ]):
        function = option(function)
    return function


def docker_listen(value: str, state_dir: Path, cacert: Path | None, cert: Path | None,
                  key: Path | None, insecure: bool, ipc: str) -> DockerListen | None:
    """The parsed option (None: off); a usage error says what is wrong."""
    if ipc == "none" and not value:
        return None  # the API reaches its daemon through the ipc socket: none, no API
    text = value or f"unix://{state_dir.resolve() / SOCKET_NAME}"
    try:
        listen = parse_docker_api(text, tls=tls_files(cacert, cert, key), insecure=insecure)
    except InvalidArgument as exc:
        raise click.UsageError(str(exc)) from None
    if listen is not None and ipc == "none":
        raise click.UsageError("--docker-api reaches the daemon through its --ipc socket: "
                               "give --docker-api none with --ipc none")
    return listen
