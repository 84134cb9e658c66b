"""The container endpoints that change a container in place or read its use: pause, unpause,
rename, update and stats, in Docker's shapes.

``update`` reads Docker's UpdateConfig as its clients send it: the docker CLI sends every field
(zero for what it leaves alone), docker-py only those it was given; a field shoal cannot honour
is refused when it is set, never dropped. ``stats`` turns the daemon's samples into Docker's
stats document, each with the one before as its ``precpu_stats`` (what clients take a CPU
percentage from).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from dockerapi.containers import STATE, read_json
from dockerapi.errors import ApiError, bad_parameter, from_shoal
from dockerapi.params import flag
from dockerapi.views import iso_time
from protocol.errors import ShoalError
from protocol.messages import (
    ContainerStats,
    Ok,
    PauseContainer,
    RenameContainer,
    StatsContainer,
    UnpauseContainer,
    UpdateContainer,
)
from protocol.observed import ResourceSample
from protocol.specs import RestartPolicy

STATS_INTERVAL = 1.0  # seconds between samples, as Docker's collector
# UpdateConfig fields shoal's limits carry (the rest must be left at their zero value).
UPDATE_FIELDS = ("Memory", "MemorySwap", "NanoCpus", "CpuShares", "CpuQuota", "CpuPeriod",
                 "PidsLimit", "RestartPolicy")
BLKIO_LISTS = ("io_service_bytes_recursive", "io_serviced_recursive",
               "io_queue_recursive", "io_service_time_recursive", "io_wait_time_recursive",
               "io_merged_recursive", "io_time_recursive", "sectors_recursive")


async def _ok(request: web.Request, make: Any) -> None:
    ref = request.match_info["id"]
    try:
        await request.app[STATE].verbs.ask(make, Ok)
    except ShoalError as exc:
        raise from_shoal(exc, "container", ref) from None


async def pause(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    await _ok(request, lambda r: PauseContainer(id=ref, reply=r))
    return web.Response(status=204)


async def unpause(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    await _ok(request, lambda r: UnpauseContainer(id=ref, reply=r))
    return web.Response(status=204)


async def rename(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    name = request.query.get("name", "")
    if not name.strip("/"):
        raise bad_parameter("Neither old nor new names may be empty")
    await _ok(request, lambda r: RenameContainer(id=ref, name=name.removeprefix("/"),
                                                 reply=r))
    return web.Response(status=204)


async def update(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    body = await read_json(request)
    if not isinstance(body, dict):
        raise bad_parameter("the update must be a JSON object (Docker's UpdateConfig)")
    changes = update_fields(body)
    await _ok(request, lambda r: UpdateContainer(id=ref, reply=r, **changes))
    return web.json_response({"Warnings": []})


def update_fields(body: dict[str, Any]) -> dict[str, Any]:
    """UpdateContainer's fields from Docker's UpdateConfig (0 and "" are "unchanged", as in
    Docker; PidsLimit null is unchanged and 0 or -1 unlimited)."""
    for key, value in body.items():
        if key not in UPDATE_FIELDS and value not in (None, 0, "", [], {}, False):
            raise bad_parameter(f"{key} is not supported: shoal's update changes Memory, "
                                "MemorySwap, NanoCpus, CpuShares, CpuQuota/CpuPeriod, "
                                "PidsLimit and RestartPolicy")

    def number(key: str) -> int:
        value = body.get(key) or 0
        if not isinstance(value, int) or isinstance(value, bool):
            raise bad_parameter(f"{key}: expected a number, got {value!r}")
        return value

    changes: dict[str, Any] = {}
    memory, swap = number("Memory"), number("MemorySwap")
    if memory < 0 or swap < -1:
        raise bad_parameter("Memory and MemorySwap must not be negative (MemorySwap -1: "
                            "unlimited swap)")
    if memory:
        changes["memory"] = memory
    if swap:
        changes["memory_swap"] = swap
    nanos, quota, period = number("NanoCpus"), number("CpuQuota"), number("CpuPeriod")
    if nanos and (quota or period):
        raise bad_parameter("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nanos:
        changes["millicpus"] = nanos // 1_000_000
    elif quota > 0:
        changes["millicpus"] = quota * 1000 // (period or 100_000)
    elif quota < 0:
        changes["millicpus"] = 0  # -1: no quota
    elif period:
        raise bad_parameter("CpuPeriod without CpuQuota is not supported: shoal sets the "
                            "period with the quota (give both, or NanoCpus)")
    if number("CpuShares"):
        changes["cpu_shares"] = number("CpuShares")
    pids = body.get("PidsLimit")
    if pids is not None:
        if not isinstance(pids, int) or isinstance(pids, bool):
            raise bad_parameter(f"PidsLimit: expected a number, got {pids!r}")
        changes["pids"] = max(pids, 0)
    policy = body.get("RestartPolicy") or {}
    if not isinstance(policy, dict):
        raise bad_parameter("RestartPolicy must be an object")
    if policy.get("Name"):
        retries = policy.get("MaximumRetryCount") or 0
        try:
            changes["restart"] = RestartPolicy(name=policy["Name"], max_retries=retries)
        except (TypeError, ValueError) as exc:
            raise bad_parameter(f"invalid restart policy: {exc}") from None
        if policy["Name"] not in ("no", "on-failure", "always", "unless-stopped"):
            raise bad_parameter(f"invalid restart policy {policy['Name']!r}")
        if retries and policy["Name"] != "on-failure":
            raise bad_parameter(f"maximum retry count cannot be used with restart policy "
                                f"'{policy['Name']}'")
    return changes


async def stats(request: web.Request) -> web.StreamResponse:
    ref = request.match_info["id"]
    stream = flag(request, "stream", default=True)
    one_shot = flag(request, "one-shot")
    if one_shot and stream:
        raise bad_parameter("cannot have stream=true and one-shot=true")
    verbs = request.app[STATE].verbs
    samples = await verbs.open(lambda r: StatsContainer(
        id=ref, stream=stream or not one_shot, interval=STATS_INTERVAL, reply=r))
    response = web.StreamResponse(status=200)
    response.content_type = "application/json"
    before: ContainerStats | None = None
    try:
        async for message in samples:
            if not isinstance(message, ContainerStats):
                continue
            if not stream and not one_shot and before is None \
                    and message.sample.time:  # a second sample gives precpu, as Docker's
                before = message
                continue
            if not response.prepared:
                await response.prepare(request)
            await response.write(json.dumps(stats_document(message, before)).encode() + b"\n")
            before = message
            if not stream:
                break
    except ShoalError as exc:
        if not response.prepared:
            raise from_shoal(exc, "container", ref) from None
    except ConnectionError:
        return response  # the client went away
    finally:
        samples.close()
    if not response.prepared:
        raise ApiError(500, f"the daemon sent no statistics for {ref}")
    await response.write_eof()
    return response


def stats_document(now: ContainerStats, before: ContainerStats | None) -> dict[str, Any]:
    """Docker's stats JSON (API 1.45, cgroup v1 fields) of one sample and the one before."""
    s = now.sample
    previous = before.sample if before is not None else ResourceSample()
    blkio = {name: [{"major": e.major, "minor": e.minor, "op": e.op, "value": e.value}
                    for e in s.blkio[name]] if name in s.blkio else None
             for name in BLKIO_LISTS}
    document: dict[str, Any] = {
        "name": f"/{now.name}", "id": now.id,
        "read": iso_time(s.time), "preread": iso_time(previous.time),
        "pids_stats": {"current": s.pids_current,
                       **({"limit": s.pids_limit} if s.pids_limit else {})},
        "blkio_stats": blkio, "num_procs": 0, "storage_stats": {},
        "cpu_stats": _cpu(s), "precpu_stats": _cpu(previous),
        "memory_stats": {"usage": s.memory_usage, "max_usage": s.memory_max_usage,
                         "stats": dict(s.memory_stats), "failcnt": s.memory_failcnt,
                         "limit": s.memory_limit} if s.time else {},
    }
    if s.networks:
        document["networks"] = {name: {
            "rx_bytes": n.rx_bytes, "rx_packets": n.rx_packets, "rx_errors": n.rx_errors,
            "rx_dropped": n.rx_dropped, "tx_bytes": n.tx_bytes, "tx_packets": n.tx_packets,
            "tx_errors": n.tx_errors, "tx_dropped": n.tx_dropped}
            for name, n in s.networks.items()}
    return document


def _cpu(s: ResourceSample) -> dict[str, Any]:
    if not s.time:
        return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0,
                              "usage_in_usermode": 0},
                "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}
    return {"cpu_usage": {"total_usage": s.cpu_total, "percpu_usage": list(s.cpu_percpu),
                          "usage_in_kernelmode": s.cpu_kernel, "usage_in_usermode": s.cpu_user},
            "system_cpu_usage": s.system_cpu, "online_cpus": s.online_cpus,
            "throttling_data": {"periods": s.throttling_periods,
                                "throttled_periods": s.throttled_periods,
                                "throttled_time": s.throttled_time}}

