"""``login`` and ``search`` against a registry: checking credentials, and docker's v1 search
where a registry offers it (Docker Hub does; distribution does not: the refusal says so)."""

from __future__ import annotations

import msgspec

from worker.images.registry.errors import ManifestUnknown, RegistryError
from worker.images.registry.names import HUB_API_HOST
from worker.images.registry.session import RegistryAccess, RegistrySession

HUB_SEARCH_HOST = "index.docker.io"
MAX_SEARCH_BYTES = 4 * 1024 * 1024


class SearchHit(msgspec.Struct, frozen=True):
    name: str
    description: str = ""
    star_count: int = 0
    is_official: bool = False
    is_automated: bool = False


class _SearchAnswer(msgspec.Struct):
    results: list[SearchHit] = []


async def check_login(host: str, access: RegistryAccess) -> None:
    """Succeeds when the registry accepts ``access``'s credentials; else its refusal
    (``unauthorized: ...``)."""
    async with RegistrySession(host, access) as session:
        response = await session.request("GET", "/v2/", "", what=f"login to {host}")
        response.release()


async def search(host: str, term: str, access: RegistryAccess, limit: int = 25) \
        -> list[SearchHit]:
    """Docker's ``GET /v1/search``; a registry without it is refused with the reason."""
    if host == HUB_API_HOST:
        host = HUB_SEARCH_HOST
    async with RegistrySession(host, access) as session:
        try:
            response = await session.request(
                "GET", session.url("/v1/search").with_query(q=term, n=str(limit)), "",
                what=f"search {host}")
        except ManifestUnknown as exc:
            raise RegistryError(f"registry {host} does not support search (GET /v1/search "
                                "answered 404; distribution registries offer only "
                                "pull and push)", details={"registry": host}) from exc
        try:
            body = await response.content.read(MAX_SEARCH_BYTES)
        finally:
            response.release()
    try:
        return msgspec.json.decode(body, type=_SearchAnswer).results[:limit]
    except msgspec.DecodeError as exc:
        raise RegistryError(f"registry {host}: its search answer is not docker's: {exc}") \
            from exc
