"""A service of a resolved project as the ContainerSpecs of its replicas, and its networks as
NetworkSpecs: the compose keys ``refusals`` lets through, each turned into what ``shoal run``
would send, labelled so that ``ps``, ``up`` and ``down`` find the project's containers again.
What cannot be translated is a Problem with its file, line and path."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from cli.compose.errors import ComposeError, Path, Problem
from cli.compose.model import Project, Service
from cli.compose.refusals import refusals
from protocol.errors import ShoalError
from protocol.specs import (
    ContainerSpec,
    Mount,
    NetworkSpec,
    Platform,
    PortMapping,
    Resources,
    RestartPolicy,
)
from protocol.validation import check_spec, millicpus

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
HASH_LABEL = "com.docker.compose.config-hash"
NUMBER_LABEL = "com.docker.compose.container-number"
FILES_LABEL = "com.docker.compose.project.config_files"
WORKDIR_LABEL = "com.docker.compose.project.working_dir"
NETWORK_LABEL = "com.docker.compose.network"
ONEOFF_LABEL = "com.docker.compose.oneoff"
DEFAULT_NETWORK = "default"
_SWARM_OPERATOR = re.compile(r"\s*(==|!=)\s*")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)b?$", re.IGNORECASE)


def check_project(project: Project, services: list[str]) -> None:
    """Refuse what shoal cannot honour in ``project`` (all of it, each with its reason), and
    what cannot be translated in ``services``."""
    problems = refusals(project)
    for name in services:
        try:
            service_specs(project, project.services[name])
        except ComposeError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ComposeError.of(problems)


def container_name(project: Project, service: Service, number: int) -> str:
    explicit = service.config.get("container_name")
    return explicit if isinstance(explicit, str) else f"{project.name}-{service.name}-{number}"


def network_name(project: Project, network: str) -> str:
    """The name a project's network has in shoal: its ``name``, else ``<project>_<key>``."""
    config = project.networks.get(network) or {}
    return str(config.get("name") or f"{project.name}_{network}")


def service_network(project: Project, service: Service) -> str:
    """The one network a service's containers join (shoal gives a container one)."""
    mode = service.config.get("network_mode")
    if isinstance(mode, str):
        return mode
    names = list(service.networks) or [DEFAULT_NETWORK]
    return network_name(project, names[0])


def network_specs(project: Project, services: list[str]) -> dict[str, NetworkSpec | None]:
    """The networks ``services`` join, by shoal name: a spec to create, or None for an
    external one (which must exist)."""
    wanted: dict[str, NetworkSpec | None] = {}
    for name in services:
        service = project.services[name]
        if isinstance(service.config.get("network_mode"), str):
            continue
        for network in list(service.networks) or [DEFAULT_NETWORK]:
            config = project.networks.get(network) or {}
            shoal_name = network_name(project, network)
            if config.get("external"):
                wanted[shoal_name] = None
                continue
            ipam = (config.get("ipam") or {}).get("config") or [{}]
            wanted[shoal_name] = NetworkSpec(
                name=shoal_name, subnet=ipam[0].get("subnet", ""),
                gateway=ipam[0].get("gateway", ""), internal=bool(config.get("internal")),
                labels={**(config.get("labels") or {}), PROJECT_LABEL: project.name,
                        NETWORK_LABEL: network})
    return wanted


def service_specs(project: Project, service: Service) -> list[ContainerSpec]:
    """One spec per replica (numbered from 1), each checked as the service will check it."""
    base = _base_spec(project, service)
    specs = []
    for number in range(1, service.replicas + 1):
        labels = {**base.labels, NUMBER_LABEL: str(number)}
        spec = msgspec.structs.replace(base, name=container_name(project, service, number),
                                       labels=labels)
        try:
            decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(spec), type=ContainerSpec)
            specs.append(check_spec(decoded))
        except (msgspec.ValidationError, ShoalError, ValueError) as exc:
            raise ComposeError.of([project.problem(("services", service.name),
                                                   str(exc))]) from None
    return specs


