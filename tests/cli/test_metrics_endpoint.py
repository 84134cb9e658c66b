"""The metrics endpoint (``--metrics``) on its own: GET /metrics answers the registry in the
Prometheus text format (OpenMetrics when asked); anything else gets 400, 404 or 405 and the
endpoint goes on serving; a head too large, a client that goes silent or goes away, and a flood
of connections cost it nothing lasting. Loopback only."""

from __future__ import annotations

import asyncio

import click
import pytest
from prometheus_client import CollectorRegistry, Counter

from cli import metrics_endpoint
from cli.metrics_endpoint import MetricsEndpoint, parse_metrics_address
from tests.helpers.bounded_run import run


async def exchange(address: str, request: bytes) -> bytes:
    """Send ``request`` raw, then our end of the stream, and read the answer to the end."""
    host, port = parse_metrics_address(address)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        writer.write_eof()
        await writer.drain()
        return await reader.read()
    finally:
        writer.close()


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def body_of(answer: bytes) -> bytes:
    return answer.partition(b"\r\n\r\n")[2]


def counted_registry() -> tuple[CollectorRegistry, Counter]:
    registry = CollectorRegistry()
    return registry, Counter("shoal_test_things", "Things counted.", registry=registry)


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:9375", ("127.0.0.1", 9375)),
    ("127.0.0.1:0", ("127.0.0.1", 0)),
    ("[::1]:9375", ("::1", 9375)),
    ("localhost:80", ("localhost", 80)),
])
def test_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_metrics_address(text) == expected


@pytest.mark.parametrize("text", ["9375", ":9375", "127.0.0.1:", "127.0.0.1:x",
                                  "127.0.0.1:65536", "127.0.0.1:-1", ""])
def test_bad_addresses(text: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_metrics_address(text)


def test_get_metrics_then_bad_requests_then_metrics_again() -> None:
    registry, things = counted_registry()

    async def scenario() -> None:
        async with await MetricsEndpoint.start("127.0.0.1", 0, registry) as endpoint:
            address = endpoint.address
            assert address.startswith("127.0.0.1:") and not address.endswith(":0")
            things.inc(3)
            answer = await exchange(address, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            assert status_of(answer) == 200
            assert b"Content-Type: text/plain; version=0.0.4" in answer
            assert b"# HELP shoal_test_things_total Things counted." in body_of(answer)
            assert b"shoal_test_things_total 3.0" in body_of(answer)

            open_metrics = await exchange(
                address, b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text; "
                         b"version=1.0.0\r\n\r\n")
            assert b"application/openmetrics-text" in open_metrics
            assert body_of(open_metrics).endswith(b"# EOF\n")

            for request, status in [
                (b"GET / HTTP/1.1\r\n\r\n", 404),
                (b"GET /metricsx HTTP/1.1\r\n\r\n", 404),
                (b"GET /debug/../metrics HTTP/1.1\r\n\r\n", 404),
                (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
                (b"GET /metrics\r\n\r\n", 400),
                (b"\x00\xff\xfe garbage\r\n\r\n", 400),
                (b"GET /metrics SPDY/3\r\n\r\n", 400),
                (b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n", 400),
            ]:
                assert status_of(await exchange(address, request)) == status, request[:40]
            # Gone before a whole request, and silent clients: nothing is answered to them.
            assert await exchange(address, b"GET /metr") == b""

            things.inc()
            again = await exchange(address, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n")
            assert status_of(again) == 200 and b"shoal_test_things_total 4.0" in again

    run(scenario)


def test_silent_clients_are_dropped_and_a_flood_is_capped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics_endpoint, "REQUEST_TIMEOUT", 0.3)
    monkeypatch.setattr(metrics_endpoint, "MAX_CONNECTIONS", 4)
    registry, _ = counted_registry()

    async def scenario() -> None:
        async with await MetricsEndpoint.start("127.0.0.1", 0, registry) as endpoint:
            host, port = parse_metrics_address(endpoint.address)
            silent = [await asyncio.open_connection(host, port) for _ in range(6)]
            # The two beyond the cap are closed at once; the four within it at the deadline.
            ends = await asyncio.gather(*(reader.read() for reader, _ in silent))
            assert ends == [b""] * 6
            for _, writer in silent:
                writer.close()
            answer = await exchange(endpoint.address, b"GET /metrics HTTP/1.1\r\n\r\n")
            assert status_of(answer) == 200

    run(scenario, timeout=10)


def test_an_address_in_use_is_one_clear_error() -> None:
    registry, _ = counted_registry()

    async def scenario() -> None:
        async with await MetricsEndpoint.start("127.0.0.1", 0, registry) as endpoint:
            host, port = parse_metrics_address(endpoint.address)
            with pytest.raises(click.ClickException, match="cannot serve metrics on"):
                await MetricsEndpoint.start(host, port, registry)

    run(scenario)


class BrokenCollector:
    def collect(self) -> list[object]:
        raise RuntimeError("a collector with a bug")


def test_a_failing_collector_closes_that_connection_only() -> None:
    registry, _ = counted_registry()
    registry.register(BrokenCollector())  # type: ignore[arg-type]

    async def scenario() -> None:
        async with await MetricsEndpoint.start("127.0.0.1", 0, registry) as endpoint:
            for _ in range(2):
                assert await exchange(endpoint.address, b"GET /metrics HTTP/1.1\r\n\r\n") == b""
                answer = await exchange(endpoint.address, b"GET / HTTP/1.1\r\n\r\n")
                assert status_of(answer) == 404

    run(scenario)
