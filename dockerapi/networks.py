"""The network endpoints over the daemon's network verbs: list, inspect, create, remove,
connect, disconnect and prune, in Docker's JSON shapes (IPAM config, the Containers map).

Docker's predefined ``host`` and ``none`` are listed beside the daemon's own networks (shoal's
container modes of those names need no network record); its ``bridge`` is shoal's default
network of that name."""

from __future__ import annotations

import ipaddress
from typing import Any

from aiohttp import web

from dockerapi.containers import STATE, read_json
from dockerapi.errors import ApiError, bad_parameter, from_shoal
from dockerapi.params import filters
from dockerapi.views import iso_time
from protocol.errors import Conflict, ShoalError, Unsupported
from protocol.messages import (
    ConnectNetwork,
    CreateNetwork,
    DisconnectNetwork,
    InspectNetwork,
    ListNetworks,
    NetworkCreated,
    NetworkInspected,
    NetworkList,
    NetworksPruned,
    Ok,
    PruneNetworks,
    RemoveNetwork,
)
from protocol.specs import NetworkInfo, NetworkSpec
from protocol.subnets import endpoint_id, mac_of
from protocol.validation import refuse_network_options

LIST_FILTERS = ("name", "id", "driver", "label", "type", "scope", "dangling")
PRUNE_FILTERS = ("label", "until")
# Docker's predefined networks that are container modes on shoal, not records: shown with
# fixed ids (Docker's are random per daemon) so that inspecting them by id works too.
PREDEFINED = {"host": "host" + "0" * 60, "none": "none" + "0" * 60}


def _predefined_view(name: str) -> dict[str, Any]:
    return {"Name": name, "Id": PREDEFINED[name], "Created": iso_time(0), "Scope": "local",
            "Driver": "null" if name == "none" else "host", "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": None, "Config": []},
            "Internal": False, "Attachable": False, "Ingress": False,
            "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": {},
            "Options": {}, "Labels": {}}


def network_view(info: NetworkInfo, with_containers: bool = True) -> dict[str, Any]:
    """One network as ``GET /networks/{id}`` shows it (``Containers`` empty in a list, as
    Docker's is)."""
    spec = info.spec
    prefix = ""
    if info.subnet:
        prefix = "/" + info.subnet.rpartition("/")[2]
    containers = {e.container_id: {"Name": e.name,
                                   "EndpointID": endpoint_id(e.container_id, spec.name),
                                   "MacAddress": mac_of(e.ip) if e.ip else "",
                                   "IPv4Address": f"{e.ip}{prefix}" if e.ip else "",
                                   "IPv6Address": ""}
                  for e in info.endpoints} if with_containers else {}
    subnet = info.subnet or spec.subnet
    gateway = info.gateway or spec.gateway
    config = [{"Subnet": subnet, **({"Gateway": gateway} if gateway else {})}] if subnet else []
    return {"Name": spec.name, "Id": info.id, "Created": iso_time(info.created_at),
            "Scope": "swarm" if spec.driver == "overlay" else "local",
            "Driver": spec.driver, "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": {}, "Config": config},
            "Internal": spec.internal, "Attachable": spec.attachable, "Ingress": False,
            "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": containers,
            "Options": {}, "Labels": dict(spec.labels)}


async def _infos(request: web.Request) -> list[NetworkInfo]:
    try:
        return list((await request.app[STATE].verbs.ask(lambda r: ListNetworks(reply=r),
                                                        NetworkList)).networks)
    except Unsupported:
        return []  # a daemon without networks (a process-driver worker): host and none only
    except ShoalError as exc:
        raise from_shoal(exc) from None


