"""The image endpoints over the daemon's image verbs: list, inspect, remove, and ``load`` (a
``docker save`` tar streamed to the import verb as it arrives)."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

import channels
from dockerapi.containers import STATE
from dockerapi.errors import bad_parameter, from_shoal, missing
from dockerapi.hijack import flush_head
from dockerapi.params import filters, flag
from dockerapi.views import image_row, inspect_image
from protocol.errors import ChannelError, ShoalError
from protocol.messages import (
    ImageImported,
    ImageInspected,
    ImageList,
    ImageRemoved,
    ImportImage,
    InspectImage,
    ListImages,
    RemoveImage,
)
from protocol.specs import ImageSummary

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


async def create(request: web.Request) -> web.Response:
    """``POST /images/create``: a pull (``fromImage``) or an import (``fromSrc``); shoal
    serves neither through this API yet."""
    raise missing("import" if request.query.get("fromSrc") else "pull")
