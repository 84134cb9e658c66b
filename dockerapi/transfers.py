"""Registry pulls and pushes (``POST /images/create?fromImage=``, ``POST /images/{name}/push``)
over the daemon's ``image.pull``/``image.push`` verbs: the credentials of Docker's
``X-Registry-Auth`` header, and the progress as Docker's JSON lines.

A refusal that comes before any progress is an HTTP error with Docker's status (a missing
image: 404); one that comes later is the stream's last line, ``{"error": ..., "errorDetail":
...}``, as Docker sends it once it has answered 200."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

import channels
from dockerapi.containers import STATE
from dockerapi.errors import ApiError, bad_parameter, from_shoal
from dockerapi.hijack import flush_head
from protocol.errors import ShoalError
from protocol.messages import (
    ImagePulled,
    ImagePushed,
    Message,
    PullImage,
    PushImage,
    RegistryOptions,
    TransferProgress,
)

MAX_AUTH_HEADER = 16384


class JsonLines:
    """A streamed answer of JSON lines, its head sent with the first line (so that an error
    found before it can still be an HTTP status)."""

    def __init__(self, request: web.Request, *first: dict[str, Any]) -> None:
        self.request = request
        self.response: web.StreamResponse | None = None
        self._first = list(first)  # sent before the first line, never alone

    async def send(self, line: dict[str, Any]) -> None:
        if self.response is None:
            self.response = web.StreamResponse(status=200)
            self.response.content_type = "application/json"
            flush_head(await self.response.prepare(self.request))
            for early in self._first:
                await self.response.write(json.dumps(early).encode() + b"\r\n")
        await self.response.write(json.dumps(line).encode() + b"\r\n")

    async def fail(self, exc: ShoalError, kind: str = "", ref: str = "") -> web.StreamResponse:
        """The answer to a refusal: an HTTP error before the stream began, else its last
        line."""
        if self.response is None:
            raise from_shoal(exc, kind, ref)
        message = str(exc)
        await self.send({"errorDetail": {"message": message}, "error": message})
        return await self.finish()

    async def finish(self) -> web.StreamResponse:
        if self.response is None:
            self.response = web.StreamResponse(status=200)
            self.response.content_type = "application/json"
            await self.response.prepare(self.request)
        await self.response.write_eof()
        return self.response


def registry_auth(request: web.Request) -> RegistryOptions:
    """Docker's ``X-Registry-Auth``: base64url of the JSON ``{"username", "password",
    "identitytoken", "auth", "serveraddress"}`` (``auth`` itself base64 of user:password);
    absent, empty or ``{}``: no credentials."""
    header = request.headers.get("X-Registry-Auth", "").strip()
    if not header:
        return RegistryOptions()
    if len(header) > MAX_AUTH_HEADER:
        raise bad_parameter("X-Registry-Auth is too long")
    try:
        padded = header + "=" * (-len(header) % 4)
        raw = base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))
        auth = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise bad_parameter(f"invalid X-Registry-Auth header: {exc}") from None
    if not isinstance(auth, dict):
        raise bad_parameter("invalid X-Registry-Auth header: expected a JSON object")
    username = str(auth.get("username") or "")
    password = str(auth.get("password") or "")
    if not username and auth.get("auth"):
        try:
            username, _, password = base64.b64decode(str(auth["auth"])).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise bad_parameter("invalid X-Registry-Auth header: bad auth field") from None
    return RegistryOptions(username=username, password=password,
                           identity_token=str(auth.get("identitytoken") or ""))


def _short(blob: str) -> str:
    return blob.removeprefix("sha256:")[:12]


def _bar(current: int, total: int) -> str:
    if not total:
        return ""
    done = min(50, current * 50 // total)
    arrow = ">" if done < 50 else ""
    return f"[{'=' * max(done - 1, 0)}{arrow}{' ' * (50 - done)}] {_size(current)}/{_size(total)}"


def _size(count: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000:
            return f"{count:.4g}{unit}"
        count /= 1000
    return f"{count:.4g}TB"


_PULL_WORDS = {"waiting": "Waiting", "exists": "Already exists", "downloading": "Downloading",
               "resuming": "Downloading", "verifying": "Verifying Checksum",
               "done": "Pull complete"}
_PUSH_WORDS = {"waiting": "Preparing", "exists": "Layer already exists",
               "uploading": "Pushing", "mounted": "Mounted from another repository",
               "pushed": "Pushed", "done": "Pushed"}


def progress_line(event: TransferProgress, words: dict[str, str]) -> dict[str, Any]:
    """One ``TransferProgress`` as Docker's progress message for that blob."""
    line: dict[str, Any] = {"status": words.get(event.action, event.action.capitalize()),
                            "progressDetail": {}, "id": _short(event.blob)}
    if event.action in ("downloading", "resuming", "uploading") and event.total:
        line["progressDetail"] = {"current": event.current, "total": event.total}
        line["progress"] = _bar(event.current, event.total)
    return line


