"""The registry verbs of the CLI: ``pull``, ``push``, ``tag``, ``login``, ``logout``, ``search``.

``pull`` and ``push`` run where the image store is: the worker or scheduler ``-H`` names pulls
into its own store (a scheduler's store serves the cluster's workers). The CLI sends the
credentials it keeps for the registry (``login``, a credential helper) with that one request.
``login`` and ``search`` talk to the registry from here: ``login`` checks the credentials before
it keeps them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from cli.client import MAX_REDIRECTS, Client, ShoalCommand, connect, host_option
from cli.registry_access import ca_text, options_for
from cli.registry_credentials import StoredLogin, erase_login, load_login, store_login
from cli.transfer_progress import TransferDisplay
from protocol.errors import (
    ChannelError,
    EndOfChannel,
    Unavailable,
)
from protocol.messages import (
    ImagePulled,
    ImagePushed,
    Message,
    Ok,
    PullImage,
    PushImage,
    TagImage,
    TransferProgress,
)
from protocol.refs import SenderRef

# Registers the error codes, so refusals show as RegistryUnauthorized, ManifestUnknown...
from worker.images import errors as _image_errors  # noqa: F401
from worker.images.registry import errors as _registry_errors  # noqa: F401
from worker.images.registry.names import (
    HUB_API_HOST,
    HUB_CONFIG_KEY,
    registry_key,
    remote_name,
)

M = TypeVar("M", bound=Message)

registry_options = [
    click.option("--ca", "ca_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                 default=None, help="A CA certificate (PEM) to trust for the registry."),
    click.option("--insecure-registry", "insecure", is_flag=True,
                 help="Allow plain http and unverified TLS for this registry."),
]


def with_registry_options(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(registry_options):
        command = option(command)
    return command


def transfer(client: Client, make: Callable[[SenderRef, SenderRef], Message], expect: type[M],
             display: TransferDisplay) -> M:
    """Send a pull or push (``make(progress, reply)``), show its progress, return its answer;
    a standby's refusal sends it again to the leader."""
    for _ in range(MAX_REDIRECTS + 1):
        session = client.session
        progress, reply = session.reply_inbox(), session.reply_inbox()
        session.send(make(progress, reply))
        try:
            while True:
                # An ended progress channel is "ready" for ever: wait on what it still holds.
                session.wait_for(lambda p=progress, r=reply:  # type: ignore[misc]
                                 (p.ready() and not p.exhausted()) or r.ready())
                while progress.ready() and not progress.exhausted():
                    try:
                        event = progress.recv()
                    except (EndOfChannel, ChannelError):
                        break
                    if isinstance(event, TransferProgress):
                        display.show(event)
                if reply.ready() and (progress.exhausted() or not progress.ready()):
                    break
            if client.redirected(reply):
                continue
            answer = reply.recv()
        finally:
            progress.close()
            reply.close()
        if not isinstance(answer, expect):
            raise ChannelError(f"expected {expect.__name__}, got {type(answer).__name__}")
        return answer
    raise Unavailable(f"no leader after {MAX_REDIRECTS} redirects")


def pull_image(client: Client, ref: str, *, platform: str = "", ca_file: Path | None = None,
               insecure: bool = False, quiet: bool = False, err: bool = False) -> ImagePulled:
    """Pull ``ref`` into the store of the service behind ``client``, showing progress (on
    stderr with ``err``, as ``run`` does for an image the service lacks)."""
    name = remote_name(ref)
    options = options_for(name, ca_file, insecure)
    if not quiet:
        click.echo(f"{name.reference}: Pulling from {name.repository}", err=err)
    with TransferDisplay(quiet=quiet, err=err) as display:
        pulled = transfer(client, lambda p, r: PullImage(ref=ref, platform=platform,
                                                         registry=options, progress=p,
                                                         reply=r), ImagePulled, display)
    if not quiet:
        click.echo(f"Digest: {pulled.digest}", err=err)
        status = "Downloaded newer image" if pulled.downloaded else "Image is up to date"
        click.echo(f"Status: {status} for {name}", err=err)
    if not err:
        click.echo(f"{name.domain}/{name.repository}" + (f":{name.tag}" if name.tag else
                                                          f"@{name.digest}"))
    return pulled


@click.command(cls=ShoalCommand)
@host_option
@click.option("--platform", default="", metavar="OS/ARCH[/VARIANT]",
              help="The platform to pull from a multi-platform image (default: the node's).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image's name.")
@with_registry_options
@click.argument("name")
def pull(host: str | None, name: str, platform: str, quiet: bool, ca_file: Path | None,
         insecure: bool) -> None:
    """Pull an image from a registry into the worker's or the cluster's store."""
    with connect(host) as client:
        pull_image(client, name, platform=platform, ca_file=ca_file, insecure=insecure,
                   quiet=quiet)


