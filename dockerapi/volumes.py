"""The volume endpoints over the daemon's volume verbs: list, inspect, create, remove and
prune, in Docker's JSON shapes. Only the ``local`` driver; a create without a name gets a
random one, as Docker names an anonymous volume.

On a scheduler a volume lives on one node: ``NODE/NAME`` names the node, as Swarm classic
read it (``docker volume create worker2/data``); a plain name is the cluster's only volume of
that name (or, to create, its only node)."""

from __future__ import annotations

import secrets
from typing import Any

import msgspec
from aiohttp import web

from dockerapi.containers import STATE, read_json
from dockerapi.errors import ApiError, bad_parameter, from_shoal, no_such
from dockerapi.params import filters, flag
from dockerapi.views import iso_time
from protocol.errors import Conflict, NotFound, ShoalError
from protocol.messages import (
    CreateVolume,
    InspectVolume,
    ListVolumes,
    Ok,
    PruneVolumes,
    RemoveVolume,
    VolumeInspected,
    VolumeList,
    VolumesPruned,
)
from protocol.specs import VolumeInfo, VolumeSpec

LIST_FILTERS = ("name", "driver", "label", "dangling")
PRUNE_FILTERS = ("all", "label")


def _split(name: str) -> tuple[str, str]:
    """(node, volume) of Swarm classic's ``NODE/NAME``; ("", name) for a plain name."""
    node, slash, volume = name.rpartition("/")
    return (node, volume) if slash else ("", name)


def volume_view(info: VolumeInfo) -> dict[str, Any]:
    spec = info.spec
    return {"Name": spec.name, "Driver": spec.driver, "Mountpoint": info.mountpoint,
            "CreatedAt": iso_time(info.created_at)[:19] + "Z",
            # A scheduler's volume is on one node: said in the driver's status map, which
            # Docker's clients keep as given.
            "Status": {"Node": info.node_id} if info.node_id else None,
            "Labels": dict(spec.labels) or None, "Scope": "local",
            "Options": dict(spec.options) or None, "UsageData": None}


def _matches(info: VolumeInfo, wanted: dict[str, list[str]]) -> bool:
    def one(key: str, value: str) -> bool:
        if key == "name":
            return value in info.spec.name
        if key == "driver":
            return info.spec.driver == value
        if key == "dangling":
            return (value in ("1", "true")) == (not info.users)
        label, _, want = value.partition("=")
        labels = info.spec.labels
        return label in labels and (not want or labels[label] == want)
    # Docker: every label filter must match; any value of another key will do.
    return all((all if key == "label" else any)(one(key, v) for v in values)
               for key, values in wanted.items() if values)


async def list_(request: web.Request) -> web.Response:
    wanted = filters(request, LIST_FILTERS)
    try:
        infos = (await request.app[STATE].verbs.ask(lambda r: ListVolumes(reply=r),
                                                    VolumeList)).volumes
    except ShoalError as exc:
        raise from_shoal(exc) from None
    return web.json_response({"Volumes": [volume_view(i) for i in infos if _matches(i, wanted)],
                              "Warnings": None})


async def inspect(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    node, volume = _split(name)
    try:
        info = (await request.app[STATE].verbs.ask(
            lambda r: InspectVolume(name=volume, node_id=node, reply=r), VolumeInspected)).info
    except ShoalError as exc:
        raise from_shoal(exc, "volume", name) from None
    return web.json_response(volume_view(info))


async def create(request: web.Request) -> web.Response:
    body = await read_json(request)
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise bad_parameter("expected a JSON object")
    driver = body.get("Driver") or "local"
    if driver != "local":
        raise bad_parameter(f"volume driver {driver!r} is not supported: shoal has local")
    if body.get("ClusterVolumeSpec"):
        raise bad_parameter("cluster volumes (ClusterVolumeSpec) are not supported by shoal")
    node, name = _split(str(body.get("Name") or ""))
    name = name or secrets.token_hex(32)
    try:
        spec = msgspec.convert({"name": name, "driver": driver,
                                "labels": body.get("Labels") or {},
                                "options": body.get("DriverOpts") or {}}, VolumeSpec)
        created = await request.app[STATE].verbs.ask(
            lambda r: CreateVolume(spec=spec, node_id=node, reply=r), VolumeInspected)
    except msgspec.ValidationError as exc:
        raise bad_parameter(f"invalid volume: {exc}") from None
    except Conflict as exc:
        raise ApiError(409, str(exc)) from None
    except ShoalError as exc:
        raise from_shoal(exc) from None
    return web.json_response(volume_view(created.info), status=201)


async def remove(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    node, volume = _split(name)
    force = flag(request, "force")
    try:
        await request.app[STATE].verbs.ask(
            lambda r: RemoveVolume(name=volume, node_id=node, force=force, reply=r), Ok)
    except NotFound:
        if force:
            return web.Response(status=204)
        raise no_such("volume", name) from None
    except Conflict as exc:
        raise ApiError(409, f"remove {name}: volume is in use ({exc})") from None
    except ShoalError as exc:
        raise from_shoal(exc, "volume", name) from None
    return web.Response(status=204)


async def prune(request: web.Request) -> web.Response:
    wanted = filters(request, PRUNE_FILTERS)
    if wanted.get("label"):
        raise bad_parameter("volume prune label filters are not supported by shoal")
    all_ = any(v in ("1", "true") for v in wanted.get("all", []))
    try:
        pruned = await request.app[STATE].verbs.ask(lambda r: PruneVolumes(all=all_, reply=r),
                                                    VolumesPruned)
    except ShoalError as exc:
        raise from_shoal(exc) from None
    return web.json_response({"VolumesDeleted": list(pruned.names) or None,
                              "SpaceReclaimed": pruned.reclaimed})
