"""Builds in a cluster: ``image.build`` sent to a scheduler runs on a worker of the target
platform, and the image lands in the cluster's store.

The request goes on to the chosen worker unchanged but for its reply (the context byte stream
is bridged by the channels layer, as a forwarded exec's stdin is); the worker's output is
relayed to the client as it comes. When the worker answers ``image.built``, the scheduler asks
it for the image (``image.save``, an OCI layout) and imports that into its own store, every
digest checked and every layer scanned as any import is; only then does the client get
``image.built``, with the image as the cluster stores it. The worker fetches a base image it
lacks from the scheduler, as it does for a container.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import msgspec
import structlog

import channels
from channels import EndOfChannel, Sender
from protocol.errors import InvalidArgument, Unavailable
from protocol.messages import (
    BuildImage,
    BuildOutput,
    BuildResult,
    ImageChunk,
    ImageImported,
    Message,
    SaveImages,
)
from protocol.observed import NodeInfo
from protocol.refs import SenderRef
from scheduler.cluster.forward import Forwarder, Route
from scheduler.cluster.images import ClusterImages
from worker.image_service import image_summary

log = structlog.get_logger("shoal.scheduler.builds")

BUILD_RUNTIME = "native"  # RUN steps run on the native runtime


def choose_builder(nodes: Iterable[NodeInfo], platform: str) -> NodeInfo:
    """The node a build runs on: ready, active, on the native runtime, of ``platform`` (any
    when empty); the first by id, so the same cluster picks the same node. Refuses with the
    counts of why each node was passed over."""
    reasons: dict[str, int] = {}
    fitting = []
    want = platform.split("/") if platform else []
    for node in sorted(nodes, key=lambda n: n.id):
        have = [node.platform.os, node.platform.arch]
        if node.status != "ready" or node.availability != "active":
            why = f"{node.status}/{node.availability}"
        elif node.runtime != BUILD_RUNTIME:
            why = f"runtime {node.runtime or 'unknown'} (builds need {BUILD_RUNTIME})"
        elif want and have != want[:2]:
            why = f"platform {'/'.join(have)} ≠ {'/'.join(want[:2])}"
        elif not node.address:
            why = "no address for verbs"
        else:
            fitting.append(node)
            continue
        reasons[why] = reasons.get(why, 0) + 1
    if fitting:
        return fitting[0]
    total = sum(reasons.values())
    detail = ", ".join(f"{count} {why}" for why, count in sorted(reasons.items()))
    raise Unavailable(f"0/{total} nodes can run this build" + (f": {detail}" if detail else ""))


async def _request(conn: channels.Connection,
                   make: Callable[[SenderRef], Message]) -> channels.Receiver:
    """Send a request on ``conn`` with a reply channel of our own; its answers come on the
    receiver returned."""
    reply_tx, reply_rx = channels.pipe(capacity=16)
    await conn.sender.send(make(reply_tx))
    return reply_rx


async def build_in_cluster(request: BuildImage, node: NodeInfo, forwarder: Forwarder,
                           images: ClusterImages) -> ImageImported:
    """Run ``request`` on ``node`` and store the result in ``images``; answers the client on
    the request's own reply (output, then ``image.built``) and returns what was imported."""
    reply = request.reply
    if not isinstance(reply, Sender):
        raise InvalidArgument("image.build: reply must be a Sender")
    route = Route(node.id, node.address, node.key)
    conn = await forwarder.connection(route)
    answers = await _request(conn, lambda r: msgspec.structs.replace(request, reply=r))
    built: BuildResult | None = None
    try:
        while True:
            try:
                answer = await answers.recv()
            except EndOfChannel:
                break
            if isinstance(answer, BuildOutput):
                await reply.send(answer)
            elif isinstance(answer, BuildResult):
                built = answer
    finally:
        answers.close()
    if built is None:
        raise Unavailable(f"node {node.id} ended the build without a result")
    await reply.send(BuildOutput(text=f"Built on node {node.id}; storing the image in the "
                                      "cluster's images\n"))
    imported = await _store(conn, built, images)
    await reply.send(BuildResult(image=imported.images[0]))
    reply.close()
    log.info("image built in the cluster", node_id=node.id, image=built.image.id,
             tags=built.image.tags)
    return imported


async def _store(conn: channels.Connection, built: BuildResult,
                 images: ClusterImages) -> ImageImported:
    spool = Path(tempfile.mkdtemp(prefix="build-", dir=images.service.spool_dir))
    try:
        archive = spool / "image.tar"
        saved = await _request(conn, lambda r: SaveImages(refs=[built.image.id], format="oci",
                                                          reply=r))
        try:
            with archive.open("wb") as out:
                while True:
                    try:
                        chunk = await saved.recv()
                    except EndOfChannel:
                        break
                    if isinstance(chunk, ImageChunk):
                        await asyncio.to_thread(out.write, chunk.data)
        finally:
            saved.close()
        # The OCI layout names every tag the image has: the import keeps them all.
        result = await asyncio.to_thread(images.service.import_file, archive, None, None)
        stored = await asyncio.to_thread(images.store.get, built.image.id)
        return ImageImported(images=[image_summary(stored)], format=result.format.value)
    finally:
        await asyncio.to_thread(shutil.rmtree, spool, True)
