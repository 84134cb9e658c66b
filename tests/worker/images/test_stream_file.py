"""``StreamFile``: a byte stream read from a thread as a file, with a size limit and an idle
timeout."""

from __future__ import annotations

import asyncio
import io
import tarfile

import pytest

import channels
from protocol.errors import InvalidArgument, Timeout
from tests.helpers.bounded_run import run
from worker.images.stream_file import StreamFile


async def _read_all(pieces: list[bytes], *, limit: int | None = None, read: int = 7,
                    idle: float = 10.0, close: bool = True) -> bytes:
    writer, reader = channels.byte_pipe()
    stream = StreamFile(reader, asyncio.get_running_loop(), idle_timeout=idle, what="the test",
                        limit=limit)

    def drain() -> bytes:
        out = bytearray()
        while chunk := stream.read(read):
            out += chunk
        return bytes(out)

    reading = asyncio.ensure_future(asyncio.to_thread(drain))
    for piece in pieces:
        await writer.write(piece)
    if close:
        writer.close()
    try:
        return await reading
    finally:
        reader.close()


def test_small_reads_of_big_pieces_give_every_byte_in_order() -> None:
    pieces = [bytes([n]) * (100_000 + n) for n in range(5)]
    assert run(lambda: _read_all(pieces)) == b"".join(pieces)


def test_a_stream_over_the_limit_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="the test is larger than the 10-byte limit"):
        run(lambda: _read_all([b"12345", b"678901"], limit=10))


def test_a_stream_that_stalls_times_out() -> None:
    with pytest.raises(Timeout, match=r"the test: no data for 0\.2 s"):
        run(lambda: _read_all([b"some"], idle=0.2, close=False))


def test_a_compressed_tar_is_read_from_it_as_it_arrives() -> None:
    buffer = io.BytesIO()
    data = b"x" * 300_000
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("a/file")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    blob = buffer.getvalue()
    pieces = [blob[i:i + 4096] for i in range(0, len(blob), 4096)]

    async def unpack() -> dict[str, bytes]:
        writer, reader = channels.byte_pipe()
        stream = io.BufferedReader(StreamFile(reader, asyncio.get_running_loop(),
                                              idle_timeout=10, what="the test"))

        def contents() -> dict[str, bytes]:
            found = {}
            with tarfile.open(fileobj=stream, mode="r|*") as tar:
                for member in tar:
                    file = tar.extractfile(member)
                    if file is not None:
                        found[member.name] = file.read()
            return found

        reading = asyncio.ensure_future(asyncio.to_thread(contents))
        for piece in pieces:
            await writer.write(piece)
        writer.close()
        return await reading

    assert run(unpack) == {"a/file": data}
