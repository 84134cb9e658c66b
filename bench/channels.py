"""``python -m bench channels``: shoal channels beside raw pyzmq doing the same work.

Each figure is measured with the server in its own process (so client and server each get a
core) and set beside the same work done with pyzmq DEALER/ROUTER: blocking pyzmq and
zmq.asyncio (one await per message, the usual way to write it). Request/reply is measured with
1 and with 100 requests in flight, over tcp and ipc; one-way messages and byte streams (64 KiB
chunks) over tcp loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import uvloop
import zmq
import zmq.asyncio

import channels
from bench._channels_peer import BENCH_CLIENT, BENCH_SERVER
from bench._report import print_table, write_results
from protocol.messages import Echo, Echoed, FetchBlob, GetVersion

PAYLOAD = b"p" * 32
ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def server(kind: str, address: str) -> Iterator[str]:
    """Start a server process; yields the address it bound."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench._channels_peer", kind, address],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        bound = proc.stdout.readline().decode().strip()
        if not bound:
            raise RuntimeError(f"{kind} server did not start")
        yield bound
    finally:
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


# --- shoal clients -------------------------------------------------------------------------------
def _client(curve: bool) -> channels.CurveClient | None:
    return channels.CurveClient(BENCH_SERVER.public, BENCH_CLIENT) if curve else None


async def shoal_rr(address: str, inflight: int, seconds: float, curve: bool = False) -> float:
    async with await channels.connect(address, security=_client(curve)) as conn:
        sender = conn.sender
        for _ in range(200):  # warm up
            await channels.request(sender, lambda r: Echo(data=PAYLOAD, reply=r))
        done = 0
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await channels.request(sender, lambda r: Echo(data=PAYLOAD, reply=r))
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(inflight)))
        return done / (time.perf_counter() - start)


async def shoal_oneway(address: str, seconds: float, curve: bool = False) -> float:
    async with await channels.connect(address, security=_client(curve)) as conn:
        sender = conn.sender
        message = Echoed(data=PAYLOAD)
        sent = 0
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            for _ in range(1000):
                await sender.send(message)
            sent += 1000
        # The server counts what arrived; its answer comes after everything sent before it.
        reply = await channels.request(sender, lambda r: GetVersion(reply=r))
        assert isinstance(reply, Echoed)
        received = int(reply.data)
        assert received >= sent, (received, sent)
        return sent / (time.perf_counter() - start)


async def shoal_stream(address: str, total: int, curve: bool = False) -> float:
    async with await channels.connect(address, security=_client(curve)) as conn:
        writer, reader = channels.byte_pipe()
        start = time.perf_counter()
        request = channels.request(conn.sender, lambda r: FetchBlob(
            digest=str(total), into=writer, reply=r))

        async def drain() -> int:
            got = 0
            async for chunk in reader:
                got += len(chunk)
            return got

        _, got = await asyncio.gather(request, drain())
        assert got >= total
        return got / (time.perf_counter() - start) / 1e6


# --- pyzmq references ----------------------------------------------------------------------------
def zmq_sync_rr(address: str, inflight: int, seconds: float) -> float:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    for _ in range(200):
        sock.send_multipart([b"rq", PAYLOAD])
        sock.recv_multipart()
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    for _ in range(inflight):
        sock.send_multipart([b"rq", PAYLOAD])
    outstanding = inflight
    while outstanding:
        sock.recv_multipart()
        done += 1
        outstanding -= 1
        if time.perf_counter() < deadline:
            sock.send_multipart([b"rq", PAYLOAD])
            outstanding += 1
    rate = done / (time.perf_counter() - start)
    sock.close()
    ctx.term()
    return rate


async def zmq_async_rr(address: str, inflight: int, seconds: float) -> float:
    """The straightforward asyncio client: one await per send and per receive."""
    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    waiting: dict[bytes, asyncio.Future[list[bytes]]] = {}

    async def dispatch() -> None:
        while True:
            parts = await sock.recv_multipart()
            fut = waiting.pop(parts[0], None)
            if fut is not None and not fut.done():
                fut.set_result(parts)

    dispatcher = asyncio.create_task(dispatch())
    loop = asyncio.get_running_loop()
    counter = 0

    async def call() -> None:
        nonlocal counter
        counter += 1
        key = counter.to_bytes(8, "big")
        fut: asyncio.Future[list[bytes]] = loop.create_future()
        waiting[key] = fut
        await sock.send_multipart([key, PAYLOAD])
        await fut

    for _ in range(200):
        await call()
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await call()
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    rate = done / (time.perf_counter() - start)
    dispatcher.cancel()
    await asyncio.gather(dispatcher, return_exceptions=True)
    sock.close()
    ctx.term()
    return rate


async def zmq_async_oneway(address: str, seconds: float) -> float:
    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    sent = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(1000):
            await sock.send_multipart([b"oneway", PAYLOAD])
        sent += 1000
    await sock.send_multipart([b"rq", PAYLOAD])  # the echo comes after all the one-way ones
    await sock.recv_multipart()
    rate = sent / (time.perf_counter() - start)
    sock.close()
    ctx.term()
    return rate


