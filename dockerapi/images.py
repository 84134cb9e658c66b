"""The image endpoints over the daemon's image verbs: list, inspect, history, remove, tag, prune,
``load`` (a ``docker save`` tar streamed to the import verb as it arrives) and ``get`` (the
save verb's chunks streamed out as they come). Pulls and pushes are ``dockerapi.transfers``,
builds ``dockerapi.build``."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

import channels
from dockerapi import transfers
from dockerapi.containers import STATE
from dockerapi.errors import bad_parameter, from_shoal, missing
from dockerapi.hijack import flush_head
from dockerapi.params import filters, flag
from dockerapi.views import image_row, inspect_image
from protocol.errors import ChannelError, EndOfChannel, ShoalError
from protocol.messages import (
    ImageChunk,
    ImageHistory,
    ImageHistoryList,
    ImageImported,
    ImageInspected,
    ImageList,
    ImageRemoved,
    ImagesPruned,
    ImportImage,
    InspectImage,
    ListImages,
    Ok,
    PruneImages,
    RemoveImage,
    SaveImages,
    TagImage,
)
from protocol.observed import ImageSummary

LOAD_CHUNK = 1 << 16


def _matches(image: ImageSummary, reference: list[str]) -> bool:
    if not reference:
        return True
    return any(tag == want or tag.split(":")[0] == want for tag in image.tags
               for want in reference)


async def list_(request: web.Request) -> web.Response:
    state = request.app[STATE]
    wanted = filters(request, ("reference", "dangling"))
    try:
        images = (await state.verbs.ask(lambda r: ListImages(reply=r), ImageList)).images
    except ShoalError as exc:
        raise from_shoal(exc) from None
    dangling = wanted.get("dangling", [])
    rows = [image_row(i) for i in images if _matches(i, wanted.get("reference", []))
            and (not dangling or (dangling[0] in ("true", "1")) == (not i.tags))]
    return web.json_response(rows)


async def inspect(request: web.Request) -> web.Response:
    state, name = request.app[STATE], request.match_info["name"]
    try:
        info = (await state.verbs.ask(lambda r: InspectImage(ref=name, reply=r),
                                      ImageInspected)).info
    except ShoalError as exc:
        raise from_shoal(exc, "image", name) from None
    return web.json_response(inspect_image(info))


async def remove(request: web.Request) -> web.Response:
    state, name = request.app[STATE], request.match_info["name"]
    if flag(request, "noprune"):
        raise bad_parameter("noprune is not supported: shoal removes an image's unused layers")
    force = flag(request, "force")
    try:
        removed = await state.verbs.ask(lambda r: RemoveImage(ref=name, force=force, reply=r),
                                        ImageRemoved)
    except ShoalError as exc:
        raise from_shoal(exc, "image", name) from None
    return web.json_response([*({"Untagged": t} for t in removed.untagged),
                              *({"Deleted": d} for d in removed.deleted)])


async def load(request: web.Request) -> web.StreamResponse:
    """``POST /images/load``: the body goes to the import verb as it arrives (never held
    whole); the answer is Docker's progress stream of ``{"stream": "Loaded image: ..."}``."""
    state = request.app[STATE]
    writer, reader = channels.byte_pipe()
    try:
        answer = asyncio.ensure_future(state.verbs.ask(
            lambda r: ImportImage(name="", format="docker", data=reader, source="load",
                                  reply=r), ImageImported))
        try:
            async for chunk in request.content.iter_chunked(LOAD_CHUNK):
                if answer.done():
                    break  # refused before the end: its error is the answer
                await writer.write(chunk)
        except ChannelError:
            pass
        finally:
            writer.close()
        imported = await answer
    except ShoalError as exc:
        raise from_shoal(exc) from None
    response = web.StreamResponse(status=200)
    response.content_type = "application/json"
    flush_head(await response.prepare(request))
    for image in imported.images:
        for name in image.tags or [image.id]:
            line = {"stream": f"Loaded image{'' if image.tags else ' ID'}: {name}\n"}
            await response.write(json.dumps(line).encode() + b"\n")
    await response.write_eof()
    return response


