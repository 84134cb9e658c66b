"""shoal's records in Docker's JSON shapes: container rows and inspect, images, events, nodes.

Only translation: every value comes from the record the daemon returned; fields Docker has and
shoal does not keep are given Docker's empty values, so clients that read them find what an
engine with nothing to say there would send.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

from protocol.observed import (
    ContainerInfo,
    ContainerState,
    ContainerSummary,
    Event,
    ImageInfo,
    ImageSummary,
    NodeInfo,
)
from protocol.specs import (
    DEFAULT_NETWORK_MODE,
    ContainerSpec,
    Mount,
    NetworkInfo,
    PortMapping,
    network_container,
)
from protocol.validation import own_network

ZERO_TIME = "0001-01-01T00:00:00Z"


def iso_time(stamp: float) -> str:
    """Go's RFC 3339 with nanoseconds, as Docker prints times (0 → Go's zero time)."""
    if not stamp:
        return ZERO_TIME
    moment = datetime.datetime.fromtimestamp(stamp, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}000Z"


def _ago(seconds: float) -> str:
    """Docker's ``units.HumanDuration``, near enough for a status column."""
    if seconds < 1:
        return "Less than a second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    if seconds < 3600:
        minutes = int(seconds // 60)
        return "About a minute" if minutes == 1 else f"{minutes} minutes"
    hours = int(seconds // 3600)
    return "About an hour" if hours == 1 else f"{hours} hours" if hours < 48 \
        else f"{hours // 24} days"


def status_text(state: ContainerState, now: float | None = None) -> str:
    """The ``Status`` column: ``Up 3 seconds``, ``Exited (3) 2 minutes ago``, ``Created``."""
    now = time.time() if now is None else now
    if state.status in ("running", "paused"):
        return f"Up {_ago(now - state.started_at)}" + (" (Paused)" if state.status == "paused"
                                                       else "")
    if state.status == "restarting":
        return f"Restarting ({state.exit_code or 0}) {_ago(now - state.finished_at)} ago"
    if state.status in ("exited", "dead") and state.finished_at:
        return f"Exited ({state.exit_code or 0}) {_ago(now - state.finished_at)} ago"
    return state.status.capitalize()


def port_rows(ports: list[PortMapping]) -> list[dict[str, Any]]:
    return [{"IP": p.host_ip or "0.0.0.0", "PrivatePort": p.container_port,
             "PublicPort": p.host_port, "Type": p.protocol} for p in ports]


def network_mode(spec: ContainerSpec) -> str:
    return spec.network or "none"


def _health(state: ContainerState) -> dict[str, Any]:
    health = state.health
    if health is None:
        return {}
    return {"Health": {"Status": health.status, "FailingStreak": health.failing_streak,
                       "Log": [{"Start": iso_time(r.start), "End": iso_time(r.end),
                                "ExitCode": r.exit_code, "Output": r.output}
                               for r in health.log]}}


def _healthcheck(spec: ContainerSpec) -> dict[str, Any]:
    check = spec.healthcheck
    if check is None:
        return {}
    nanos = 1_000_000_000
    return {"Healthcheck": {
        "Test": list(check.test) or None, "Interval": int(check.interval * nanos),
        "Timeout": int(check.timeout * nanos), "StartPeriod": int(check.start_period * nanos),
        "StartInterval": int(check.start_interval * nanos), "Retries": check.retries}}


def _status_words(state: ContainerState) -> str:
    text = status_text(state)
    if state.health is not None and state.status == "running":
        shown = "health: starting" if state.health.status == "starting" \
            else state.health.status
        text += f" ({shown})"
    return text


def container_networks(info: ContainerInfo, networks: list[NetworkInfo]) -> dict[str, Any]:
    """``NetworkSettings.Networks``: each network the container has an endpoint on (its
    address, the network's gateway and prefix); its own network from inspect's details when
    no network record lists it (a scheduler's bridge networks live on each node).

    On a user-defined network the container's own aliases end with its short id, as Docker
    24 and before list them: Compose 1.29 reads that to learn that the container was made
    with its aliases (else it disconnects and connects it again before the start, which a
    scheduler cannot do for a container not placed yet). shoal's resolver does not answer
    that name (Docker's does)."""
    spec = info.spec
    if network_container(spec.network):
        return {}  # Docker's: the namespace is the other container's, no endpoint its own
    shown: dict[str, Any] = {}
    own_aliases = list(spec.network_aliases)
    if spec.network not in ("bridge", "none", "host", DEFAULT_NETWORK_MODE):
        own_aliases.append(info.id[:12])
    if info.networks:  # as the container's worker made them
        ids = {n.spec.name: n.id for n in networks}  # a scheduler's ids are the cluster's
        own = own_network(spec)
        for made in info.networks:
            primary = made.network == own
            shown[made.network] = _endpoint(
                ids.get(made.network, made.network_id), made.ip, made.gateway,
                made.prefix_len, own_aliases if primary else list(made.aliases),
                mac=made.mac, endpoint_id=made.endpoint_id)
        return shown
    for network in networks:
        for endpoint in network.endpoints:
            if endpoint.container_id != info.id:
                continue
            prefix = network.subnet.rpartition("/")[2] if network.subnet else ""
            primary = network.spec.name == spec.network
            shown[network.spec.name] = _endpoint(
                network.id, endpoint.ip, network.gateway, int(prefix) if prefix else 0,
                own_aliases if primary else [])
    if spec.network not in ("", "none", "host") and spec.network not in shown:
        found = [n for n in networks if n.spec.name == spec.network]
        shown[spec.network] = _endpoint(found[0].id if found else "",
                                        info.details.get("ip_address", ""), "", 0, own_aliases)
    if spec.network in ("none", "host"):
        shown[spec.network] = _endpoint(spec.network + "0" * 60, "", "", 0, [])
    return shown


def _endpoint(network_id: str, ip: str, gateway: str, prefix: int,
              aliases: list[str], *, mac: str = "", endpoint_id: str = "") -> dict[str, Any]:
    return {"IPAMConfig": None, "Links": None, "Aliases": aliases or None, "MacAddress": mac,
            "NetworkID": network_id, "EndpointID": endpoint_id, "Gateway": gateway,
            "IPAddress": ip,
            "IPPrefixLen": prefix, "IPv6Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "DriverOpts": None, "DNSNames": None}


def container_row(row: ContainerSummary) -> dict[str, Any]:
    """One item of ``GET /containers/json``."""
    return {
        "Id": row.id, "Names": [f"/{row.name}"], "Image": row.image, "ImageID": "",
        "Command": row.command, "Created": int(row.created_at),
        "Ports": port_rows(row.ports), "Labels": dict(row.labels),
        "State": row.state.status, "Status": _status_words(row.state),
        "HostConfig": {"NetworkMode": "default"},
        "NetworkSettings": {"Networks": {
            e.network: _endpoint(e.network_id, e.ip, e.gateway, e.prefix_len, list(e.aliases),
                                 mac=e.mac, endpoint_id=e.endpoint_id)
            for e in row.networks}}, "Mounts": [],
        **({"Node": {"ID": row.node_id, "Name": row.node_id}} if row.node_id else {}),
    }


def _port_map(spec: ContainerSpec) -> dict[str, Any]:
    bindings: dict[str, list[dict[str, str]]] = {}
    for p in spec.ports:
        bindings.setdefault(f"{p.container_port}/{p.protocol}", []).append(
            {"HostIp": p.host_ip, "HostPort": str(p.host_port) if p.host_port else ""})
    return bindings


def host_config(spec: ContainerSpec) -> dict[str, Any]:
    """``HostConfig`` as Docker shows it, from what the spec asked for."""
    res = spec.resources
    security = ([f"seccomp={spec.seccomp}"] if spec.seccomp == "unconfined"
                else ["seccomp=<profile>"] if spec.seccomp else [])
    if spec.no_new_privileges:
        security.append("no-new-privileges")
    return {
        "Binds": [f"{m.source}:{m.target}" + (":ro" if m.read_only else "")
                  for m in spec.mounts if m.type in ("bind", "volume")] or None,
        "NetworkMode": network_mode(spec), "PortBindings": _port_map(spec),
        "RestartPolicy": {"Name": spec.restart.name,
                          "MaximumRetryCount": spec.restart.max_retries},
        "AutoRemove": spec.auto_remove, "Init": spec.init,
        "Memory": res.memory, "MemorySwap": res.memory_swap,
        "NanoCpus": res.millicpus * 1_000_000, "CpuShares": res.cpu_shares,
        "PidsLimit": res.pids or None,
        "CapAdd": list(spec.cap_add) or None, "CapDrop": list(spec.cap_drop) or None,
        "SecurityOpt": security or None, "Privileged": spec.privileged, "ReadonlyRootfs": False,
        "Devices": [{"PathOnHost": d.path_on_host, "PathInContainer": d.path_in_container,
                     "CgroupPermissions": d.permissions} for d in spec.devices] or None,
        "ExtraHosts": list(spec.add_hosts) or None, "Dns": list(spec.dns),
        "DnsSearch": list(spec.dns_search), "LogConfig": {"Type": "json-file",
                                                         "Config": spec.log_options.as_docker()
                                                         if spec.log_options else {}},
        "Tmpfs": {m.target: _tmpfs_options(m) for m in spec.mounts if m.type == "tmpfs"}
        or None,
        "PublishAllPorts": spec.publish_all,
        "Ulimits": [{"Name": u.name, "Soft": u.soft, "Hard": u.hard} for u in spec.ulimits]
        or None,
    }


def _tmpfs_options(mount: Mount) -> str:
    options = (["ro"] if mount.read_only else []) + \
        ([f"size={mount.tmpfs_size}"] if mount.tmpfs_size else []) + \
        ([f"mode={mount.tmpfs_mode:o}"] if mount.tmpfs_mode else [])
    return ",".join(options)


def _mount_view(mount: Mount, details: dict[str, str]) -> dict[str, Any]:
    view: dict[str, Any] = {"Type": mount.type, "Source": mount.source,
                            "Destination": mount.target,
                            "Mode": "ro" if mount.read_only else "", "RW": not mount.read_only,
                            "Propagation": "rprivate" if mount.type == "bind" else ""}
    if mount.type == "volume":
        view.update(Name=mount.source, Driver="local",
                    Source=details.get(f"volume.{mount.source}", ""), Mode="z")
    elif mount.type == "tmpfs":
        view["Source"] = ""
    return view


def inspect_container(info: ContainerInfo, node: NodeInfo | None = None,
                      networks: list[NetworkInfo] | None = None) -> dict[str, Any]:
    """``GET /containers/{id}/json``; ``Node`` as Swarm classic showed it, on a scheduler;
    ``networks`` the daemon's network records (for the container's endpoints on them)."""
    spec, state = info.spec, info.state
    argv = [*(spec.entrypoint or []), *spec.command]
    details = info.details
    body: dict[str, Any] = {
        "Id": info.id, "Created": iso_time(info.created_at),
        "Path": argv[0] if argv else "", "Args": argv[1:],
        "State": {
            "Status": state.status, "Running": state.status in ("running", "paused"),
            "Paused": state.status == "paused", "Restarting": state.status == "restarting",
            "OOMKilled": state.oom_killed, "Dead": state.status == "dead", "Pid": state.pid,
            "ExitCode": state.exit_code or 0, "Error": state.error,
            "StartedAt": iso_time(state.started_at), "FinishedAt": iso_time(state.finished_at),
            **_health(state),
        },
        "Image": info.image_id, "ResolvConfPath": "", "HostnamePath": "", "HostsPath": "",
        "LogPath": details.get("log_path", ""), "Name": f"/{info.name}",
        "RestartCount": state.restart_count, "Driver": info.storage_driver,
        "Platform": "linux", "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "",
        "ExecIDs": None, "HostConfig": host_config(spec),
        "GraphDriver": {"Name": info.storage_driver, "Data": {}},
        "Mounts": [_mount_view(m, details) for m in spec.mounts],
        "Config": {
            "Hostname": spec.hostname or info.id[:12], "Domainname": "", "User": spec.user,
            "AttachStdin": False, "AttachStdout": False, "AttachStderr": False,
            "ExposedPorts": {**{f"{p.container_port}/{p.protocol}": {} for p in spec.ports},
                             **{e if "/" in e else f"{e}/tcp": {} for e in spec.expose}}
            or None,
            "Tty": spec.tty, "OpenStdin": spec.stdin_open, "StdinOnce": False,
            "Env": list(spec.env), "Cmd": list(spec.command) or None, "Image": spec.image,
            "Volumes": None, "WorkingDir": spec.workdir, "Entrypoint": spec.entrypoint,
            "OnBuild": None, "Labels": dict(spec.labels), **_healthcheck(spec),
            **({"StopSignal": spec.stop_signal} if spec.stop_signal else {}),
            **({"StopTimeout": int(spec.stop_timeout)} if spec.stop_timeout is not None
               else {}),
        },
        "NetworkSettings": _network_settings(info, networks or []),
    }
    if node is not None:
        body["Node"] = node_view(node)
    return body


def _network_settings(info: ContainerInfo, networks: list[NetworkInfo]) -> dict[str, Any]:
    """``NetworkSettings``: the published ports as bound (inspect's details, else as asked),
    each network's endpoint, and the primary network's address at the top level as Docker's
    old fields are."""
    spec = info.spec
    bound: dict[str, Any] = {}
    for entry in filter(None, info.details.get("ports", "").split(",")):
        key, _, host = entry.partition("->")
        host_ip, _, host_port = host.rpartition(":")
        bound.setdefault(key, []).append({"HostIp": host_ip, "HostPort": host_port})
    if not bound:
        bound = {key: [{"HostIp": b["HostIp"] or "0.0.0.0", "HostPort": b["HostPort"]}
                       for b in asked] for key, asked in _port_map(spec).items()}
    if info.state.status != "running":
        bound = {}
    for exposed in spec.expose:
        bound.setdefault(exposed if "/" in exposed else f"{exposed}/tcp", None)
    shown = container_networks(info, networks)
    primary = shown.get(own_network(spec), {})
    return {"Bridge": "", "SandboxID": "", "HairpinMode": False, "SandboxKey": "",
            "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
            "Ports": bound, "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
            "EndpointID": primary.get("EndpointID", ""),
            "Gateway": primary.get("Gateway", ""),
            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "IPAddress": primary.get("IPAddress", ""),
            "IPPrefixLen": primary.get("IPPrefixLen", 0), "IPv6Gateway": "",
            "MacAddress": primary.get("MacAddress", ""), "Networks": shown}


def node_view(node: NodeInfo) -> dict[str, Any]:
    """Swarm classic's ``Node`` of a container: where it runs."""
    host = node.address.removeprefix("tcp://").rpartition(":")[0]
    return {"ID": node.id, "IP": host, "Addr": node.address, "Name": node.id,
            "Cpus": node.capacity.millicpus // 1000, "Memory": node.capacity.memory,
            "Labels": dict(node.labels)}


def image_row(image: ImageSummary) -> dict[str, Any]:
    """One item of ``GET /images/json``."""
    return {"Id": image.id, "ParentId": "", "RepoTags": list(image.tags) or ["<none>:<none>"],
            "RepoDigests": [], "Created": int(image.created), "Size": image.size,
            "SharedSize": -1, "VirtualSize": image.size, "Labels": {}, "Containers": -1}


def inspect_image(info: ImageInfo) -> dict[str, Any]:
    """``GET /images/{name}/json``."""
    s, c = info.summary, info.config
    config: dict[str, Any] = {"User": c.user, "Env": list(c.env), "Cmd": list(c.cmd) or None,
              "Entrypoint": list(c.entrypoint) or None, "WorkingDir": c.working_dir,
              "ExposedPorts": {p: {} for p in c.exposed_ports} or None,
              "Labels": dict(c.labels) or None,
              "Volumes": {v: {} for v in c.volumes} or None,
              **({"StopSignal": c.stop_signal} if c.stop_signal else {})}
    return {"Id": s.id, "RepoTags": list(s.tags), "RepoDigests": [], "Parent": "",
            "Comment": "", "Created": iso_time(s.created), "Author": info.author,
            "Config": config, "Architecture": s.arch, "Variant": s.variant or None,
            "Os": s.os, "Size": s.size, "VirtualSize": s.size,
            "GraphDriver": {"Name": "", "Data": {}},
            "RootFS": {"Type": "layers", "Layers": list(info.layers)},
            "Metadata": {"LastTagTime": ZERO_TIME}}


def event_view(event: Event) -> dict[str, Any]:
    """One line of ``GET /events``, in both the old (status/id/from) and new shapes."""
    nanos = int(event.time * 1e9)
    attributes = dict(event.attributes)
    if event.node_id:
        attributes.setdefault("node", event.node_id)
    body: dict[str, Any] = {"Type": event.type, "Action": event.action,
                            "Actor": {"ID": event.id, "Attributes": attributes},
                            "scope": "local", "time": nanos // 1_000_000_000,
                            "timeNano": nanos}
    if event.type == "container":
        body.update(status=event.action, id=event.id, **(
            {"from": attributes["image"]} if "image" in attributes else {}))
    return body
