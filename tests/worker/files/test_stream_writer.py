"""A byte stream written from a thread as a file: paced by the reader, ended by a reader that
goes away or takes nothing for the idle timeout."""

from __future__ import annotations

import asyncio

import pytest

import channels
from protocol.errors import ChannelError, Timeout
from worker.files.stream_writer import buffered


def test_bytes_arrive_in_order_paced_by_the_reader() -> None:
    async def main() -> bytes:
        writer, reader = channels.byte_pipe(capacity=1024)
        loop = asyncio.get_running_loop()

        def produce() -> None:
            out = buffered(writer, loop, idle_timeout=10, size=100)
            for n in range(200):
                out.write(bytes([n]) * 50)
            out.flush()
            writer.close()

        producing = asyncio.ensure_future(asyncio.to_thread(produce))
        data = await reader.read_all()
        await producing
        return data

    data = asyncio.run(main())
    assert data == b"".join(bytes([n]) * 50 for n in range(200))


@pytest.mark.parametrize("reader_goes", [True, False])
def test_a_reader_that_leaves_or_stalls_ends_the_writer(reader_goes: bool) -> None:
    async def main() -> BaseException | None:
        writer, reader = channels.byte_pipe(capacity=64)
        loop = asyncio.get_running_loop()

        def produce() -> None:
            out = buffered(writer, loop, idle_timeout=0.2, size=16)
            while True:
                out.write(b"x" * 32)

        producing = asyncio.ensure_future(asyncio.to_thread(produce))
        assert await reader.read(8) == b"x" * 8
        if reader_goes:
            reader.close()
        outcome = (await asyncio.gather(producing, return_exceptions=True))[0]
        return outcome if isinstance(outcome, BaseException) else None

    failure = asyncio.run(asyncio.wait_for(main(), 10))
    assert isinstance(failure, ChannelError if reader_goes else Timeout), failure