def _matches(view: dict[str, Any], used: bool, wanted: dict[str, list[str]]) -> bool:
    def one(key: str, value: str) -> bool:
        if key == "name":
            return value in view["Name"]
        if key == "id":
            return str(view["Id"]).startswith(value)
        if key == "driver":
            return bool(view["Driver"] == value)
        if key == "scope":
            return bool(view["Scope"] == value)
        if key == "type":
            builtin = view["Name"] in ("bridge", "host", "none")
            return (value == "builtin") == builtin
        if key == "dangling":
            return (value in ("1", "true")) == (not used and view["Name"] not in
                                                  ("bridge", "host", "none"))
        label, _, want = value.partition("=")
        labels = view["Labels"]
        return label in labels and (not want or labels[label] == want)
    # Docker: every label filter must match; any value of another key will do.
    return all((all if key == "label" else any)(one(key, v) for v in values)
               for key, values in wanted.items() if values)


async def list_(request: web.Request) -> web.Response:
    wanted = filters(request, LIST_FILTERS)
    infos = await _infos(request)
    rows = [(network_view(i, with_containers=False), bool(i.endpoints)) for i in infos]
    known = {i.spec.name for i in infos}
    rows += [(_predefined_view(name), False) for name in PREDEFINED if name not in known]
    return web.json_response([view for view, used in rows if _matches(view, used, wanted)])


