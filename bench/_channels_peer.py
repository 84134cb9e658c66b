"""The serving side of ``python -m bench channels``, run in its own process.

``python -m bench._channels_peer KIND ADDRESS`` serves until stdin closes. KIND is:

- ``shoal``: a channels listener that answers Echo inline, counts one-way messages, and writes
  FetchBlob streams; ``shoal-curve``: the same with CURVE (``BENCH_SERVER``, admitting
  ``BENCH_CLIENT``);
- ``zmq-sync``: a blocking pyzmq ROUTER echoing every request;
- ``zmq-async``: a zmq.asyncio ROUTER echoing every request, one await per message.

It prints the bound address on its first line of output.
"""

from __future__ import annotations

import asyncio
import sys
import threading

import uvloop
import zmq
import zmq.asyncio

import channels
from cli.log_config import configure_logging
from protocol.messages import Echo, Echoed, FetchBlob, Message, Ok

BLOCK = b"\xa5" * 65536


def _exit_when_stdin_closes(stop: threading.Event) -> None:
    def watch() -> None:
        sys.stdin.buffer.read()
        stop.set()

    threading.Thread(target=watch, daemon=True).start()


async def _write_blob(message: FetchBlob) -> None:
    size = int(message.digest)
    sent = 0
    writer = message.into
    assert isinstance(writer, channels.ByteWriter)
    while sent < size:
        await writer.write(BLOCK)
        sent += len(BLOCK)
    writer.close()
    reply = message.reply
    assert isinstance(reply, channels.Sender)
    await reply.send(Ok(), last=True)


# The benchmark's keys, derived from fixed seeds so both processes know them.
BENCH_SERVER = channels.Keypair.derive(b"shoal bench server")
BENCH_CLIENT = channels.Keypair.derive(b"shoal bench client")


def bench_security() -> channels.CurveServer:
    return channels.CurveServer(BENCH_SERVER,
                                channels.Access([(BENCH_CLIENT.public, "client")]))


async def serve_shoal(address: str, curve: bool = False) -> None:
    stop = threading.Event()
    _exit_when_stdin_closes(stop)
    loop = asyncio.get_running_loop()
    stopped = loop.create_future()
    threading.Thread(
        target=lambda: (stop.wait(), loop.call_soon_threadsafe(stopped.set_result, None)),
        daemon=True,
    ).start()
    listener = await channels.listen(address, security=bench_security() if curve else None)
    print(listener.address, flush=True)
    counted = 0
    tasks: set[asyncio.Task[None]] = set()

    async def handle() -> None:
        nonlocal counted
        async for message in listener.receiver:
            if isinstance(message, Echo):
                reply = message.reply
                assert isinstance(reply, channels.Sender)
                await reply.send(Echoed(data=message.data), last=True)
            elif isinstance(message, Echoed):  # one-way traffic: count, answer on request
                counted += 1
            elif isinstance(message, FetchBlob):
                task = asyncio.create_task(_write_blob(message))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            else:
                _answer_count(message, counted)

    def _answer_count(message: Message, count: int) -> None:
        reply = getattr(message, "reply", None)
        if isinstance(reply, channels.Sender):
            task = asyncio.ensure_future(reply.send(Echoed(data=str(count).encode()), last=True))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    handler = asyncio.create_task(handle())
    await stopped
    handler.cancel()
    await asyncio.gather(handler, return_exceptions=True)
    await listener.close()


def serve_zmq_sync(address: str) -> None:
    stop = threading.Event()
    _exit_when_stdin_closes(stop)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(address.replace(":0", ":*") if address.startswith("tcp") else address)
    print(sock.getsockopt_string(zmq.LAST_ENDPOINT), flush=True)
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    while not stop.is_set():
        if not poller.poll(100):
            continue
        while True:
            try:
                parts = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            if parts[1] != b"oneway":
                sock.send_multipart(parts)
    sock.close()
    ctx.term()


async def serve_zmq_async(address: str) -> None:
    stop = threading.Event()
    _exit_when_stdin_closes(stop)
    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(address.replace(":0", ":*") if address.startswith("tcp") else address)
    print(sock.getsockopt_string(zmq.LAST_ENDPOINT), flush=True)

    async def loop() -> None:
        while True:
            parts = await sock.recv_multipart()
            if parts[1] != b"oneway":
                await sock.send_multipart(parts)

    task = asyncio.create_task(loop())
    await asyncio.get_running_loop().run_in_executor(None, stop.wait)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    sock.close()
    ctx.term()


def main(argv: list[str]) -> int:
    configure_logging("warning")
    kind, address = argv
    if kind in ("shoal", "shoal-curve"):
        uvloop.run(serve_shoal(address, curve=kind == "shoal-curve"))
    elif kind == "zmq-sync":
        serve_zmq_sync(address)
    elif kind == "zmq-async":
        uvloop.run(serve_zmq_async(address))
    else:
        print(f"unknown kind {kind}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
