"""What ``--format`` templates see: shoal's listings under the field names docker users type
(``{{.ID}}``, ``{{.Names}}``, ``{{.State.Status}}``), one function per listing."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from cli.output import ago, status_text
from protocol.observed import (
    ContainerInfo,
    ContainerSummary,
    Health,
    ImageSummary,
    NodeInfo,
    NodeUsage,
)
from protocol.specs import HealthCheck, Mount, PortMapping

PS_FIELDS = ("ID", "Image", "Command", "CreatedAt", "RunningFor", "Ports", "State", "Status",
             "Names", "Labels", "Label", "Node", "Mounts", "Networks")
PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
              "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS",
              "State": "STATE", "Status": "STATUS", "Names": "NAMES", "Labels": "LABELS",
              "Node": "NODE", "Mounts": "MOUNTS", "Networks": "NETWORKS"}
IMAGE_FIELDS = ("ID", "Repository", "Tag", "Digest", "CreatedSince", "CreatedAt", "Size",
                "Platform")
IMAGE_HEADERS = {"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG",
                 "Digest": "DIGEST", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                 "Size": "SIZE", "Platform": "PLATFORM"}
NODE_FIELDS = ("ID", "Hostname", "Status", "Availability", "Platform", "CPU", "Memory",
               "Containers", "Labels", "Address", "EngineVersion")
NODE_HEADERS = {"ID": "NAME", "Hostname": "HOSTNAME", "Status": "STATUS",
                "Availability": "AVAILABILITY", "Platform": "PLATFORM", "CPU": "CPU",
                "Memory": "MEMORY", "Containers": "CONTAINERS", "Labels": "LABELS",
                "Address": "ADDRESS", "EngineVersion": "ENGINE VERSION"}
INSPECT_FIELDS = ("Id", "Created", "Path", "Args", "State", "Image", "Name", "RestartCount",
                  "Driver", "Config", "HostConfig", "Node", "Platform", "Mounts")


def go_time(timestamp: float) -> str:
    """``2026-12-06 17:00:00 +0000 UTC``, as docker prints a time in ps."""
    return time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(timestamp)) \
        if timestamp else ""


def rfc3339(timestamp: float) -> str:
    """``2026-12-06T17:00:00.123456789Z``, as docker's inspect has it (0 → Go's zero time)."""
    if not timestamp:
        return "0001-01-01T00:00:00Z"
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp)) + \
        f".{int(timestamp % 1 * 1e9):09d}Z"


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _label_of(labels: dict[str, str]) -> Callable[[str], str]:
    return lambda key: labels.get(key, "")


def ports_text(ports: Sequence[PortMapping]) -> str:
    """Docker's PORTS column: ``0.0.0.0:8080->80/tcp, 53/udp``."""
    return ", ".join(f"{p.host_ip or '0.0.0.0'}:{p.host_port}->{p.container_port}/{p.protocol}"
                     if p.host_port else f"{p.container_port}/{p.protocol}" for p in ports)


def ps_view(row: ContainerSummary, now: float) -> dict[str, Any]:
    state = row.state
    command = row.command if len(row.command) <= 20 else row.command[:20] + "…"
    return {
        "ID": row.id[:12], "Image": row.image, "Command": f'"{command}"',
        "CreatedAt": go_time(row.created_at), "RunningFor": ago(row.created_at, now),
        "Ports": ports_text(row.ports),
        "State": state.status,
        "Status": status_text(state.status, state.exit_code, state.started_at,
                              state.finished_at, now,
                              state.health.status if state.health else ""),
        "Names": row.name, "Labels": _labels(row.labels), "Label": _label_of(row.labels),
        "Node": row.node_id, "Mounts": "", "Networks": "",
    }


def image_views(image: ImageSummary, now: float, size: str) -> list[dict[str, Any]]:
    """One view per tag, as ``docker images`` lists them (an untagged image once)."""
    platform = "/".join(part for part in (image.os, image.arch, image.variant) if part)
    base = {"ID": image.id.removeprefix("sha256:")[:12], "Digest": image.digest or "<none>",
            "CreatedSince": ago(image.created, now) or "N/A",
            "CreatedAt": go_time(image.created), "Size": size, "Platform": platform}
    views = []
    for tag in image.tags or ["<none>:<none>"]:
        repository, _, name = tag.rpartition(":")
        if not repository or "/" in name:
            repository, name = tag, "<none>"
        views.append({**base, "Repository": repository, "Tag": name})
    return views


