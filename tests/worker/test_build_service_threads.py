"""A build context that arrives slowly holds a thread of the build service's own, never one of
the pool the rest of the worker runs its blocking calls on."""

from __future__ import annotations

import asyncio
import io
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import cast

import channels
from worker.build_service import BuildService
from worker.images.store import ImageStore


class _StalledContext:
    """A context stream whose first piece comes when ``release`` is set."""

    def __init__(self, tar: bytes) -> None:
        self.release = asyncio.Event()
        self.pieces = [tar]

    async def read(self) -> bytes:
        await self.release.wait()
        return self.pieces.pop() if self.pieces else b""

    def close(self) -> None:
        pass


def _tar_of_one_file() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = b"FROM scratch\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_a_stalled_context_leaves_the_shared_pool_free(tmp_path: Path) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        shared = ThreadPoolExecutor(1)  # the worker's pool, at its smallest
        loop.set_default_executor(shared)
        service = BuildService(ImageStore(tmp_path / "images"), None, tmp_path / "work")
        context = _StalledContext(_tar_of_one_file())
        receiving = asyncio.ensure_future(service._receive_context(
            cast(channels.ByteReader, context), tmp_path / "context", over=False))
        await asyncio.sleep(0)  # the unpacking thread starts and waits for data
        # The shared pool still answers while the context is stalled.
        assert await asyncio.wait_for(asyncio.to_thread(lambda: 42), 10) == 42
        context.release.set()
        size = await asyncio.wait_for(receiving, 10)
        assert size == len(_tar_of_one_file())
        assert (tmp_path / "context" / "Dockerfile").read_bytes() == b"FROM scratch\n"

    asyncio.run(scenario())