def zmq_sync_stream(total: int) -> float:
    """Raw pyzmq pushing 64 KiB messages over tcp loopback, no flow control: the ceiling."""
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push = ctx.socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{port}")
    block = b"\xa5" * 65536
    count = total // len(block)

    def produce() -> None:
        for _ in range(count):
            push.send(block, copy=False)

    import threading

    start = time.perf_counter()
    thread = threading.Thread(target=produce)
    thread.start()
    got = 0
    for _ in range(count):
        got += len(pull.recv(copy=False))
    thread.join()
    rate = got / (time.perf_counter() - start) / 1e6
    push.close(0)
    pull.close(0)
    ctx.term()
    return rate


# --- the run ------------------------------------------------------------------------------------
def measure(quick: bool) -> dict[str, float]:
    seconds = 0.5 if quick else 2.0
    stream_total = (64 if quick else 512) * 1024 * 1024
    figures: dict[str, float] = {}
    tmp = tempfile.mkdtemp(prefix="shoal-bench-", dir="/tmp")
    addresses = {"tcp": "tcp://127.0.0.1:0", "ipc": f"ipc://{tmp}/bench"}
    run: Callable[..., float] = uvloop.run
    for transport, address in addresses.items():
        with server("shoal", address) as bound:
            figures[f"rr1_{transport}_per_s"] = run(shoal_rr(bound, 1, seconds))
            figures[f"rr100_{transport}_per_s"] = run(shoal_rr(bound, 100, seconds))
            if transport == "tcp":
                figures["oneway_per_s"] = run(shoal_oneway(bound, seconds))
                figures["stream_mb_per_s"] = run(shoal_stream(bound, stream_total))
        with server("zmq-async", address) as bound:
            figures[f"pyzmq_async_rr1_{transport}_per_s"] = run(zmq_async_rr(bound, 1, seconds))
            figures[f"pyzmq_async_rr100_{transport}_per_s"] = run(
                zmq_async_rr(bound, 100, seconds))
            if transport == "tcp":
                figures["pyzmq_async_oneway_per_s"] = run(zmq_async_oneway(bound, seconds))
        with server("zmq-sync", address) as bound:
            figures[f"pyzmq_sync_rr1_{transport}_per_s"] = zmq_sync_rr(bound, 1, seconds)
            figures[f"pyzmq_sync_rr100_{transport}_per_s"] = zmq_sync_rr(bound, 100, seconds)
    with server("shoal-curve", addresses["tcp"]) as bound:
        figures["curve_rr1_tcp_per_s"] = run(shoal_rr(bound, 1, seconds, True))
        figures["curve_rr100_tcp_per_s"] = run(shoal_rr(bound, 100, seconds, True))
        figures["curve_oneway_per_s"] = run(shoal_oneway(bound, seconds, True))
        figures["curve_stream_mb_per_s"] = run(shoal_stream(bound, stream_total, True))
    for name in ("rr1_tcp_per_s", "rr100_tcp_per_s", "oneway_per_s", "stream_mb_per_s"):
        figures[f"curve_{name.removesuffix('_per_s').removesuffix('_mb')}_vs_plain"] = (
            figures[f"curve_{name}"] / figures[name])
    with contextlib.suppress(OSError):
        os.rmdir(tmp)
    figures["pyzmq_stream_mb_per_s"] = zmq_sync_stream(stream_total)
    figures["rr100_per_s"] = figures["rr100_tcp_per_s"]
    figures["pyzmq_async_rr100_per_s"] = figures["pyzmq_async_rr100_tcp_per_s"]
    figures["rr100_ratio_vs_pyzmq_async"] = (
        figures["rr100_per_s"] / figures["pyzmq_async_rr100_per_s"])
    return figures


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench channels", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run with the same keys")
    args = parser.parse_args(argv)
    figures = measure(args.quick)
    rows: list[list[object]] = []
    for transport in ("tcp", "ipc"):
        for inflight in (1, 100):
            shoal = figures[f"rr{inflight}_{transport}_per_s"]
            zasync = figures[f"pyzmq_async_rr{inflight}_{transport}_per_s"]
            zsync = figures[f"pyzmq_sync_rr{inflight}_{transport}_per_s"]
            rows.append([f"request/reply {transport}, {inflight} in flight (per s)", shoal,
                         zasync, zsync, shoal / zasync])
    rows.append(["one-way messages tcp (per s)", figures["oneway_per_s"],
                 figures["pyzmq_async_oneway_per_s"], "-",
                 figures["oneway_per_s"] / figures["pyzmq_async_oneway_per_s"]])
    rows.append(["byte stream tcp, 64 KiB chunks (MB/s)", figures["stream_mb_per_s"], "-",
                 figures["pyzmq_stream_mb_per_s"], "-"])
    print_table("shoal channels vs raw pyzmq (same run)",
                ["measure", "shoal", "zmq.asyncio", "pyzmq sync", "shoal / zmq.asyncio"], rows)
    curve_rows: list[list[object]] = [
        [label, figures[name], figures[f"curve_{name}"], figures[f"curve_{name}"] / figures[name]]
        for label, name in (("request/reply tcp, 1 in flight (per s)", "rr1_tcp_per_s"),
                            ("request/reply tcp, 100 in flight (per s)", "rr100_tcp_per_s"),
                            ("one-way messages tcp (per s)", "oneway_per_s"),
                            ("byte stream tcp, 64 KiB chunks (MB/s)", "stream_mb_per_s"))]
    print_table("shoal channels with CURVE beside without (same run)",
                ["measure", "plain", "CURVE", "CURVE / plain"], curve_rows)
    path = write_results("channels", figures, quick=args.quick)
    print(f"wrote {path}")
    return 0
