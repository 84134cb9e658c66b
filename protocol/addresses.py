"""Addresses: the well-known defaults (where a scheduler listens, and so where the CLI looks
first; where a standalone worker listens), and what may be told to others as a node's or a
scheduler's address. Pure.

A listener may bind a wildcard (``tcp://0.0.0.0:P``, ``tcp://[::]:P``, ``tcp://*:P``), but
nobody can reach it by that name: a daemon tells others an address it was given
(``--advertise``), and a scheduler refuses a node that names a wildcard.
"""

from __future__ import annotations

import re

DEFAULT_SCHEDULER = "tcp://127.0.0.1:7375"
DEFAULT_WORKER = "tcp://127.0.0.1:7376"


WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "*"})


def _refused(why: str) -> Exception:
    # The wire's error types (msgspec) load only on a refusal: ``shoal --version`` reads the
    # defaults above and nothing more.
    from protocol.errors import InvalidArgument

    return InvalidArgument(why)


_HOST = re.compile(r"[A-Za-z0-9._-]+|[0-9A-Fa-f:.]+(%[A-Za-z0-9._-]+)?")  # a name, IPv4, IPv6


def _tcp_host_port(address: str) -> tuple[str, int | None]:
    """``tcp://HOST[:PORT]`` → (host, port or None); InvalidArgument when it is not one."""
    if address.startswith("tcp://*"):  # ZeroMQ's wildcard is no URL host: read it by hand
        rest = address[len("tcp://*"):]
        if rest and not rest.startswith(":"):
            raise _refused(f"address {address!r}: expected tcp://HOST:PORT")
        return "*", _port(address, rest[1:]) if rest else None
    from urllib.parse import urlsplit  # only to check an address: not on a client's start-up

    try:
        parts = urlsplit(address)
        port = parts.port
    except ValueError as exc:
        raise _refused(f"address {address!r}: {exc}") from exc
    if parts.scheme != "tcp" or not parts.hostname or parts.path or parts.query \
            or parts.fragment or parts.username or parts.password:
        raise _refused(f"address {address!r}: expected tcp://HOST:PORT")
    if not _HOST.fullmatch(parts.hostname):
        raise _refused(f"address {address!r}: bad host {parts.hostname!r}")
    return parts.hostname, port


def _port(address: str, text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise _refused(f"address {address!r}: bad port {text!r}")
    return int(text)


def _join(host: str, port: int) -> str:
    return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"


def is_wildcard(address: str) -> bool:
    """Whether ``address`` is a ``tcp://`` address on a wildcard host (no one can reach it
    by that name)."""
    if not address.startswith("tcp://"):
        return False
    rest = address[len("tcp://"):]
    host = rest.rpartition(":")[0] if not rest.endswith("]") else rest
    return (host or rest).strip("[]") in WILDCARD_HOSTS


def check_reachable(address: str) -> str:
    """``address`` if others may be told it: ``tcp://HOST:PORT`` (a real host, a real port) or
    ``ipc://PATH``; InvalidArgument, saying why, otherwise."""
    if address.startswith("ipc://"):
        if len(address) == len("ipc://"):
            raise _refused(f"address {address!r}: expected ipc://PATH")
        return address
    if not address.startswith("tcp://"):
        raise _refused(f"address {address!r}: expected tcp://HOST:PORT or ipc://PATH")
    host, port = _tcp_host_port(address)
    if host in WILDCARD_HOSTS:
        raise _refused(f"address {address!r} is a wildcard: nobody can reach it by "
                              "that name")
    if not port:
        raise _refused(f"address {address!r}: expected tcp://HOST:PORT with a port "
                              "other than 0")
    return address


def check_advertise(explicit: str) -> None:
    """Refuse an ``--advertise`` value before anything is bound: what ``advertised`` would
    refuse for any tcp listener."""
    advertised("tcp://127.0.0.1:1", explicit)


def _bare(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def advertised(bound: str, explicit: str) -> str:
    """The address to tell others, given the one a listener bound (a port 0 resolved) and an
    ``--advertise`` value (empty: none). ``explicit`` may be ``tcp://HOST:PORT``,
    ``tcp://HOST`` or a bare ``HOST`` (then the bound port is used, as for a port 0), or
    ``ipc://PATH``. Without it, the bound address, which must not be a wildcard."""
    if not explicit:
        if is_wildcard(bound):
            raise _refused(f"listening on the wildcard {bound}: give the address others "
                                  "reach this host by (--advertise tcp://HOST:PORT)")
        return check_reachable(bound)
    if explicit.startswith("ipc://"):
        return check_reachable(explicit)
    if "://" not in explicit:
        host, port = _bare(explicit), None
    else:
        host, port = _tcp_host_port(explicit)
    if not port:
        if not bound.startswith("tcp://"):
            raise _refused(f"--advertise {explicit}: give a port (the listener is "
                                  f"{bound}, not tcp://)")
        _, port = _tcp_host_port(bound)
        if not port:
            raise _refused(f"--advertise {explicit}: the listener {bound} has no port")
    return check_reachable(_join(host, port))


def address_ip(address: str) -> str:
    """The IP literal of ``tcp://HOST:PORT`` (``tcp://[::1]:7376`` → ``::1``), or "" when
    the host is a name, or the address is not tcp (what ``node.ip`` rules match)."""
    scheme, _, where = address.partition("://")
    if scheme != "tcp":
        return ""
    host = where.rpartition(":")[0].strip("[]")
    if not host or not all(c in "0123456789abcdefABCDEF.:" for c in host) or \
            ("." not in host and ":" not in host):
        return ""
    return host
