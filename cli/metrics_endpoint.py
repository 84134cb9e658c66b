"""``--metrics HOST:PORT``: a daemon's Prometheus endpoint, served on the daemon's own event loop.

A scraper asks ``GET /metrics`` every few seconds over a fresh or kept connection; nothing else
is served. So this is a small asyncio responder rather than an HTTP framework or
prometheus_client's ``start_http_server`` (a thread per request, beside an event loop that owns
every piece of state the metrics read): one request per connection, the head read under a size
bound and a deadline, the body rendered by prometheus_client's own encoder (text format, or
OpenMetrics when the scraper asks for it), ``Connection: close``. Anything else gets a 400, 404
or 405 and the daemon goes on; a failure while answering is logged and closes that connection
only. Open connections are capped, so a flood of idle sockets costs a bounded amount.

The endpoint is not authenticated (Prometheus scrapes plain HTTP): bind it to loopback or to a
private network.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable

import click
import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

log = structlog.get_logger("shoal.metrics")

PATH = "/metrics"
MAX_REQUEST_HEAD = 8192  # request line and headers; a scraper sends a few hundred bytes
REQUEST_TIMEOUT = 10.0  # to send the head, and to take the answer
MAX_CONNECTIONS = 64


def parse_metrics_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6; port 0: any free one) as (host, port)."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"expected HOST:PORT (e.g. 127.0.0.1:9375), not {text!r}")
    return host, int(port)


def metrics_option(function: Callable[..., None]) -> Callable[..., None]:
    """The daemons' ``--metrics HOST:PORT`` option (parameter ``metrics_at``)."""
    return click.option(
        "--metrics", "metrics_at", default=None, metavar="HOST:PORT", callback=_metrics_address,
        help="Serve Prometheus metrics at http://HOST:PORT/metrics (port 0: a free one, told "
             "as METRICS= on --ready-fd). Not authenticated: bind to loopback or a private "
             "network.")(function)


def _metrics_address(ctx: click.Context, param: click.Parameter,
                     value: str | None) -> tuple[str, int] | None:
    """The ``--metrics`` option's callback: a malformed address is a usage error."""
    if value is None:
        return None
    try:
        return parse_metrics_address(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from exc


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class MetricsEndpoint:
    """Serves ``registry`` at ``GET /metrics``; ``address`` is ``host:port`` once started."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.address = ""
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @classmethod
    async def start(cls, host: str, port: int, registry: CollectorRegistry) -> MetricsEndpoint:
        """Bind and serve; an address that cannot be bound is a ``click.ClickException``
        (the daemon stops before it starts anything else)."""
        endpoint = cls(registry)
        try:
            server = await asyncio.start_server(endpoint._accept, host, port,
                                                limit=MAX_REQUEST_HEAD, reuse_address=True)
        except OSError as exc:
            raise click.ClickException(f"cannot serve metrics on {host}:{port}: {exc}") from exc
        endpoint._server = server
        bound_host, bound_port = server.sockets[0].getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        endpoint.address = f"{shown}:{bound_port}"
        if not _is_loopback(host):
            log.warning("the metrics endpoint is not authenticated: anyone who reaches "
                        f"{endpoint.address} can read it", address=endpoint.address)
        log.info("serving metrics", address=endpoint.address, path=PATH)
        return endpoint

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def __aenter__(self) -> MetricsEndpoint:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= MAX_CONNECTIONS:
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        answered = False
        try:
            await asyncio.wait_for(self._answer(reader, writer), REQUEST_TIMEOUT)
            answered = True
        except (TimeoutError, ConnectionError):
            pass  # a scraper that stalls or goes away: nothing to answer
        except Exception:  # never the daemon's end: this connection's only
            log.exception("answering a metrics request failed")
        finally:
            self._connections.discard(task)
            if answered:  # drained: closing sends the end at once
                writer.close()
            else:
                writer.transport.abort()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return  # closed before a whole request: nobody to answer
        except asyncio.LimitOverrunError:
            await _respond(writer, 400, b"request head too large\n")
            return
        status, body, content_type = self._route(head)
        await _respond(writer, status, body, content_type)

    def _route(self, head: bytes) -> tuple[int, bytes, str]:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return 400, b"not an HTTP/1 request\n", "text/plain"
        method, target, _ = parts
        if target.partition("?")[0] != PATH:
            return 404, b"only /metrics is served here\n", "text/plain"
        if method != "GET":
            return 405, b"only GET\n", "text/plain"
        accept = ""
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "accept":
                accept = value.strip()
        encode, content_type = choose_encoder(accept)
        return 200, encode(self.registry), content_type


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


async def _respond(writer: asyncio.StreamWriter, status: int, body: bytes,
                   content_type: str = "text/plain") -> None:
    allow = "Allow: GET\r\n" if status == 405 else ""
    writer.write(f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
                 f"Content-Length: {len(body)}\r\n{allow}Connection: close\r\n\r\n".encode()
                 + body)
    await writer.drain()
