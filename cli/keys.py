"""Who may talk to the cluster: ``join-token``, ``enroll``, ``key ls`` and ``key rm``.

A manager prints a join token per role (``shoal join-token worker|client``). A worker uses
its token once, with ``shoal worker --join ADDR --token T``; a person uses a client token once,
with ``shoal enroll ADDR --token T``, which keeps this account's key in ``~/.shoal`` (docker
keeps its certificates in ``~/.docker``). Revoking a key (``shoal key rm``) cuts its sessions
at once.
"""

from __future__ import annotations

import getpass
import socket

import click

from cli.client import ShoalCommand, connect, host_addresses, host_option
from cli.output import as_json, table
from protocol.errors import ConnectFailed, ShoalError
from protocol.messages import (
    Enroll,
    Enrolled,
    GetJoinToken,
    JoinToken,
    KeyList,
    ListKeys,
    Ok,
    RevokeKey,
)


@click.command("join-token", cls=ShoalCommand)
@host_option
@click.argument("role", type=click.Choice(["worker", "client", "manager"]))
@click.option("--rotate", is_flag=True,
              help="Replace the token first: the old one stops working (keys it enrolled "
                   "stay).")
@click.option("-q", "--quiet", is_flag=True, help="Print the token only.")
def join_token(host: str | None, role: str, rotate: bool, quiet: bool) -> None:
    """Print the token that enrolls a worker or a client."""
    with connect(host) as client:
        answer = client.ask(lambda r: GetJoinToken(role=role, rotate=rotate, reply=r),
                            JoinToken)
    if quiet:
        click.echo(answer.token)
        return
    if role == "worker":
        click.echo("To add a worker to this cluster, run on its host:\n\n"
                   f"    shoal worker --join ADDRESS --token {answer.token}\n")
    else:
        click.echo("To let a person use this cluster from another account or host, run "
                   f"there:\n\n    shoal enroll ADDRESS --token {answer.token}\n")


@click.command("enroll", cls=ShoalCommand)
@click.argument("address", metavar="ADDR[,ADDR...]")
@click.option("--token", required=True, envvar="SHOAL_JOIN_TOKEN",
              help="A client token (shoal join-token client) ($SHOAL_JOIN_TOKEN).")
@click.option("--name", default="", help="A name for this key in `shoal key ls` (default: "
                                         "USER@HOST).")
def enroll(address: str, token: str, name: str) -> None:
    """Enroll this account's key as a client of the cluster (or worker) at ADDR."""
    from channels._blocking import BlockingSession
    from channels._curve import CurveClient, key_text, parse_token, token_keypair
    from channels.credentials import client_keys, save_enrollment

    cluster_key, secret = parse_token(token)
    keys = client_keys()
    name = name or f"{getpass.getuser()}@{socket.gethostname()}"
    holder = CurveClient(cluster_key, token_keypair(secret))
    tried: list[str] = []
    for where in host_addresses(address):
        try:
            session = BlockingSession(where, curve=holder)
        except ShoalError as exc:
            tried.append(f"{where} ({exc})")
            continue
        try:
            answer = session.request(lambda r: Enroll(key=key_text(keys.public), name=name,
                                                      reply=r))
        finally:
            session.close()
        if not isinstance(answer, Enrolled):
            raise ConnectFailed(f"{where} answered {type(answer).__name__} to Enroll")
        saved = save_enrollment(cluster_key, [where, *answer.managers])
        click.echo(f"Enrolled {answer.name!r} as a client; its key is in {saved.parent.parent}. "
                   f"Use: shoal -H {where} ps")
        return
    raise ConnectFailed("cannot enroll: tried " + ", ".join(tried))


@click.group()
def key() -> None:
    """List or revoke the keys the cluster admits."""


@key.command("ls", cls=ShoalCommand)
@host_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def list_keys(host: str | None, fmt: str) -> None:
    """The enrolled keys: workers (by node) and clients."""
    with connect(host) as client:
        listed = client.ask(lambda r: ListKeys(reply=r), KeyList)
    if fmt == "json":
        as_json(listed.keys)
        return
    table(["KEY", "ROLE", "NAME"], [[k.key[:16], k.role, k.name] for k in listed.keys])


@key.command("rm", cls=ShoalCommand)
@host_option
@click.argument("keys", nargs=-1, required=True, metavar="KEY|NAME...")
def remove_keys(host: str | None, keys: tuple[str, ...]) -> None:
    """Revoke keys (a unique prefix of the key, or the name it was enrolled under): their
    sessions end at once and they are refused from then on."""
    with connect(host) as client:
        for text in keys:
            client.ask(lambda r, text=text: RevokeKey(key=text, reply=r), Ok)  # type: ignore[misc]
            click.echo(text)
