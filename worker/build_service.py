"""The build and store-hygiene verbs over channels: ``image.build`` (a Dockerfile build on
this worker), ``image.prune`` and ``image.save``.

A build's context is unpacked under the worker's build directory as it arrives (bounded by a
size limit; no spool file), and the build runs with its output streamed back as
``BuildOutput`` messages; every step's scratch directory is removed when the build ends,
however it ends. The worker keeps its last context (up to ``KEPT_CONTEXT_BYTES``) and unpacks
the next one over it (``context_reuse``): a cached rebuild of an unchanged context then
allocates and frees no inode; a build beside it gets a context directory of its own, removed
with its scratch. Builds need the native runtime (RUN runs in a container).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

import structlog

import channels
from protocol.errors import ChannelError, InvalidArgument, Unsupported
from protocol.messages import (
    MAX_SAVE_CHUNK,
    BuildImage,
    BuildOutput,
    BuildResult,
    ImageChunk,
    ImagesPruned,
    Message,
    PruneImages,
    SaveImages,
)
from worker.build.builder import Builder, BuildOptions
from worker.build.context import unpack_context
from worker.build.context_reuse import unpack_over
from worker.image_service import image_summary
from worker.images.export import save_images
from worker.images.store import ImageStore
from worker.images.stream_file import StreamFile
from worker.storage import mounts

if TYPE_CHECKING:  # the native runtime is Linux's; a worker imports this anywhere
    from worker.runtime.client import RuntimeHelper

log = structlog.get_logger("shoal.worker.build")

BUILD_REQUESTS: tuple[type[Message], ...] = (BuildImage, PruneImages, SaveImages)
DEFAULT_MAX_CONTEXT_BYTES = 8 * 1024 ** 3
OUTPUT_BATCH = 16 * 1024  # text gathered before one BuildOutput message
CONTEXT_READ_BYTES = 1024 * 1024  # tarfile's reads of the context stream, buffered
KEPT_CONTEXT_BYTES = 256 * 1024 ** 2  # a larger context is removed after its build
# A context stream that brings nothing for this long fails the build: a client that is alive
# but stuck must not hold a thread for ever.
CONTEXT_IDLE_TIMEOUT = 300.0
# A build's context is received on threads of the build service's own, at most this many at
# once (more wait for one): a client that sends slowly holds one of them, never a thread of the
# pool the rest of the worker uses. (A save's spool is written and read without waiting on the
# client, so it uses the shared pool.)
MAX_STREAM_THREADS = 4


class BuildService:
    """``runtime`` is None on a worker without the native runtime: builds are refused there;
    prune and save still work. ``in_use`` gives the image ids containers use."""

    def __init__(self, store: ImageStore, runtime: RuntimeHelper | None, work_dir: Path, *,
                 in_use: Callable[[], Collection[str]] = frozenset,
                 max_context_bytes: int = DEFAULT_MAX_CONTEXT_BYTES) -> None:
        self.store = store
        self.runtime = runtime
        self.work_dir = work_dir
        self.in_use = in_use
        self.max_context_bytes = max_context_bytes
        # Set on a worker in a cluster: fetches a base image this store lacks (the scheduler's).
        self.fetch_base: Callable[[str], Awaitable[None]] | None = None
        # Told of every build that ends with an image (the worker's image events).
        self.on_built: Callable[[BuildImage, BuildResult], None] | None = None
        # What a worker that died mid-build left: its step mounts first, then the files.
        for point in mounts.mounts_under(work_dir):
            mounts.unmount(Path(point))
        shutil.rmtree(work_dir, ignore_errors=True)
        work_dir.mkdir(parents=True, exist_ok=True)
        self.kept_context = work_dir / "context"
        self.kept_context_busy = False
        self._threads = ThreadPoolExecutor(MAX_STREAM_THREADS, thread_name_prefix="build-io")

    async def handle(self, message: Message) -> Message | None:
        match message:
            case BuildImage():
                await self._build(message)
                return None
            case PruneImages(all=all_images):
                busy = frozenset(self.in_use())
                result = await asyncio.to_thread(self.store.prune, all_images=all_images,
                                                 in_use=busy)
                log.info("images pruned", deleted=len(result.deleted),
                         reclaimed=result.reclaimed, cache_records=result.cache_records)
                return ImagesPruned(deleted=result.deleted, untagged=result.untagged,
                                    cache_records=result.cache_records,
                                    reclaimed=result.reclaimed)
            case SaveImages():
                await self._save(message)
                return None
        raise Unsupported(f"the build service does not serve {type(message).__name__}")

    # --- build ---------------------------------------------------------------------------------
    async def _build(self, request: BuildImage) -> None:
        reply = request.reply
        data = request.context
        assert isinstance(reply, channels.Sender)
        if not isinstance(data, channels.ByteReader):
            raise InvalidArgument("image.build needs a byte stream carrying the context")
        if self.runtime is None:
            data.close()
            raise Unsupported("builds run RUN steps on the native runtime; this worker uses "
                              "another driver")
        work = Path(tempfile.mkdtemp(prefix="build-", dir=self.work_dir))
        # One build at a time unpacks over the context the last one kept; one beside it gets
        # a directory of its own.
        holds_kept = not self.kept_context_busy
        self.kept_context_busy = True
        reusing = holds_kept
        context_dir = self.kept_context if reusing else work / "context"
        pending: list[str] = []

        async def flush() -> None:
            if pending:
                text = "".join(pending)
                pending.clear()
                for start in range(0, len(text), OUTPUT_BATCH):
                    await reply.send(BuildOutput(text=text[start:start + OUTPUT_BATCH]))

        async def emit(text: str) -> None:
            pending.append(text)
            if "\n" in text or sum(map(len, pending)) >= OUTPUT_BATCH:
                await flush()

        try:
            context_dir.mkdir(exist_ok=True)
            size = await self._receive_context(data, context_dir, over=reusing)
            if reusing and size > KEPT_CONTEXT_BYTES:
                reusing = False  # removed with the scratch: too big to keep on disk
                context_dir = context_dir.rename(work / "context")
            options = BuildOptions(
                dockerfile=request.dockerfile, dockerfile_name=request.dockerfile_name,
                tags=tuple(request.tags), build_args=dict(request.build_args),
                target=request.target, no_cache=request.no_cache, platform=request.platform)
            scratch = work / "steps"
            scratch.mkdir()
            builder = Builder(self.store, self.runtime, scratch, emit,
                              fetch_base=self.fetch_base)
            try:
                image = await builder.build(options, context_dir)
            finally:
                with contextlib.suppress(ChannelError):
                    await flush()  # the output up to a failure goes out before the error
            log.info("image built", image=image.id, tags=list(image.tags))
            result = BuildResult(image=image_summary(image))
            if self.on_built is not None:
                self.on_built(request, result)
            await reply.send(result)
            reply.close()  # the client is done; the scratch's removal need not hold it up
        finally:
            if holds_kept:
                self.kept_context_busy = False
            await asyncio.to_thread(shutil.rmtree, work, True)

    async def _receive_context(self, data: channels.ByteReader, context_dir: Path, *,
                               over: bool) -> int:
        """Unpack the context into ``context_dir`` as it arrives (no spool file, no second
        pass over it), ``over`` what an earlier build left there; a build abandoned
        meanwhile closes the stream, which ends the thread. Returns the tar's size."""
        stream = StreamFile(data, asyncio.get_running_loop(), idle_timeout=CONTEXT_IDLE_TIMEOUT,
                            what="the build context", limit=self.max_context_bytes)
        reader = cast(BinaryIO, io.BufferedReader(stream, CONTEXT_READ_BYTES))
        unpack = unpack_over if over else unpack_context
        loop = asyncio.get_running_loop()
        unpacking = loop.run_in_executor(self._threads, unpack, reader, context_dir)
        try:
            await asyncio.shield(unpacking)
        except asyncio.CancelledError:
            data.close()
            await asyncio.gather(unpacking, return_exceptions=True)
            raise
        finally:
            data.close()
        return stream.received

    # --- save ----------------------------------------------------------------------------------
    async def _save(self, request: SaveImages) -> None:
        reply = request.reply
        assert isinstance(reply, channels.Sender)
        with tempfile.TemporaryFile(dir=self.work_dir) as spool:
            await asyncio.to_thread(save_images, self.store, request.refs, spool,
                                    request.format)
            spool.seek(0)
            try:
                while chunk := await asyncio.to_thread(spool.read, MAX_SAVE_CHUNK):
                    await reply.send(ImageChunk(data=chunk))
            except ChannelError:
                return  # the client went away
        reply.close()