async def inspect(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    for builtin, ident in PREDEFINED.items():
        if name in (builtin, ident):
            return web.json_response(_predefined_view(builtin))
    try:
        info = (await request.app[STATE].verbs.ask(
            lambda r: InspectNetwork(name=name, reply=r), NetworkInspected)).info
    except Unsupported:  # a daemon without networks has none of that name
        raise ApiError(404, f"network {name} not found") from None
    except ShoalError as exc:
        raise ApiError(404, f"network {name} not found") if from_shoal(exc).status == 404 \
            else from_shoal(exc) from None
    return web.json_response(network_view(info))


def _ipam(body: dict[str, Any]) -> tuple[str, str]:
    """(subnet, gateway) from Docker's IPAM section: the default driver, one IPv4 pool."""
    ipam = body.get("IPAM") or {}
    if not isinstance(ipam, dict):
        raise bad_parameter("IPAM: expected a JSON object")
    if (ipam.get("Driver") or "default") != "default":
        raise bad_parameter(f"IPAM driver {ipam.get('Driver')!r} is not supported: shoal "
                            "has the default one")
    if ipam.get("Options"):
        raise bad_parameter("IPAM.Options are not supported")
    pools = ipam.get("Config") or []
    if not isinstance(pools, list) or len(pools) > 1:
        raise bad_parameter("IPAM.Config: shoal takes one IPv4 pool per network")
    if not pools:
        return "", ""
    pool = pools[0]
    if not isinstance(pool, dict):
        raise bad_parameter("IPAM.Config[]: expected a JSON object")
    if pool.get("IPRange") or pool.get("AuxiliaryAddresses"):
        raise bad_parameter("IPAM.Config: IPRange and AuxiliaryAddresses are not supported")
    subnet, gateway = str(pool.get("Subnet") or ""), str(pool.get("Gateway") or "")
    try:
        if subnet and ipaddress.ip_network(subnet, strict=False).version != 4:
            raise bad_parameter("IPv6 subnets are not supported")
    except ValueError as exc:
        raise bad_parameter(f"invalid subnet {subnet!r}: {exc}") from None
    return subnet, gateway


async def create(request: web.Request) -> web.Response:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise bad_parameter("expected a JSON object")
    name = body.get("Name")
    if not isinstance(name, str) or not name:
        raise bad_parameter("network name is required")
    if name in PREDEFINED or name == "bridge":
        raise ApiError(403, f"{name} is a pre-defined network and cannot be created")
    driver = body.get("Driver") or "bridge"
    if driver not in ("bridge", "overlay"):
        raise bad_parameter(f"network driver {driver!r} is not supported: bridge or overlay")
    for key in ("EnableIPv6", "Ingress", "ConfigOnly"):
        if body.get(key):
            raise bad_parameter(f"{key} is not supported by shoal")
    if (body.get("ConfigFrom") or {}).get("Network"):
        raise bad_parameter("ConfigFrom is not supported by shoal")
    options = body.get("Options") or {}
    if not isinstance(options, dict):
        raise bad_parameter("Options: expected a JSON object")
    try:
        refuse_network_options([f"{k}={v}" for k, v in options.items()])
    except ShoalError as exc:
        raise bad_parameter(str(exc)) from None
    subnet, gateway = _ipam(body)
    labels = body.get("Labels") or {}
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise bad_parameter("Labels: expected an object of strings")
    try:
        spec = NetworkSpec(name=name, driver=driver,  # type: ignore[arg-type]  # checked
                           subnet=subnet, gateway=gateway,
                           internal=bool(body.get("Internal")),
                           attachable=bool(body.get("Attachable")), labels=labels)
        created = await request.app[STATE].verbs.ask(
            lambda r: CreateNetwork(spec=spec, reply=r), NetworkCreated)
    except Conflict as exc:
        raise ApiError(409, f"network with name {name} already exists ({exc})") from None
    except ShoalError as exc:
        raise from_shoal(exc) from None
    except (TypeError, ValueError) as exc:
        raise bad_parameter(f"invalid network: {exc}") from None
    return web.json_response({"Id": created.id, "Warning": ""}, status=201)


async def remove(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name in PREDEFINED or name in PREDEFINED.values():
        raise ApiError(403, f"{name} is a pre-defined network and cannot be removed")
    try:
        await request.app[STATE].verbs.ask(lambda r: RemoveNetwork(name=name, reply=r), Ok)
    except ShoalError as exc:
        raise from_shoal(exc, "network", name) from None
    return web.Response(status=204)


async def connect(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("Container"), str):
        raise bad_parameter("expected {\"Container\": ...}")
    endpoint = body.get("EndpointConfig") or {}
    if not isinstance(endpoint, dict):
        raise bad_parameter("EndpointConfig: expected a JSON object")
    ipam = endpoint.get("IPAMConfig") or {}
    if not isinstance(ipam, dict):
        raise bad_parameter("EndpointConfig.IPAMConfig: expected a JSON object")
    asked = [name for name, value in (
        ("Links", endpoint.get("Links")), ("MacAddress", endpoint.get("MacAddress")),
        ("DriverOpts", endpoint.get("DriverOpts")),
        ("IPAMConfig.IPv6Address", ipam.get("IPv6Address")),
        ("IPAMConfig.LinkLocalIPs", ipam.get("LinkLocalIPs"))) if value]
    if asked:
        raise bad_parameter(f"EndpointConfig.{', EndpointConfig.'.join(asked)}: not supported "
                            "by shoal (a connect takes Aliases and IPAMConfig.IPv4Address; "
                            "the MAC address follows from the IPv4 address, and there is no "
                            "IPv6)")
    aliases = endpoint.get("Aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise bad_parameter("EndpointConfig.Aliases: expected a list of strings")
    container = body["Container"]
    try:
        await request.app[STATE].verbs.ask(
            lambda r: ConnectNetwork(name=name, container=container,
                                     ip=str(ipam.get("IPv4Address") or ""),
                                     aliases=aliases, reply=r), Ok)
    except ShoalError as exc:
        api = from_shoal(exc)
        if api.status == 404:
            raise ApiError(404, f"No such container or network: {container}, {name} ({exc})") \
                from None
        raise api from None
    return web.Response(status=200)


async def disconnect(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("Container"), str):
        raise bad_parameter("expected {\"Container\": ...}")
    container, force = body["Container"], bool(body.get("Force"))
    try:
        await request.app[STATE].verbs.ask(
            lambda r: DisconnectNetwork(name=name, container=container, force=force,
                                        reply=r), Ok)
    except ShoalError as exc:
        api = from_shoal(exc)
        raise (ApiError(404, str(exc)) if api.status == 404 else api) from None
    return web.Response(status=200)


async def prune(request: web.Request) -> web.Response:
    if filters(request, PRUNE_FILTERS):
        raise bad_parameter("network prune filters are not supported by shoal")
    try:
        pruned = await request.app[STATE].verbs.ask(lambda r: PruneNetworks(reply=r),
                                                    NetworksPruned)
    except ShoalError as exc:
        raise from_shoal(exc) from None
    return web.json_response({"NetworksDeleted": list(pruned.names) or None})