def node_view(node: NodeInfo, usage: NodeUsage, cpu: str, memory: str) -> dict[str, Any]:
    return {"ID": node.id, "Hostname": node.hostname or node.id, "Status": node.status,
            "Availability": node.availability, "Platform": str(node.platform), "CPU": cpu,
            "Memory": memory, "Containers": usage.containers, "Labels": _labels(node.labels),
            "Address": node.address, "EngineVersion": node.version}


def health_view(health: Health) -> dict[str, Any]:
    """Docker's ``State.Health``: Status, FailingStreak, Log (Start, End, ExitCode, Output)."""
    return {"Status": health.status, "FailingStreak": health.failing_streak,
            "Log": [{"Start": rfc3339(r.start), "End": rfc3339(r.end), "ExitCode": r.exit_code,
                     "Output": r.output} for r in health.log]}


def healthcheck_view(check: HealthCheck) -> dict[str, Any]:
    """Docker's ``Config.Healthcheck``, durations in nanoseconds."""
    return {"Test": list(check.test), "Interval": int(check.interval * 1e9),
            "Timeout": int(check.timeout * 1e9), "StartPeriod": int(check.start_period * 1e9),
            "StartInterval": int(check.start_interval * 1e9), "Retries": check.retries}


def tmpfs_options(mount: Mount) -> str:
    """docker's ``--tmpfs`` option text: ``size=…,mode=…,ro``."""
    options = [f"size={mount.tmpfs_size}"] if mount.tmpfs_size else []
    options += [f"mode={mount.tmpfs_mode:o}"] if mount.tmpfs_mode else []
    return ",".join([*options, *(["ro"] if mount.read_only else [])])


def mount_view(mount: Mount, details: dict[str, str]) -> dict[str, Any]:
    """One of docker's ``Mounts``: a volume's Name and Source (its directory on the node)."""
    view: dict[str, Any] = {"Type": mount.type, "Destination": mount.target,
                            "RW": not mount.read_only}
    if mount.type == "volume":
        view.update({"Name": mount.source, "Driver": "local",
                     "Source": details.get(f"volume.{mount.source}", "")})
    elif mount.type == "bind":
        view["Source"] = mount.source
    return view


def inspect_view(info: ContainerInfo) -> dict[str, Any]:
    """A container under docker's inspect names, for templates like ``{{.State.Status}}``."""
    spec, state = info.spec, info.state
    argv = [*(spec.entrypoint or []), *spec.command]
    return {
        "Id": info.id, "Created": rfc3339(info.created_at),
        "Path": argv[0] if argv else "", "Args": argv[1:],
        "State": {"Status": state.status, "Running": state.status == "running",
                  "Paused": state.status == "paused",
                  "Restarting": state.status == "restarting", "OOMKilled": state.oom_killed,
                  "Dead": state.status == "dead", "Pid": state.pid,
                  "ExitCode": state.exit_code if state.exit_code is not None else 0,
                  "Error": state.error, "StartedAt": rfc3339(state.started_at),
                  "FinishedAt": rfc3339(state.finished_at),
                  **({"Health": health_view(state.health)} if state.health else {})},
        "Image": info.image_id, "Name": "/" + info.name, "RestartCount": state.restart_count,
        "Driver": info.storage_driver,
        "Config": {"Hostname": spec.hostname, "User": spec.user, "Env": list(spec.env),
                   "Cmd": list(spec.command), "Image": spec.image,
                   "WorkingDir": spec.workdir, "Entrypoint": spec.entrypoint,
                   "Labels": dict(spec.labels), "Tty": spec.tty, "OpenStdin": spec.stdin_open,
                   **({"Healthcheck": healthcheck_view(spec.healthcheck)}
                      if spec.healthcheck else {})},
        "HostConfig": {"RestartPolicy": {"Name": spec.restart.name,
                                         "MaximumRetryCount": spec.restart.max_retries},
                       "Memory": spec.resources.memory,
                       "NanoCpus": spec.resources.millicpus * 1_000_000,
                       "CpuShares": spec.resources.cpu_shares,
                       "PidsLimit": spec.resources.pids, "NetworkMode": spec.network,
                       "AutoRemove": spec.auto_remove, "Init": spec.init,
                       "Exclusive": spec.exclusive,
                       "Binds": [f"{m.source}:{m.target}{':ro' if m.read_only else ''}"
                                 for m in spec.mounts if m.type in ("bind", "volume")],
                       "Tmpfs": {m.target: tmpfs_options(m)
                                 for m in spec.mounts if m.type == "tmpfs"}},
        "Mounts": [mount_view(m, info.details) for m in spec.mounts],
        "Node": {"ID": info.node_id, "ScheduleState": info.schedule_state or ""},
        "Platform": str(spec.platform) if spec.platform else
                    ",".join(str(p) for p in spec.platforms) or "linux",
    }
