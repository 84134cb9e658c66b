"""Parse where etcd is: ``--etcd http://a:2379,http://b:2379`` into a list of endpoints. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from protocol.errors import InvalidArgument

DEFAULT_PORT = 2379


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One etcd member's client URL, reduced to what gRPC needs: a host and port, or the
    absolute path of a unix socket (then host and port are unused)."""

    host: str = ""
    port: int = 0
    socket: str = ""

    @property
    def target(self) -> str:
        """The gRPC target for this endpoint (IPv6 literals in brackets)."""
        if self.socket:
            return f"unix:{self.socket}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        if self.socket:
            return f"unix://{self.socket}"
        return f"http://{self.target}"


def parse_endpoints(spec: str) -> list[Endpoint]:
    """Endpoints from a comma-separated list of ``http://host:port`` URLs (or ``host:port``),
    or ``unix:///absolute/path`` for an etcd on this host listening on a unix socket (as
    shoal's embedded etcd does).

    Only plain http is supported: TLS to etcd is not wired yet, and silently downgrading an
    ``https://`` URL would be worse than refusing it.
    """
    endpoints: list[Endpoint] = []
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        endpoint = _unix_endpoint(item) if item.startswith("unix:") else _http_endpoint(item)
        if endpoint not in endpoints:
            endpoints.append(endpoint)
    if not endpoints:
        raise InvalidArgument("no etcd endpoint given", details={"spec": spec[:200]})
    return endpoints


def _http_endpoint(item: str) -> Endpoint:
    url = item if "://" in item else f"http://{item}"
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise InvalidArgument(f"etcd endpoint {item!r}: only http:// and unix:// are supported",
                              details={"endpoint": item})
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise InvalidArgument(f"etcd endpoint {item!r}: expected http://host:port",
                              details={"endpoint": item})
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise InvalidArgument(f"etcd endpoint {item!r}: bad port",
                              details={"endpoint": item}) from None
    if not parts.hostname:
        raise InvalidArgument(f"etcd endpoint {item!r}: no host", details={"endpoint": item})
    return Endpoint(parts.hostname, port)


def _unix_endpoint(item: str) -> Endpoint:
    # Not urlsplit: a socket's name may hold characters a URL parser treats specially (etcd's
    # own unix listeners are named like "host:port").
    path = item.removeprefix("unix:")
    if path.startswith("//"):
        path = path[2:]
    if not path.startswith("/") or path.rstrip("/") == "":
        raise InvalidArgument(f"etcd endpoint {item!r}: expected unix:///absolute/path",
                              details={"endpoint": item})
    return Endpoint(socket=path)
