"""What a command that makes a container sends so that workers can pull its image: the
credentials the CLI keeps for the image's registry (``login``, a credential helper), with the
CA and insecure flags of a pull or push. Apart from the registry verbs (``cli.registry``), so
that ``run`` and ``create`` load none of them: they ask for this on every container, and
load the rest only when a login is kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol.errors import InvalidArgument

if TYPE_CHECKING:
    from pathlib import Path

    from cli.client import Client
    from protocol.messages import RegistryOptions
    from worker.images.registry.names import RemoteName

MAX_CA_BYTES = 64 * 1024


def ca_text(ca_file: Path | None) -> str:
    if ca_file is None:
        return ""
    data = ca_file.read_bytes()[:MAX_CA_BYTES + 1]
    if len(data) > MAX_CA_BYTES or b"-----BEGIN CERTIFICATE-----" not in data:
        raise InvalidArgument(f"--ca {ca_file}: expected a PEM certificate of at most "
                              f"{MAX_CA_BYTES} bytes")
    return data.decode("ascii", "replace")


def options_for(name: RemoteName, ca_file: Path | None, insecure: bool) -> RegistryOptions:
    """What a pull or push of ``name`` sends: the kept credentials, the CA, insecure."""
    from cli.registry_credentials import load_login

    return load_login(name.config_key).options(ca_pem=ca_text(ca_file), insecure=insecure)


def cluster_pull_access(client: Client, image: str, *,
                        scheduler: bool | None = None) -> RegistryOptions | None:
    """What ``run``/``create`` through a scheduler sends for the workers that pull ``image``:
    the kept login for its registry. None when there is none (an anonymous pull needs
    nothing), when ``image`` names no registry image, or when the service is a worker (the
    CLI pulls into a worker itself); ``scheduler`` None: ask the service which it is."""
    from cli.registry_credentials import keeps_no_login

    if keeps_no_login():  # the common case: no image name to parse, nothing more to load
        return None
    from protocol.messages import GetVersion, VersionInfo
    from worker.images.digest import is_digest
    from worker.images.errors import InvalidReference
    from worker.images.registry.names import remote_name

    if is_digest(image):
        return None
    try:
        name = remote_name(image)
    except InvalidReference:
        return None
    options = options_for(name, None, False)
    if options.empty:
        return None
    if scheduler is None:
        version = client.ask(lambda r: GetVersion(reply=r), VersionInfo)
        scheduler = version.component == "scheduler"
    return options if scheduler else None