async def create(request: web.Request) -> web.StreamResponse:
    """``POST /images/create``: a pull (``fromImage``) or an import (``fromSrc``, which shoal
    does not serve here)."""
    if request.query.get("fromSrc"):
        raise missing("import")
    return await transfers.pull(request)


async def tag(request: web.Request) -> web.Response:
    """``POST /images/{name}/tag?repo=&tag=``."""
    state, name = request.app[STATE], request.match_info["name"]
    repo, tag_ = request.query.get("repo", ""), request.query.get("tag", "")
    if not repo:
        raise bad_parameter("repository name (repo) is required")
    target = f"{repo}:{tag_}" if tag_ else repo
    try:
        await state.verbs.ask(lambda r: TagImage(source=name, target=target, reply=r), Ok)
    except ShoalError as exc:
        raise from_shoal(exc, "image", name) from None
    return web.Response(status=201)


async def prune(request: web.Request) -> web.Response:
    """``POST /images/prune``: untagged images, or every unused one with ``dangling=false``."""
    state = request.app[STATE]
    wanted = filters(request, ("dangling", "until", "label"))
    if wanted.get("until") or wanted.get("label"):
        raise bad_parameter("image prune filters until and label are not supported by shoal")
    all_ = any(v in ("0", "false") for v in wanted.get("dangling", []))
    try:
        pruned = await state.verbs.ask(lambda r: PruneImages(all=all_, reply=r), ImagesPruned)
    except ShoalError as exc:
        raise from_shoal(exc) from None
    deleted = [*({"Untagged": t} for t in pruned.untagged),
               *({"Deleted": d} for d in pruned.deleted)]
    return web.json_response({"ImagesDeleted": deleted or None,
                              "SpaceReclaimed": pruned.reclaimed})


async def get(request: web.Request) -> web.StreamResponse:
    """``GET /images/{name}/get`` and ``GET /images/get?names=...``: a ``docker save`` tar."""
    state = request.app[STATE]
    names = [request.match_info["name"]] if "name" in request.match_info \
        else request.query.getall("names", [])
    if not names:
        raise bad_parameter("no image names given (names=)")
    chunks = await state.verbs.open(lambda r: SaveImages(refs=names, format="docker", reply=r))
    try:
        try:
            first = await chunks.recv()
        except EndOfChannel:
            first = None
        except ShoalError as exc:
            raise from_shoal(exc, "image", names[0]) from None
        response = web.StreamResponse(status=200)
        response.content_type = "application/x-tar"
        await response.prepare(request)
        message = first
        while message is not None:
            if isinstance(message, ImageChunk):
                await response.write(message.data)
            try:
                message = await chunks.recv()
            except EndOfChannel:
                message = None
            except ShoalError:
                # A failure midway cannot change the status any more: the tar ends short,
                # and its reader finds it truncated, as with docker.
                response.force_close()
                return response
        await response.write_eof()
        return response
    finally:
        chunks.close()


async def history(request: web.Request) -> web.Response:
    """``GET /images/{name}/history``: the config's history, newest first; steps below the
    newest have no image of their own here (``<missing>``, as docker shows pulled images)."""
    state, name = request.app[STATE], request.match_info["name"]
    try:
        entries = (await state.verbs.ask(lambda r: ImageHistory(ref=name, reply=r),
                                         ImageHistoryList)).entries
    except ShoalError as exc:
        raise from_shoal(exc, "image", name) from None
    return web.json_response([
        {"Id": entry.image_id or "<missing>", "Created": int(entry.created),
         "CreatedBy": entry.created_by, "Tags": list(entry.tags) or None, "Size": entry.size,
         "Comment": entry.comment} for entry in entries])