async def _run(request: web.Request, lines: JsonLines,
               make: Callable[[channels.Sender, channels.Sender], Message],
               words: dict[str, str]) -> Message:
    """Send the transfer, stream its progress, return its answer (a refusal raised)."""
    verbs = request.app[STATE].verbs
    progress, reply = await verbs.open_with_progress(make)
    answer = asyncio.ensure_future(reply.recv())
    try:
        progressing = True
        while progressing:
            step = asyncio.ensure_future(progress.recv())
            await asyncio.wait((step, answer), return_when=asyncio.FIRST_COMPLETED)
            if not step.done():
                step.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await step
                break
            try:
                event = step.result()
            except (ShoalError, channels.EndOfChannel):
                progressing = False
                continue
            if isinstance(event, TransferProgress):
                await lines.send(progress_line(event, words))
        while True:  # what progress was still queued when the answer came
            try:
                event = progress.recv_nowait()  # type: ignore[assignment]
            except ShoalError:
                break
            if not isinstance(event, TransferProgress):
                break
            await lines.send(progress_line(event, words))
        return await answer
    finally:
        answer.cancel()
        progress.close()
        reply.close()


def _reference(image: str, tag: str) -> str:
    if not tag:
        return image
    return f"{image}@{tag}" if tag.startswith("sha256:") else f"{image}:{tag}"


async def pull(request: web.Request) -> web.StreamResponse:
    """``POST /images/create?fromImage=NAME&tag=TAG``."""
    image = request.query.get("fromImage", "")
    if not image:
        raise bad_parameter("fromImage is required")
    if request.query.get("repo") or request.query.get("message") or request.query.get(
            "changes"):
        raise bad_parameter("repo, message and changes apply to an import (fromSrc), which "
                            "shoal does not serve here")
    ref = _reference(image, request.query.get("tag", ""))
    if ":" not in ref.rpartition("/")[2] and "@" not in ref:
        ref += ":latest"
    platform = request.query.get("platform", "")
    options = registry_auth(request)
    tag = ref.rpartition("@")[2] if "@" in ref else ref.rpartition(":")[2]
    lines = JsonLines(request, {"status": f"Pulling from {image}", "id": tag})
    try:
        pulled = await _run(request, lines, lambda p, r: PullImage(
            ref=ref, platform=platform, registry=options, progress=p, reply=r), _PULL_WORDS)
    except ShoalError as exc:
        return await lines.fail(exc, "image", ref)
    if not isinstance(pulled, ImagePulled):
        raise ApiError(500, f"expected ImagePulled, got {type(pulled).__name__}")
    await lines.send({"status": f"Digest: {pulled.digest}"})
    status = "Downloaded newer image" if pulled.downloaded else "Image is up to date"
    await lines.send({"status": f"Status: {status} for {ref}"})
    return await lines.finish()


async def push(request: web.Request) -> web.StreamResponse:
    """``POST /images/{name}/push?tag=TAG``."""
    name = request.match_info["name"]
    tag = request.query.get("tag", "")
    ref = _reference(name, tag)
    options = registry_auth(request)
    lines = JsonLines(request, {"status": f"The push refers to repository [{name}]"})
    try:
        pushed = await _run(request, lines, lambda p, r: PushImage(
            ref=ref, registry=options, progress=p, reply=r), _PUSH_WORDS)
    except ShoalError as exc:
        if lines.response is None and from_shoal(exc).status == 404:
            raise ApiError(404, f"An image does not exist locally with the tag: {name}") \
                from None
        return await lines.fail(exc)
    if not isinstance(pushed, ImagePushed):
        raise ApiError(500, f"expected ImagePushed, got {type(pushed).__name__}")
    shown_tag = tag or (name.rpartition(":")[2] if ":" in name.rpartition("/")[2]
                        else "latest")
    await lines.send({"status": f"{shown_tag}: digest: {pushed.digest} size: {pushed.size}"})
    await lines.send({"progressDetail": {}, "aux": {"Tag": shown_tag, "Digest": pushed.digest,
                                                    "Size": pushed.size}})
    return await lines.finish()