def _base_spec(project: Project, service: Service) -> ContainerSpec:
    config = service.config
    where: Path = ("services", service.name)
    problems: list[Problem] = []

    def refuse(key: str | tuple[str | int, ...], message: str) -> None:
        problems.append(project.problem((*where, *((key,) if isinstance(key, str) else key)),
                                        message))

    if service.replicas > 1 and "container_name" in config:
        refuse("container_name", f"names one container, but the service has "
                                 f"{service.replicas} replicas")
    if len(service.networks) > 1:
        refuse("networks", "a container joins one network in shoal: not supported yet")
    deploy = config.get("deploy") or {}
    limits = (deploy.get("resources") or {}).get("limits") or {}
    resources = Resources(
        memory=_size(limits.get("memory", config.get("mem_limit")), refuse, "mem_limit"),
        memory_swap=_size(config.get("memswap_limit"), refuse, "memswap_limit"),
        millicpus=millicpus(float(limits.get("cpus", config.get("cpus", 0)) or 0)),
        cpu_shares=int(config.get("cpu_shares", 0) or 0),
        pids=int(limits.get("pids", config.get("pids_limit", 0)) or 0))
    placement = deploy.get("placement") or {}
    ports = []
    for i, port in enumerate(service.ports):
        if "-" in port.published:
            refuse(("ports", i), f"a published range ({port.published}) is not supported "
                                 "yet: give one port")
            continue
        ports.append(PortMapping(container_port=port.target,
                                 host_port=int(port.published or 0),
                                 protocol=port.protocol,  # type: ignore[arg-type]
                                 host_ip=port.host_ip))
    mounts = [Mount(type=v.type, source=v.source if v.type == "bind" else "",  # type: ignore[arg-type]
                    target=v.target, read_only=v.read_only)
              for v in service.volumes if v.type in ("bind", "tmpfs")]
    for i, volume in enumerate(service.volumes):
        if volume.type not in ("bind", "volume", "tmpfs"):
            refuse(("volumes", i), f"a {volume.type} mount is not supported yet")
    address = ""
    for network, settings in service.networks.items():
        if settings.get("ipv4_address"):
            if service.replicas > 1:
                refuse(("networks", network, "ipv4_address"),
                       f"one address for {service.replicas} replicas")
            address = str(settings["ipv4_address"])
    mounts += [Mount(type="tmpfs", target=str(t).split(":")[0])
               for t in config.get("tmpfs") or []]
    logging = config.get("logging") or {}
    if logging.get("driver", "json-file") != "json-file":
        refuse(("logging", "driver"), f"{logging['driver']}: not supported: the worker keeps "
                                      "the logs (json-file only)")
    seccomp = ""
    for i, option in enumerate(config.get("security_opt") or []):
        key, _, value = str(option).replace(":", "=", 1).partition("=")
        if key != "seccomp" or not value:
            refuse(("security_opt", i), f"{option!r}: not supported: only seccomp="
                                        "unconfined|PROFILE.json")
        elif value == "unconfined":
            seccomp = value
        else:
            refuse(("security_opt", i), "a seccomp profile file: not supported yet in "
                                        "compose (use seccomp=unconfined or none)")
    if (policy := config.get("pull_policy")) not in (None, "never", "missing", "if_not_present"):
        refuse("pull_policy", f"{policy}: not supported yet")
    restart = _restart(config, deploy, refuse)
    platform = _platform(config.get("platform"), refuse)
    stop_timeout = _duration(config.get("stop_grace_period"), refuse, "stop_grace_period")
    labels = {**service.labels, PROJECT_LABEL: project.name, SERVICE_LABEL: service.name,
              HASH_LABEL: service.config_hash, ONEOFF_LABEL: "False",
              FILES_LABEL: ",".join(project.files), WORKDIR_LABEL: project.working_dir}
    spec = None
    if not problems:
        try:
            spec = ContainerSpec(
                image=service.image, command=list(service.command or []),
                entrypoint=list(service.entrypoint) if service.entrypoint is not None
                else None,
                env=[f"{k}={v}" for k, v in service.environment.items()],
                workdir=config.get("working_dir", ""), user=str(config.get("user", "")),
                hostname=config.get("hostname", ""), labels=labels, restart=restart,
                resources=resources, ports=ports, mounts=mounts, platform=platform,
                constraints=[_SWARM_OPERATOR.sub(lambda m: m.group(1), c)
                             for c in placement.get("constraints") or []],
                preferences=[f"spread={p['spread']}" for p in placement.get("preferences")
                             or [] if "spread" in p],
                max_per_node=int(placement.get("max_replicas_per_node", 0) or 0),
                network=service_network(project, service), ip=address,
                add_hosts=list(config.get("extra_hosts") or []),
                dns=list(config.get("dns") or []),
                dns_search=list(config.get("dns_search") or []),
                init=bool(config.get("init", False)), tty=bool(config.get("tty", False)),
                stdin_open=bool(config.get("stdin_open", False)),
                stop_signal=config.get("stop_signal", ""), stop_timeout=stop_timeout,
                seccomp=seccomp, cap_add=[str(c) for c in config.get("cap_add") or []],
                cap_drop=[str(c) for c in config.get("cap_drop") or []],
                privileged=bool(config.get("privileged", False)))
        except (TypeError, ValueError) as exc:
            refuse((), str(exc))
    if problems or spec is None:
        raise ComposeError.of(problems)
    return spec


def _restart(config: dict[str, Any], deploy: dict[str, Any], refuse: Any) -> RestartPolicy:
    policy = deploy.get("restart_policy")
    if policy is not None:
        condition = policy.get("condition", "any")
        name = {"none": "no", "on-failure": "on-failure", "any": "always"}.get(condition)
        if name is None:
            refuse(("deploy", "restart_policy", "condition"),
                   f"{condition!r}: expected none, on-failure or any")
            return RestartPolicy()
        return RestartPolicy(name=name,  # type: ignore[arg-type]
                             max_retries=int(policy.get("max_attempts", 0) or 0))
    try:
        return RestartPolicy.parse(str(config.get("restart", "no")))
    except ValueError as exc:
        refuse("restart", str(exc))
        return RestartPolicy()


def _platform(text: Any, refuse: Any) -> Platform | None:
    if not text:
        return None
    parts = str(text).split("/")
    if len(parts) > 3 or not all(parts):
        refuse("platform", f"bad platform {text!r}: expected OS[/ARCH[/VARIANT]]")
        return None
    return Platform(os=parts[0], arch=parts[1] if len(parts) > 1 else "",
                    variant=parts[2] if len(parts) == 3 else "")


def _duration(value: Any, refuse: Any, key: str) -> float | None:
    """Compose's durations: ``1m30s``, ``10s``, ``500ms``, or a number of seconds."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    text = str(value)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        refuse(key, f"bad duration {text!r}: expected e.g. 10s, 1m30s, 500ms")
        return None
    return sum(float(number) * _UNITS[unit] for number, unit in parts)


def _size(value: Any, refuse: Any, key: str) -> int:
    """Compose's byte sizes: ``512m``, ``1gb``, ``1024`` (bytes)."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value).strip())
    if match is None:
        refuse(key, f"bad size {value!r}: expected e.g. 512m or 2g")
        return 0
    factor = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    return int(float(match.group(1)) * factor[match.group(2).lower()])