@click.command(cls=ShoalCommand)
@host_option
@click.option("-q", "--quiet", is_flag=True, help="Print only the pushed digest.")
@click.option("--chunk-size", type=click.IntRange(0, 1 << 30), default=0, metavar="BYTES",
              help="Upload blobs in chunks of this size (default: one request each).")
@with_registry_options
@click.argument("name")
def push(host: str | None, name: str, quiet: bool, chunk_size: int, ca_file: Path | None,
         insecure: bool) -> None:
    """Push an image from the worker's or the cluster's store to a registry."""
    with connect(host) as client:
        push_image(client, name, quiet=quiet, chunk_size=chunk_size, ca_file=ca_file,
                   insecure=insecure)


def push_image(client: Client, name: str, *, quiet: bool = False, chunk_size: int = 0,
               ca_file: Path | None = None, insecure: bool = False) -> ImagePushed:
    """Push the stored image ``name`` to its registry, showing progress (``quiet``: only
    the digest)."""
    remote = remote_name(name)
    options = options_for(remote, ca_file, insecure)
    if not quiet:
        click.echo(f"The push refers to repository [{remote.domain}/{remote.repository}]")
    with TransferDisplay(quiet=quiet) as display:
        pushed = transfer(client, lambda p, r: PushImage(ref=name, registry=options,
                                                         chunk_size=chunk_size, progress=p,
                                                         reply=r), ImagePushed, display)
    if quiet:
        click.echo(pushed.digest)
    else:
        click.echo(f"{remote.reference}: digest: {pushed.digest} size: {pushed.size}")
    return pushed


def tag_image(host: str | None, source: str, target: str) -> None:
    with connect(host) as client:
        client.ask(lambda r: TagImage(source=source, target=target, reply=r), Ok)


@click.command(cls=ShoalCommand)
@host_option
@click.argument("source")
@click.argument("target")
def tag(host: str | None, source: str, target: str) -> None:
    """Give the image SOURCE names another name, TARGET (name[:tag])."""
    tag_image(host, source, target)


def _server_host(server: str | None) -> tuple[str, str]:
    """(API host, config key) of ``login``'s SERVER argument (Docker Hub when absent)."""
    key = registry_key(server or "docker.io")
    return (HUB_API_HOST if key == HUB_CONFIG_KEY else key), key


@click.command(cls=ShoalCommand)
@click.option("-u", "--username", default="", help="Username.")
@click.option("-p", "--password", default="", help="Password (prefer --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@with_registry_options
@click.argument("server", required=False)
def login(server: str | None, username: str, password: str, password_stdin: bool,
          ca_file: Path | None, insecure: bool) -> None:
    """Log in to a registry (Docker Hub without SERVER): check and keep the credentials."""
    from worker.images.registry.login import check_login
    from worker.images.registry.service import registry_access

    if password_stdin:
        if password:
            raise click.UsageError("--password and --password-stdin are exclusive")
        password = sys.stdin.read().rstrip("\r\n")
    if not username:
        username = click.prompt("Username")
    if not password:
        password = click.prompt("Password", hide_input=True)
    host, key = _server_host(server)
    login_data = StoredLogin(username, password)
    access = registry_access(login_data.options(ca_pem=ca_text(ca_file), insecure=insecure))
    import asyncio  # here: the other verbs (run's pull access among them) never need it

    asyncio.run(check_login(host, access))
    where = store_login(key, login_data)
    click.echo(f"Login Succeeded (credentials kept in {where})")


@click.command(cls=ShoalCommand)
@click.argument("server", required=False)
def logout(server: str | None) -> None:
    """Forget the credentials kept for a registry (Docker Hub without SERVER)."""
    _, key = _server_host(server)
    if erase_login(key):
        click.echo(f"Removing login credentials for {key}")
    else:
        click.echo(f"Not logged in to {key}")


@click.command(cls=ShoalCommand)
@click.option("--limit", type=click.IntRange(1, 100), default=25, help="Results at most.")
@click.option("--registry", "server", default=None, help="Search this registry "
                                                          "(default: Docker Hub).")
@with_registry_options
@click.argument("term")
def search(term: str, limit: int, server: str | None, ca_file: Path | None,
           insecure: bool) -> None:
    """Search a registry for images (where the registry offers docker's search)."""
    from cli.output import table
    from worker.images.registry.login import search as search_registry
    from worker.images.registry.service import registry_access

    host, key = _server_host(server)
    access = registry_access(load_login(key).options(ca_pem=ca_text(ca_file),
                                                     insecure=insecure))
    import asyncio  # here: as in login

    hits = asyncio.run(search_registry(host, term, access, limit))
    table(["NAME", "DESCRIPTION", "STARS", "OFFICIAL"],
          [[h.name, h.description[:45], str(h.star_count), "[OK]" if h.is_official else ""]
           for h in hits])
