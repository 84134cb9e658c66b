"""``--etcd URLS`` and its TLS options (etcdctl's and docker's names: ``--etcd-cacert``,
``--etcd-cert``, ``--etcd-key``; also ``$SHOAL_ETCD_CACERT``, ``$SHOAL_ETCD_CERT``,
``$SHOAL_ETCD_KEY``, as ``$SHOAL_HOST`` stands for ``-H``), checked before a daemon starts.

Every fault is one line naming the option: an https:// endpoint without a CA, a certificate
without its key, a file missing, unreadable or not PEM, TLS options without ``--etcd`` (the
private etcd makes its own certificates) or with plain http:// endpoints.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

if TYPE_CHECKING:
    from scheduler.store import Endpoint

F = TypeVar("F", bound=Callable[..., object])

TLS_ENV = {"cacert": "SHOAL_ETCD_CACERT", "cert": "SHOAL_ETCD_CERT", "key": "SHOAL_ETCD_KEY"}


class EtcdOptionError(click.ClickException):
    """A bad ``--etcd*`` option: ``Error: …`` on one line (no usage text), exit status 2."""

    exit_code = 2


def etcd_options(default_help: str) -> Callable[[F], F]:
    """``--etcd URLS`` (``default_help``: what happens without it) and its TLS options, passed
    as ``etcd``, ``etcd_cacert``, ``etcd_cert``, ``etcd_key``."""
    path = click.Path(path_type=Path)  # checked by the store's load_tls, in one line
    options = [
        click.option("--etcd", default=None, metavar="URLS",
                     help="etcd endpoints, comma-separated: http://, https://, unix:// or "
                          f"unixs:// ({default_help})."),
        click.option("--etcd-cacert", type=path, default=None, metavar="FILE",
                     envvar=TLS_ENV["cacert"], show_envvar=True,
                     help="CA bundle that signed the etcd members' certificates; needed for "
                          "https:// endpoints."),
        click.option("--etcd-cert", type=path, default=None, metavar="FILE",
                     envvar=TLS_ENV["cert"], show_envvar=True,
                     help="Client certificate for etcd's --client-cert-auth (with --etcd-key)."),
        click.option("--etcd-key", type=path, default=None, metavar="FILE",
                     envvar=TLS_ENV["key"], show_envvar=True,
                     help="The client certificate's private key (with --etcd-cert)."),
    ]

    def decorate(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def etcd_endpoints(etcd: str | None, cacert: Path | None, cert: Path | None,
                   key: Path | None) -> list[Endpoint] | None:
    """The endpoints to reach etcd by, each with its TLS identity; None without ``--etcd``
    (a private etcd). ``EtcdOptionError`` on any fault."""
    from protocol.errors import InvalidArgument
    from scheduler.store import load_tls, parse_endpoints

    given = [name for name, value in (("--etcd-cacert", cacert), ("--etcd-cert", cert),
                                      ("--etcd-key", key)) if value is not None]
    if etcd is None:
        if given:
            raise EtcdOptionError(
                f"{'/'.join(given)} given without --etcd: the private etcd started then "
                "makes and uses its own certificates")
        return None
    try:
        return parse_endpoints(etcd, load_tls(cacert, cert, key) if given else None)
    except InvalidArgument as exc:
        raise EtcdOptionError(str(exc)) from None
