"""Well-known default addresses (where a scheduler listens, and so where the CLI looks first;
where a standalone worker listens), and what an address says of its host."""

from __future__ import annotations

DEFAULT_SCHEDULER = "tcp://127.0.0.1:7375"
DEFAULT_WORKER = "tcp://127.0.0.1:7376"


def address_ip(address: str) -> str:
    """The IP literal of ``tcp://HOST:PORT`` (``tcp://[::1]:7376`` → ``::1``), or "" when
    the host is a name, or the address is not tcp."""
    scheme, _, where = address.partition("://")
    if scheme != "tcp":
        return ""
    host = where.rpartition(":")[0].strip("[]")
    if not host or not all(c in "0123456789abcdefABCDEF.:" for c in host) or \
            ("." not in host and ":" not in host):
        return ""
    return host
