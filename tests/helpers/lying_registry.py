"""A registry that lies, for the pull tests: a small aiohttp server on 127.0.0.1 port 0 that
serves one image (``/v2/app/...``) and can be told to change what it sends: another blob's
bytes, more or fewer bytes than the descriptor says, a connection cut mid-blob (once, or
always), a manifest over the size limit, or a manifest that is not what its digest says.
It records the ``Range`` header of every blob request."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from tests.helpers.registry_images import RegistryImage
from worker.images.oci import MT_OCI_MANIFEST


@dataclass
class Lies:
    """What the server does wrong; all off serves the image honestly."""

    blob_bytes: dict[str, bytes] = field(default_factory=dict)  # digest → bytes served instead
    cut_after: int | None = None  # end the connection after this many bytes of a blob
    cut_times: int = 0  # how many blob transfers are cut (then honest)
    ignore_range: bool = False
    manifest_bytes: bytes | None = None  # served instead of the manifest
    manifest_length: int | None = None  # Content-Length announced for the manifest
    announced_digest: str | None = None  # Docker-Content-Digest header


@dataclass
class LyingRegistry:
    image: RegistryImage
    lies: Lies
    address: str = ""
    ranges: list[str] = field(default_factory=list)  # Range headers of blob requests ("" none)

    async def _ping(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def _manifest(self, request: web.Request) -> web.StreamResponse:
        body = self.lies.manifest_bytes if self.lies.manifest_bytes is not None \
            else self.image.manifest
        headers = {"Content-Type": MT_OCI_MANIFEST,
                   "Docker-Content-Digest": self.lies.announced_digest or self.image.digest}
        if self.lies.manifest_length is None:
            return web.Response(body=body, headers=headers)
        response = web.StreamResponse(headers=headers)
        response.content_length = self.lies.manifest_length
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            await response.write(body[:1 << 16])
        return response

    async def _blob(self, request: web.Request) -> web.StreamResponse:
        digest = request.match_info["digest"]
        data = self.lies.blob_bytes.get(digest, self.image.blobs.get(digest))
        if data is None:
            return web.json_response({"errors": [{"code": "BLOB_UNKNOWN",
                                                  "message": "blob unknown"}]}, status=404)
        asked = request.headers.get("Range", "")
        self.ranges.append(asked)
        start = 0
        status = 200
        headers = {"Content-Type": "application/octet-stream"}
        if asked.startswith("bytes=") and not self.lies.ignore_range:
            start = int(asked[len("bytes="):].rstrip("-"))
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = len(data) - start
        await response.prepare(request)
        if self.lies.cut_after is not None and self.lies.cut_times > 0 and \
                len(data) - start > self.lies.cut_after:
            self.lies.cut_times -= 1
            await response.write(data[start:start + self.lies.cut_after])
            assert request.transport is not None
            request.transport.close()  # the connection breaks mid-blob
            return response
        await response.write(data[start:])
        await response.write_eof()
        return response

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[LyingRegistry]:
        app = web.Application()
        app.router.add_get("/v2/", self._ping)
        app.router.add_get("/v2/app/manifests/{reference}", self._manifest)
        app.router.add_get("/v2/app/blobs/{digest}", self._blob)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.address = f"127.0.0.1:{port}"
        try:
            yield self
        finally:
            await runner.cleanup()
