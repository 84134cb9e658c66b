"""The daemon-wide endpoints: ``_ping``, ``version``, ``info`` (with the nodes on a scheduler,
as Swarm classic's ``SystemStatus`` showed them), ``events`` and ``system/df``."""

from __future__ import annotations

import asyncio
import json
import platform
import time
from typing import Any

from aiohttp import web

from dockerapi.containers import STATE
from dockerapi.errors import bad_parameter, from_shoal
from dockerapi.hijack import flush_head
from dockerapi.params import filters, timestamp
from dockerapi.views import event_view, iso_time
from protocol.errors import ShoalError
from protocol.messages import (
    ContainerList,
    DiskUsage,
    EventMessage,
    GetDiskUsage,
    ImageList,
    ListContainers,
    ListImages,
    ListNodes,
    NodeList,
    WatchEvents,
)

API_VERSION = "1.45"
MIN_API_VERSION = "1.24"
EVENT_FILTERS = ("type", "container", "event", "image", "label", "node")
DF_TYPES = ("container", "image", "volume", "build-cache")


async def ping(request: web.Request) -> web.Response:
    headers = {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache",
               "Builder-Version": "1", "Swarm": "inactive"}
    if request.method == "HEAD":
        return web.Response(status=200, headers=headers, content_type="text/plain")
    return web.Response(text="OK", headers=headers)


async def version(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        info = await state.version()
    except ShoalError as exc:
        raise from_shoal(exc) from None
    component = {"Name": f"shoal {info.component}", "Version": info.version,
                 "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
                             "Protocol": str(info.protocol)}}
    return web.json_response({
        "Platform": {"Name": "shoal"}, "Components": [component],
        "Version": info.version, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "", "GoVersion": f"python{platform.python_version()}", "Os": info.os,
        "Arch": info.arch, "KernelVersion": platform.release(), "BuildTime": ""})


