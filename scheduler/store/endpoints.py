"""Parse where etcd is: ``--etcd https://a:2379,https://b:2379`` into a list of endpoints. Pure.

Plain endpoints are ``http://host:port`` (or bare ``host:port``) and ``unix:///path``; their TLS
forms ``https://host:port`` and ``unixs:///path`` need the client's ``EtcdTLS`` (``--etcd-cacert``
and, for a cluster with ``--client-cert-auth``, ``--etcd-cert`` and ``--etcd-key``). Given TLS,
a bare ``host:port`` means https, and a plain endpoint is refused: TLS options that some
endpoints would silently go without are a mistake to report, not to guess around.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from protocol.errors import InvalidArgument
from scheduler.store.tls import EtcdTLS

DEFAULT_PORT = 2379


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One etcd member's client URL, reduced to what gRPC needs: a host and port, or the
    absolute path of a unix socket (then host and port are unused); and the TLS identity to
    reach it with, or None for plain text."""

    host: str = ""
    port: int = 0
    socket: str = ""
    tls: EtcdTLS | None = None

    @property
    def target(self) -> str:
        """The gRPC target for this endpoint (IPv6 literals in brackets)."""
        if self.socket:
            return f"unix:{self.socket}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        secure = "s" if self.tls else ""
        if self.socket:
            return f"unix{secure}://{self.socket}"
        return f"http{secure}://{self.target}"


def parse_endpoints(spec: str, tls: EtcdTLS | None = None) -> list[Endpoint]:
    """Endpoints from a comma-separated list of URLs (see the module's docstring); each TLS
    endpoint carries ``tls``."""
    endpoints: list[Endpoint] = []
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        if item.startswith(("unix:", "unixs:")):
            endpoint = _unix_endpoint(item, tls)
        else:
            endpoint = _http_endpoint(item, tls)
        if endpoint not in endpoints:
            endpoints.append(endpoint)
    if not endpoints:
        raise InvalidArgument("no etcd endpoint given", details={"spec": spec[:200]})
    return endpoints


def _check_tls(item: str, secure: bool, tls: EtcdTLS | None) -> EtcdTLS | None:
    if secure and tls is None:
        raise InvalidArgument(
            f"etcd endpoint {item!r} uses TLS: give --etcd-cacert (the CA that signed the "
            "members' certificates), and --etcd-cert/--etcd-key if they ask for a client's",
            details={"endpoint": item})
    if not secure and tls is not None:
        raise InvalidArgument(
            f"etcd endpoint {item!r} is plain text but TLS options were given: write it "
            "https:// (or unixs://)", details={"endpoint": item})
    return tls


def _http_endpoint(item: str, tls: EtcdTLS | None) -> Endpoint:
    url = item if "://" in item else f"{'https' if tls else 'http'}://{item}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise InvalidArgument(f"etcd endpoint {item!r}: expected http://, https://, unix:// "
                              "or unixs://", details={"endpoint": item})
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise InvalidArgument(f"etcd endpoint {item!r}: expected {parts.scheme}://host:port",
                              details={"endpoint": item})
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise InvalidArgument(f"etcd endpoint {item!r}: bad port",
                              details={"endpoint": item}) from None
    if not parts.hostname:
        raise InvalidArgument(f"etcd endpoint {item!r}: no host", details={"endpoint": item})
    return Endpoint(parts.hostname, port, tls=_check_tls(item, parts.scheme == "https", tls))


def _unix_endpoint(item: str, tls: EtcdTLS | None) -> Endpoint:
    # Not urlsplit: a socket's name may hold characters a URL parser treats specially (etcd's
    # own unix listeners are named like "host:port").
    scheme, _, path = item.partition(":")
    if path.startswith("//"):
        path = path[2:]
    if not path.startswith("/") or path.rstrip("/") == "":
        raise InvalidArgument(f"etcd endpoint {item!r}: expected {scheme}:///absolute/path",
                              details={"endpoint": item})
    return Endpoint(socket=path, tls=_check_tls(item, scheme == "unixs", tls))
