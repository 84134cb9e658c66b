"""``POST /build``: a Dockerfile build over the daemon's ``image.build`` verb.

Docker's client sends the context as a tar (``.dockerignore`` applied, gzip allowed) with the
Dockerfile inside it; the verb takes the Dockerfile's text in the request and the context on a
byte stream. So the body is spooled to a temporary file (bounded), the Dockerfile read from it,
and the tar streamed to the daemon. The answer is Docker's classic builder stream:
``{"stream": ...}`` lines, ``{"aux": {"ID": ...}}``, ``Successfully built``/``tagged`` (which
docker-py reads the id from), or ``{"error": ...}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import tarfile
import tempfile
from typing import IO, Any

from aiohttp import web

import channels
from dockerapi.containers import STATE
from dockerapi.errors import ApiError, bad_parameter, from_shoal
from dockerapi.params import flag
from dockerapi.transfers import JsonLines
from protocol.errors import ChannelError, EndOfChannel, ShoalError
from protocol.messages import MAX_DOCKERFILE_BYTES, BuildImage, BuildOutput, BuildResult

MAX_CONTEXT = 4 << 30  # bytes of context tar a build may send
CHUNK = 1 << 16
# Query parameters Docker's clients send at these values when the option is not given.
_EMPTY_OK = {"rm": ("", "1", "true", "0", "false"), "forcerm": ("", "0", "false", "1", "true"),
             "pull": ("", "0", "false"), "labels": ("", "{}", "null"),
             "cachefrom": ("", "[]", "null"), "networkmode": ("", "default"),
             "shmsize": ("", "0"), "memory": ("", "0"), "memswap": ("", "0", "-1"),
             "cpushares": ("", "0"), "cpusetcpus": ("",), "cpusetmems": ("",),
             "cpuperiod": ("", "0"), "cpuquota": ("", "0"), "extrahosts": ("",),
             "squash": ("", "0", "false"), "version": ("", "1"), "session": ("",),
             "remote": ("",), "outputs": ("",), "isolation": ("", "default"),
             "ulimits": ("", "[]", "null"), "securityopt": ("",), "cgroupparent": ("",)}
_USED = {"t", "dockerfile", "buildargs", "target", "nocache", "q", "platform"}


def _check_query(request: web.Request) -> None:
    for key, value in request.query.items():
        if key in _USED:
            continue
        if key not in _EMPTY_OK:
            raise bad_parameter(f"build parameter {key!r} is not supported by shoal")
        if value.strip().lower() not in _EMPTY_OK[key]:
            raise bad_parameter(f"build parameter {key}={value[:80]!r} is not supported by "
                                "shoal" + (" (BuildKit: use the classic builder, "
                                           "DOCKER_BUILDKIT=0)" if key == "version" else ""))


def _build_args(request: web.Request) -> dict[str, str]:
    text = request.query.get("buildargs", "")
    if not text:
        return {}
    try:
        args = json.loads(text)
    except ValueError:
        raise bad_parameter("buildargs: expected a JSON object") from None
    if not isinstance(args, dict):
        raise bad_parameter("buildargs: expected a JSON object")
    # Docker's null value means "from the daemon's environment": nothing there on shoal.
    return {str(k): str(v) for k, v in args.items() if v is not None}


async def _spool(request: web.Request, into: IO[bytes]) -> None:
    total = 0
    async for chunk in request.content.iter_chunked(CHUNK):
        total += len(chunk)
        if total > MAX_CONTEXT:
            raise ApiError(413, f"build context over {MAX_CONTEXT} bytes")
        await asyncio.to_thread(into.write, chunk)
    await asyncio.to_thread(into.flush)


def _is_gzip(spool: IO[bytes]) -> bool:
    spool.seek(0)
    magic = spool.read(2)
    spool.seek(0)
    return magic == b"\x1f\x8b"


def _dockerfile(spool: IO[bytes], name: str) -> str:
    """The Dockerfile's text from the context tar (Docker's default name ``Dockerfile``)."""
    wanted = name.removeprefix("./")
    spool.seek(0)
    try:
        with tarfile.open(fileobj=spool, mode="r:*") as tar:
            for member in tar:
                if member.name.removeprefix("./") == wanted and member.isfile():
                    if member.size > MAX_DOCKERFILE_BYTES:
                        raise bad_parameter(f"{name} is over {MAX_DOCKERFILE_BYTES} bytes")
                    data = tar.extractfile(member)
                    if data is None:
                        break
                    return data.read().decode("utf-8", "replace")
    except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile) as exc:
        raise bad_parameter(f"the build context is not a tar: {exc}") from None
    raise bad_parameter(f"Cannot locate specified Dockerfile: {name}")


async def _send_context(spool: IO[bytes], writer: channels.ByteWriter) -> None:
    reader: IO[bytes] = spool
    if _is_gzip(spool):
        reader = gzip.GzipFile(fileobj=spool)  # type: ignore[assignment]  # a binary reader
    spool.seek(0)
    try:
        while chunk := await asyncio.to_thread(reader.read, CHUNK):
            await writer.write(chunk)
    except ChannelError:
        pass  # the build ended early (a refusal): its answer says why
    finally:
        writer.close()


async def build(request: web.Request) -> web.StreamResponse:
    _check_query(request)
    tags = request.query.getall("t", [])
    name = request.query.get("dockerfile", "") or "Dockerfile"
    quiet = flag(request, "q")
    args = _build_args(request)
    with tempfile.TemporaryFile(prefix="shoal-build-") as spool:
        await _spool(request, spool)
        text = await asyncio.to_thread(_dockerfile, spool, name)
        writer, reader = channels.byte_pipe()
        reply_tx, reply_rx = channels.pipe(capacity=64)
        await request.app[STATE].verbs.send(BuildImage(
            dockerfile=text, dockerfile_name=name.rpartition("/")[2], tags=tags,
            build_args=args, target=request.query.get("target", ""),
            no_cache=flag(request, "nocache"), platform=request.query.get("platform", ""),
            context=reader, reply=reply_tx))
        sending = asyncio.ensure_future(_send_context(spool, writer))
        lines = JsonLines(request)
        try:
            return await _answer(lines, reply_rx, tags, quiet)
        finally:
            reply_rx.close()
            sending.cancel()
            writer.close()
            # its read of the spool (in a thread) ends before the spool is closed
            with contextlib.suppress(asyncio.CancelledError):
                await sending


async def _answer(lines: JsonLines, replies: channels.Receiver, tags: list[str],
                  quiet: bool) -> web.StreamResponse:
    result: BuildResult | None = None
    while True:
        try:
            message = await replies.recv()
        except EndOfChannel:
            break
        except ShoalError as exc:
            if lines.response is None:
                raise from_shoal(exc) from None
            detail: dict[str, Any] = {"message": str(exc)}
            code = exc.details.get("exit_code", "")
            if code.isdigit():
                detail["code"] = int(code)
            await lines.send({"errorDetail": detail, "error": str(exc)})
            return await lines.finish()
        if isinstance(message, BuildOutput) and not quiet:
            await lines.send({"stream": message.text})
        elif isinstance(message, BuildResult):
            result = message
    if result is None:
        raise ApiError(500, "the daemon ended the build without a result")
    image = result.image.id
    await lines.send({"aux": {"ID": image}})
    if quiet:
        await lines.send({"stream": f"{image}\n"})
    else:
        await lines.send({"stream": f"Successfully built {image.removeprefix('sha256:')[:12]}\n"})
        for tag in tags:
            await lines.send({"stream": f"Successfully tagged {tag}\n"})
    return await lines.finish()