async def info(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        about = await state.version()
        rows = (await state.verbs.ask(lambda r: ListContainers(all=True, reply=r),
                                      ContainerList)).containers
        images = (await state.verbs.ask(lambda r: ListImages(reply=r), ImageList)).images
        nodes = (await state.verbs.ask(lambda r: ListNodes(reply=r), NodeList)) \
            if about.component == "scheduler" else None
    except ShoalError as exc:
        raise from_shoal(exc) from None
    counts = {s: sum(1 for r in rows if r.state.status == s)
              for s in ("running", "paused", "exited")}
    body: dict[str, Any] = {
        "ID": "", "Containers": len(rows), "ContainersRunning": counts["running"],
        "ContainersPaused": counts["paused"],
        "ContainersStopped": len(rows) - counts["running"] - counts["paused"],
        "Images": len(images), "Driver": "", "DriverStatus": [], "Plugins": {},
        "MemoryLimit": True, "SwapLimit": True, "CpuCfsPeriod": True, "CpuCfsQuota": True,
        "CPUShares": True, "PidsLimit": True, "IPv4Forwarding": True,
        "Debug": False, "NFd": 0, "NGoroutines": 0, "SystemTime": "",
        "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs", "CgroupVersion": "2",
        "NEventsListener": 0, "KernelVersion": platform.release(),
        "OperatingSystem": f"shoal {about.component}", "OSType": about.os,
        "Architecture": platform.machine(), "IndexServerAddress": "",
        "RegistryConfig": None, "NCPU": 0, "MemTotal": 0, "DockerRootDir": "",
        "Name": platform.node(), "Labels": [], "ExperimentalBuild": False,
        "ServerVersion": about.version, "Runtimes": {}, "DefaultRuntime": "shoal",
        "Swarm": {"LocalNodeState": "inactive", "ControlAvailable": False, "NodeID": "",
                  "NodeAddr": "", "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": True, "Isolation": "", "InitBinary": "tini",
        "SecurityOptions": ["name=seccomp,profile=builtin"], "Warnings": None,
    }
    if nodes is not None:
        # Swarm classic's SystemStatus: a table of [label, value] pairs, one block per node.
        status: list[list[str]] = [["Role", "primary"], ["Strategy", "spread"],
                                   ["Nodes", str(len(nodes.nodes))]]
        for node in nodes.nodes:
            usage = nodes.usage.get(node.id)
            status += [
                [f" {node.id}", node.address], ["  └ Hostname", node.hostname],
                ["  └ ID", node.id], ["  └ Status", node.status.capitalize()],
                ["  └ Containers", str(usage.containers if usage else 0)],
                ["  └ Reserved CPUs", f"{(usage.millicpus if usage else 0) / 1000:g} / "
                                      f"{node.capacity.millicpus / 1000:g}"],
                ["  └ Reserved Memory", f"{usage.memory if usage else 0} B / "
                                        f"{node.capacity.memory} B"],
                ["  └ Labels", ", ".join(f"{k}={v}" for k, v in node.labels.items())],
                ["  └ ServerVersion", node.version]]
        body["SystemStatus"] = status
        body["NCPU"] = sum(n.capacity.millicpus for n in nodes.nodes) // 1000
        body["MemTotal"] = sum(n.capacity.memory for n in nodes.nodes)
    return web.json_response(body)


def _event_filters(wanted: dict[str, list[str]]) -> dict[str, str]:
    """Docker's event filters as shoal's (one value per key; several are refused)."""
    translated: dict[str, str] = {}
    for key, values in wanted.items():
        if len(values) > 1:
            raise bad_parameter(f"filter {key!r}: only one value per key is supported")
        if not values:
            continue
        name = {"container": "id", "event": "action"}.get(key, key)
        translated[name] = values[0]
    return translated


async def events(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    wanted = _event_filters(filters(request, EVENT_FILTERS))
    since, until = timestamp(request, "since"), timestamp(request, "until")
    try:
        stream = await state.verbs.open(lambda r: WatchEvents(since=since, filters=wanted,
                                                              reply=r))
    except ShoalError as exc:
        raise from_shoal(exc) from None
    response = web.StreamResponse(status=200)
    response.content_type = "application/json"
    flush_head(await response.prepare(request))
    try:
        while True:
            timeout = None
            if until:
                timeout = until - time.time()
                if timeout <= 0:
                    break
            try:
                message = await asyncio.wait_for(stream.recv(), timeout)
            except TimeoutError:
                break
            if isinstance(message, EventMessage):
                if until and message.event.time > until:
                    break
                await response.write(json.dumps(event_view(message.event)).encode() + b"\n")
    except (ShoalError, ConnectionError):
        pass
    finally:
        stream.close()
    await response.write_eof()
    return response


async def disk_usage(request: web.Request) -> web.Response:
    """``GET /system/df?type=``: images, containers, volumes and build cache with sizes."""
    state = request.app[STATE]
    kinds = request.query.getall("type", []) or list(DF_TYPES)
    unknown = [k for k in kinds if k not in DF_TYPES]
    if unknown:
        raise bad_parameter(f"unknown type: {unknown[0]!r} (expected one of "
                            f"{', '.join(DF_TYPES)})")
    try:
        usage = await state.verbs.ask(lambda r: GetDiskUsage(reply=r), DiskUsage)
    except ShoalError as exc:
        raise from_shoal(exc) from None
    body: dict[str, Any] = {}
    if "image" in kinds:
        body["LayersSize"] = usage.layers_size
        body["Images"] = [
            {"Id": i.id, "ParentId": "", "RepoTags": list(i.tags) or ["<none>:<none>"],
             "RepoDigests": [], "Created": int(i.created), "Size": i.size,
             "SharedSize": i.shared, "VirtualSize": i.size, "Labels": {},
             "Containers": i.containers} for i in usage.images]
    if "container" in kinds:
        body["Containers"] = [
            {"Id": c.id, "Names": [f"/{c.name}"], "Image": c.image, "ImageID": c.image_id,
             "Command": c.command, "Created": int(c.created), "State": c.status,
             "Status": c.status, "SizeRw": c.size_rw, "SizeRootFs": c.size_root,
             "Labels": {}, "Ports": [], "Mounts": [], "HostConfig": {},
             "NetworkSettings": {"Networks": {}}} for c in usage.containers]
    if "volume" in kinds:
        body["Volumes"] = [
            {"Name": v.name, "Driver": v.driver, "Mountpoint": v.mountpoint, "Labels": {},
             "Scope": "local", "Options": {}, "CreatedAt": "",
             "UsageData": {"Size": v.size, "RefCount": v.containers}} for v in usage.volumes]
    if "build-cache" in kinds:
        body["BuildCache"] = [
            {"ID": b.id.removeprefix("sha256:")[:25], "Parent": "", "Parents": [],
             "Type": "regular", "Description": b.description, "InUse": False,
             "Shared": False, "Size": b.size, "CreatedAt": iso_time(b.created),
             "LastUsedAt": None, "UsageCount": 0} for b in usage.build_cache]
    return web.json_response(body)
