"""A Compose project as the loader resolved it: its name, its services (each with its
canonical configuration, the long forms every version of the file comes to), networks, volumes,
configs and secrets. What the verbs read; ``config`` prints ``as_document``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from cli.compose.errors import Path, Problem

DependencyCondition = Literal["service_started", "service_healthy",
                              "service_completed_successfully"]


@dataclass(frozen=True)
class Dependency:
    service: str
    condition: DependencyCondition = "service_started"
    required: bool = True
    restart: bool = False


@dataclass(frozen=True)
class PortSpec:
    target: int
    published: str = ""  # "" for any free port; may be a range "8000-8010"
    host_ip: str = ""
    protocol: str = "tcp"
    mode: str = "ingress"


@dataclass(frozen=True)
class VolumeSpec:
    type: str  # bind, volume, tmpfs, npipe, cluster, image
    target: str
    source: str = ""
    read_only: bool = False


@dataclass(frozen=True)
class Service:
    """One service: the typed fields the verbs use, and ``config``, the whole canonical
    mapping (every key the file gave, in long form), which ``config_hash`` digests."""

    name: str
    config: dict[str, Any]
    image: str = ""
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    environment: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    ports: list[PortSpec] = field(default_factory=list)
    volumes: list[VolumeSpec] = field(default_factory=list)
    depends_on: list[Dependency] = field(default_factory=list)
    networks: dict[str, dict[str, Any]] = field(default_factory=dict)
    profiles: list[str] = field(default_factory=list)
    replicas: int = 1

    @property
    def config_hash(self) -> str:
        """A digest of the service's configuration, the replica count left out (scaling is not
        a change that recreates), as compose's ``com.docker.compose.config-hash``."""
        hashed = {k: v for k, v in self.config.items() if k != "scale"}
        deploy = hashed.get("deploy")
        if isinstance(deploy, dict):
            hashed["deploy"] = {k: v for k, v in deploy.items() if k != "replicas"}
        text = json.dumps(hashed, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Project:
    name: str
    working_dir: str
    files: list[str]
    services: dict[str, Service]
    networks: dict[str, dict[str, Any]] = field(default_factory=dict)
    volumes: dict[str, dict[str, Any]] = field(default_factory=dict)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    secrets: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Services left out because none of their profiles is active.
    disabled: dict[str, Service] = field(default_factory=dict)
    # Where each path was last given (file, line), for messages about the merged project.
    origins: dict[Path, tuple[str, int]] = field(default_factory=dict)
    # What the file was interpolated from (the process environment over ``.env``): where a
    # secret or config ``environment`` is read, and the client's runtime directory.
    environment: dict[str, str] = field(default_factory=dict)

    def problem(self, path: Path, message: str) -> Problem:
        """A problem at ``path``, placed at the line that gave it (or its nearest ancestor)."""
        for end in range(len(path), 0, -1):
            origin = self.origins.get(path[:end])
            if origin is not None:
                return Problem(origin[0], origin[1], path, message)
        return Problem("", 0, path, message)

    def as_document(self) -> dict[str, Any]:
        """The resolved project as a compose-spec document (what ``config`` prints)."""
        document: dict[str, Any] = {"name": self.name, "services": {
            name: service.config for name, service in sorted(self.services.items())}}
        for kind in ("networks", "volumes", "configs", "secrets"):
            section = getattr(self, kind)
            if section:
                document[kind] = dict(sorted(section.items()))
        return document


def service_from_config(name: str, config: dict[str, Any]) -> Service:
    """The typed view of a canonical service configuration."""
    deploy = config.get("deploy") or {}
    # global: one container per node (a standalone worker is one node; through a scheduler
    # the service is a global job, and this count is not used)
    replicas = 1 if deploy.get("mode") == "global" else \
        deploy.get("replicas", config.get("scale", 1))
    return Service(
        name=name, config=config, image=config.get("image", ""),
        command=config.get("command"), entrypoint=config.get("entrypoint"),
        environment={k: v for k, v in (config.get("environment") or {}).items()
                     if v is not None},
        labels=dict(config.get("labels") or {}),
        ports=[PortSpec(target=int(p["target"]), published=str(p.get("published", "")),
                        host_ip=p.get("host_ip", ""), protocol=p.get("protocol", "tcp"),
                        mode=p.get("mode", "ingress"))
               for p in config.get("ports") or []],
        volumes=[VolumeSpec(type=v.get("type", "volume"), target=v.get("target", ""),
                            source=v.get("source", ""), read_only=bool(v.get("read_only")))
                 for v in config.get("volumes") or []],
        depends_on=_dependencies(config),
        networks={net: dict(item or {}) for net, item in (config.get("networks") or {}).items()},
        profiles=list(config.get("profiles") or []),
        replicas=int(replicas) if replicas is not None else 1)


def volume_sources(config: dict[str, Any]) -> list[tuple[str, str]]:
    """``volumes_from`` as (service, mode) pairs, mode ``ro``, ``rw`` or "" (each mount's
    own); a ``container:NAME`` entry is ("", its text)."""
    found = []
    for entry in config.get("volumes_from") or []:
        first, _, rest = str(entry).partition(":")
        if first == "container":
            found.append(("", str(entry)))
        else:
            found.append((first, rest))
    return found


def network_peer_service(config: dict[str, Any]) -> str:
    """The service whose network a ``network_mode: service:X`` service joins; "" if none."""
    mode = config.get("network_mode")
    return mode.removeprefix("service:") if isinstance(mode, str) \
        and mode.startswith("service:") else ""


def _dependencies(config: dict[str, Any]) -> list[Dependency]:
    """``depends_on``, and the services ``links``, ``volumes_from`` and ``network_mode:
    service:X`` name (each starts after its target, as in compose)."""
    found = [Dependency(service=dep, condition=item.get("condition", "service_started"),
                        required=item.get("required", True), restart=item.get("restart", False))
             for dep, item in (config.get("depends_on") or {}).items()]
    named = {d.service for d in found}
    targets = [str(link).partition(":")[0] for link in config.get("links") or []]
    targets += [source for source, _ in volume_sources(config) if source]
    if network_peer_service(config):
        targets.append(network_peer_service(config))
    for target in targets:
        if target not in named:
            named.add(target)
            found.append(Dependency(service=target))
    return found
