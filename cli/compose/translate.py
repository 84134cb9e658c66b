"""A service of a resolved project as the ContainerSpecs of its replicas, and its networks as
NetworkSpecs: the compose keys ``refusals`` lets through, each turned into what ``shoal run``
would send, labelled so that ``ps``, ``up`` and ``down`` find the project's containers again.
What cannot be translated is a Problem with its file, line and path."""

from __future__ import annotations

import re
from typing import Any, get_args

import msgspec

from cli.compose.errors import ComposeError, Path, Problem
from cli.compose.model import Project, Service, network_peer_service, volume_sources
from cli.compose.project_files import is_written, wanted_file
from cli.compose.refusals import AS_ON_HOST, refusals
from protocol.durations import parse_duration
from protocol.errors import ShoalError
from protocol.specs import (
    CONTAINER_NETWORK_PREFIX,
    ContainerSpec,
    DeviceMapping,
    HealthCheck,
    LogOptions,
    Mount,
    NetworkSpec,
    Platform,
    PortMapping,
    Resources,
    RestartPolicy,
    Ulimit,
    UlimitName,
    VolumeSpec,
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
VOLUME_LABEL = "com.docker.compose.volume"
_SWARM_OPERATOR = re.compile(r"\s*(==|!=)\s*")
ULIMIT_NAMES: tuple[str, ...] = get_args(UlimitName)
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)b?$", re.IGNORECASE)


def check_project(project: Project, services: list[str], *, cluster: bool = False) -> None:
    """Refuse what shoal cannot honour in ``project`` (all of it, each with its reason), and
    what cannot be translated in ``services``."""
    problems = refusals(project)
    for name in services:
        try:
            service_specs(project, project.services[name], cluster=cluster)
        except ComposeError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ComposeError.of(problems)


def container_name(project: Project, service: Service, number: int) -> str:
    explicit = service.config.get("container_name")
    return explicit if isinstance(explicit, str) else f"{project.name}-{service.name}-{number}"


def image_name(project: Project, service: Service) -> str:
    """The service's image: its ``image``, else (a service that is built) the name compose
    gives the build, ``<project>-<service>``."""
    return service.image or f"{project.name}-{service.name}"


def network_name(project: Project, network: str) -> str:
    """The name a project's network has in shoal: its ``name``, else ``<project>_<key>``."""
    config = project.networks.get(network) or {}
    return str(config.get("name") or f"{project.name}_{network}")


def service_network(project: Project, service: Service) -> str:
    """The one network a service's containers join (shoal gives a container one), or its
    ``network_mode``: ``service:X`` joins the namespace of X's first container, as compose
    does (``container:<project>-X-1``)."""
    mode = service.config.get("network_mode")
    peer = network_peer_service(service.config)
    if peer and peer in project.services:
        return CONTAINER_NETWORK_PREFIX + container_name(project, project.services[peer], 1)
    if isinstance(mode, str):
        return mode
    names = list(service.networks) or [DEFAULT_NETWORK]
    return network_name(project, names[0])


def network_specs(project: Project, services: list[str], *, overlay: bool = False
                  ) -> dict[str, NetworkSpec | None]:
    """The networks ``services`` join, by shoal name: a spec to create, or None for an
    external one (which must exist). With ``overlay`` (a scheduler's cluster) every network
    the project makes is an attachable overlay, so its services reach each other by name on
    any host; on a standalone worker a bridge."""
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
                name=shoal_name, driver="overlay" if overlay else "bridge",
                attachable=overlay, subnet=ipam[0].get("subnet", ""),
                gateway=ipam[0].get("gateway", ""), internal=bool(config.get("internal")),
                labels={**(config.get("labels") or {}), PROJECT_LABEL: project.name,
                        NETWORK_LABEL: network})
    return wanted


def volume_name(project: Project, volume: str) -> str:
    """The name a project's volume has in shoal: its ``name``, else ``<project>_<key>`` (an
    external one: its ``name``, else its key)."""
    config = project.volumes.get(volume) or {}
    if config.get("name"):
        return str(config["name"])
    return volume if config.get("external") else f"{project.name}_{volume}"


def volume_specs(project: Project, services: list[str]) -> dict[str, VolumeSpec | None]:
    """The named volumes ``services`` mount, by shoal name: a spec to create, or None for an
    external one (which must exist)."""
    wanted: dict[str, VolumeSpec | None] = {}
    for name in services:
        for mount in project.services[name].volumes:
            if mount.type != "volume" or mount.source not in project.volumes:
                continue
            config = project.volumes.get(mount.source) or {}
            shoal_name = volume_name(project, mount.source)
            wanted[shoal_name] = None if config.get("external") else VolumeSpec(
                name=shoal_name, options={k: str(v) for k, v in
                                          (config.get("driver_opts") or {}).items()},
                labels={**(config.get("labels") or {}), PROJECT_LABEL: project.name,
                        VOLUME_LABEL: mount.source})
    return wanted


def service_specs(project: Project, service: Service, *, cluster: bool = False
                  ) -> list[ContainerSpec]:
    """One spec per replica (numbered from 1), each checked as the service will check it.
    ``cluster``: for a scheduler, where ``links`` and ``volumes_from`` co-locate (a worker
    runs what it is given and refuses placement rules)."""
    base = _base_spec(project, service, cluster)
    if cluster and is_global(service):
        return [_checked(project, service, msgspec.structs.replace(
            base, name=f"{project.name}-{service.name}"))]
    specs = []
    for number in range(1, service.replicas + 1):
        labels = {**base.labels, NUMBER_LABEL: str(number)}
        specs.append(_checked(project, service, msgspec.structs.replace(
            base, name=container_name(project, service, number), labels=labels)))
    return specs


def is_global(service: Service) -> bool:
    """``deploy.mode: global``: through a scheduler, a global job (one container on every
    eligible node, ``<project>-<service>.NODE``); on a standalone worker, its one node's."""
    return (service.config.get("deploy") or {}).get("mode") == "global"


def _checked(project: Project, service: Service, spec: ContainerSpec) -> ContainerSpec:
    """The spec as the service will check it, or the reason as the service's problem."""
    try:
        decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(spec), type=ContainerSpec)
        return check_spec(decoded)
    except (msgspec.ValidationError, ShoalError, ValueError) as exc:
        raise ComposeError.of([project.problem(("services", service.name),
                                               str(exc))]) from None


def _base_spec(project: Project, service: Service, cluster: bool) -> ContainerSpec:
    config = service.config
    where: Path = ("services", service.name)
    problems: list[Problem] = []

    def refuse(key: str | tuple[str | int, ...], message: str) -> None:
        problems.append(project.problem((*where, *((key,) if isinstance(key, str) else key)),
                                        message))

    if service.replicas > 1 and "container_name" in config:
        refuse("container_name", f"names one container, but the service has "
                                 f"{service.replicas} replicas")
    if is_global(service):
        if "container_name" in config:
            refuse("container_name", "names one container, but a global service runs one "
                                     "on every node")
        counted = "no count can be given: a global service runs one on every eligible node"
        if "replicas" in (config.get("deploy") or {}):
            refuse(("deploy", "replicas"), counted)
        if "scale" in config:
            refuse("scale", counted)
    peer = network_peer_service(config)
    if cluster and peer in project.services and is_global(project.services[peer]):
        refuse("network_mode", f"service {peer} is global: it runs a container on every "
                               f"node, none of them its first, so there is no one network to "
                               f"join (name one of its containers with container:NAME)")
    if len(service.networks) > 1:
        refuse("networks", "a container joins one network in shoal: not supported yet")
    deploy = config.get("deploy") or {}
    limits = (deploy.get("resources") or {}).get("limits") or {}
    reservations = (deploy.get("resources") or {}).get("reservations") or {}
    resources = Resources(
        memory=_size(limits.get("memory", config.get("mem_limit")), refuse, "mem_limit"),
        memory_swap=_size(config.get("memswap_limit"), refuse, "memswap_limit"),
        millicpus=millicpus(float(limits.get("cpus", config.get("cpus", 0)) or 0)),
        cpu_shares=int(config.get("cpu_shares", 0) or 0),
        pids=int(limits.get("pids", config.get("pids_limit", 0)) or 0),
        reserved_memory=_size(reservations.get("memory"), refuse,
                              ("deploy", "resources", "reservations", "memory")),
        reserved_millicpus=millicpus(float(reservations.get("cpus", 0) or 0)))
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
    mounts = _mounts(project, service, refuse)
    mounts += _mounts_from(project, service, {m.target for m in mounts}, refuse)
    mounts += _files(project, service, refuse)
    address = ""
    for network, settings in service.networks.items():
        if settings.get("ipv4_address"):
            if service.replicas > 1:
                refuse(("networks", network, "ipv4_address"),
                       f"one address for {service.replicas} replicas")
            address = str(settings["ipv4_address"])
    for i, text in enumerate(config.get("tmpfs") or []):
        target, _, options = str(text).partition(":")
        size, mode = _tmpfs_options(options, refuse, ("tmpfs", i))
        mounts.append(Mount(type="tmpfs", target=target, tmpfs_size=size, tmpfs_mode=mode))
    healthcheck = _healthcheck(config.get("healthcheck"), refuse)
    logging = config.get("logging") or {}
    if logging.get("driver", "json-file") != "json-file":
        refuse(("logging", "driver"), f"{logging['driver']}: not supported: the worker keeps "
                                      "the logs (json-file only)")
    log_options = None
    if logging.get("options"):
        try:
            # The schema allows text, numbers and null (no value: the option is not given).
            log_options = LogOptions.parse({str(k): str(v) for k, v in
                                            logging["options"].items() if v is not None})
        except ValueError as exc:
            refuse(("logging", "options"), str(exc))
    seccomp = ""
    no_new_privileges = False
    for i, option in enumerate(config.get("security_opt") or []):
        key, sep, value = str(option).replace(":", "=", 1).partition("=")
        if key == "no-new-privileges" and (not sep or value in ("true", "false")):
            no_new_privileges = not sep or value == "true"
        elif key != "seccomp" or not value:
            refuse(("security_opt", i), f"{option!r}: not supported: only seccomp="
                                        "unconfined|PROFILE.json and no-new-privileges")
        elif value == "unconfined":
            seccomp = value
        else:
            refuse(("security_opt", i), "a seccomp profile file: not supported yet in "
                                        "compose (use seccomp=unconfined or none)")
    restart = _restart(config, deploy, refuse)
    ulimits = _ulimits(config.get("ulimits") or {}, refuse)
    devices = _devices(config.get("devices") or [], refuse)
    platform = _platform(config.get("platform"), refuse)
    stop_timeout = _duration(config.get("stop_grace_period"), refuse, ("stop_grace_period",))
    labels = {**service.labels, PROJECT_LABEL: project.name, SERVICE_LABEL: service.name,
              HASH_LABEL: service.config_hash, ONEOFF_LABEL: "False",
              FILES_LABEL: ",".join(project.files), WORKDIR_LABEL: project.working_dir}
    spec = None
    if not problems:
        try:
            spec = ContainerSpec(
                image=image_name(project, service), command=list(service.command or []),
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
                network_aliases=network_aliases(project, service),
                affinities=[f"container=={target}" for target in _linked(project, service)]
                if cluster else [],
                volumes_from=[container_name(project, project.services[source], 1)
                              for source, _ in volume_sources(config)
                              if source in project.services] if cluster else [],
                expose=[str(port) for port in config.get("expose") or []],
                add_hosts=list(config.get("extra_hosts") or []),
                dns=list(config.get("dns") or []),
                dns_search=list(config.get("dns_search") or []),
                init=bool(config.get("init", False)), tty=bool(config.get("tty", False)),
                stdin_open=bool(config.get("stdin_open", False)),
                stop_signal=config.get("stop_signal", ""), stop_timeout=stop_timeout,
                seccomp=seccomp, cap_add=[str(c) for c in config.get("cap_add") or []],
                cap_drop=[str(c) for c in config.get("cap_drop") or []],
                privileged=bool(config.get("privileged", False)), healthcheck=healthcheck,
                ulimits=ulimits, devices=devices, no_new_privileges=no_new_privileges,
                log_options=log_options)
        except (TypeError, ValueError) as exc:
            refuse((), str(exc))
    if problems or spec is None:
        raise ComposeError.of(problems)
    return spec


def _devices(config: list[Any], refuse: Any) -> list[DeviceMapping]:
    """``devices``: ``HOST[:CONTAINER][:rwm]``, or {source, target, permissions}."""
    found = []
    for i, entry in enumerate(config):
        text = entry if isinstance(entry, str) else ":".join(
            str(part) for part in (entry.get("source", ""), entry.get("target", ""),
                                   entry.get("permissions", "")) if part)
        try:
            found.append(DeviceMapping.parse(text))
        except ValueError as exc:
            refuse(("devices", i), str(exc))
    return found


def _ulimits(config: dict[str, Any], refuse: Any) -> list[Ulimit]:
    """``ulimits``: NAME: N (soft and hard), or NAME: {soft, hard}."""
    found = []
    for name, value in config.items():
        soft, hard = (value, value) if not isinstance(value, dict) else \
            (value.get("soft"), value.get("hard"))
        if name not in ULIMIT_NAMES:
            refuse(("ulimits", name), f"{name!r}: not a limit shoal knows "
                                      f"({', '.join(ULIMIT_NAMES)})")
            continue
        try:
            limit = msgspec.convert({"name": name, "soft": soft, "hard": hard}, Ulimit)
        except msgspec.ValidationError as exc:
            refuse(("ulimits", name), str(exc).replace("`$.", "`"))
            continue
        if limit.hard != -1 and (limit.soft == -1 or limit.soft > limit.hard):
            refuse(("ulimits", name), f"the soft limit ({soft}) is above the hard one "
                                      f"({hard})")
        found.append(limit)
    return found


def _restart(config: dict[str, Any], deploy: dict[str, Any], refuse: Any) -> RestartPolicy:
    policy = deploy.get("restart_policy")
    if policy is not None:
        condition = policy.get("condition", "any")
        name = {"none": "no", "on-failure": "on-failure", "any": "always"}.get(condition)
        if name is None:
            refuse(("deploy", "restart_policy", "condition"),
                   f"{condition!r}: expected none, on-failure or any")
            return RestartPolicy()
        where = ("deploy", "restart_policy")
        return RestartPolicy(name=name,  # type: ignore[arg-type]
                             max_retries=int(policy.get("max_attempts", 0) or 0),
                             delay=_duration(policy.get("delay"), refuse, (*where, "delay")),
                             window=_duration(policy.get("window"), refuse,
                                              (*where, "window")) or 0.0)
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


def _duration(value: Any, refuse: Any, key: tuple[str | int, ...]) -> float | None:
    """Compose's durations: Go's (``1m30s``, ``10s``, ``500ms``), or a number of seconds."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        seconds = parse_duration(str(value))
    except ValueError as exc:
        refuse(key, str(exc))
        return None
    if seconds < 0:
        refuse(key, f"a negative duration: {value}")
        return None
    return seconds


def _healthcheck(config: Any, refuse: Any) -> HealthCheck | None:
    """The service's ``healthcheck`` over the image's (``disable: true`` or test ``NONE``
    turns the image's off); None: the image's own."""
    if not isinstance(config, dict):
        return None
    where = ("healthcheck",)
    if config.get("disable"):
        return HealthCheck(test=["NONE"])
    test = [str(word) for word in config.get("test") or []]
    if test and test[0] not in ("NONE", "CMD", "CMD-SHELL"):
        refuse((*where, "test"), f"{test[0]!r}: expected NONE, CMD or CMD-SHELL first")
    seconds = {key: _duration(config.get(key), refuse, (*where, key)) or 0.0
               for key in ("interval", "timeout", "start_period", "start_interval")}
    return HealthCheck(test=test, retries=int(config.get("retries", 0) or 0), **seconds)


def network_aliases(project: Project, service: Service) -> list[str]:
    """The names a service's containers answer to on its network besides their own, as
    compose gives them: the service's name, its ``hostname``, the network's ``aliases``, and
    the aliases other services' ``links`` give it."""
    if isinstance(service.config.get("network_mode"), str):
        return []
    names = [service.name]
    if isinstance(service.config.get("hostname"), str):
        names.append(service.config["hostname"])
    for settings in list(service.networks.values())[:1]:
        names += [str(alias) for alias in settings.get("aliases") or []]
    for other in project.services.values():
        for link in other.config.get("links") or []:
            target, _, alias = str(link).partition(":")
            if target == service.name and alias:
                names.append(alias)
    return list(dict.fromkeys(names))


def _linked(project: Project, service: Service) -> list[str]:
    """The containers ``links`` co-locate the service's with: each linked service's first."""
    targets = []
    for link in service.config.get("links") or []:
        target = project.services.get(str(link).partition(":")[0])
        if target is not None:
            targets.append(container_name(project, target, 1))
    return targets


def _mounts(project: Project, service: Service, refuse: Any) -> list[Mount]:
    mounts = []
    for i, volume in enumerate(service.volumes):
        config = service.config["volumes"][i]
        if volume.type == "bind":
            mounts.append(Mount(type="bind", source=volume.source, target=volume.target,
                                read_only=volume.read_only))
        elif volume.type == "volume":
            if not volume.source:
                refuse(("volumes", i), "an anonymous volume: not supported yet (name it, and "
                                       "declare it under the top-level volumes)")
            else:
                mounts.append(Mount(
                    type="volume", source=volume_name(project, volume.source),
                    target=volume.target, read_only=volume.read_only,
                    no_copy=bool((config.get("volume") or {}).get("nocopy"))))
        elif volume.type == "tmpfs":
            tmpfs = config.get("tmpfs") or {}
            size = _size(tmpfs.get("size"), refuse, ("volumes", i, "tmpfs", "size"))
            mode = tmpfs.get("mode", 0)
            mounts.append(Mount(type="tmpfs", target=volume.target, tmpfs_size=size,
                                tmpfs_mode=int(str(mode), 8) if isinstance(mode, str)
                                else int(mode)))
        else:
            refuse(("volumes", i), f"a {volume.type} mount is not supported yet")
    return mounts


def _mounts_from(project: Project, service: Service, own: set[str], refuse: Any
                 ) -> list[Mount]:
    """``volumes_from``: the bind mounts and named volumes of each source service, read-only
    with ``:ro``, else as the source has them (Docker's rule); a target the service mounts
    itself keeps its own (Docker's too). A tmpfs is not shared: it is not carried over."""
    mounts: list[Mount] = []
    targets = set(own)
    for i, (source, mode) in enumerate(volume_sources(service.config)):
        other = project.services.get(source)
        if not source or other is None:
            continue  # a container's (refused) or an undefined service (the loader's)
        if mode not in ("", "ro", "rw"):
            refuse(("volumes_from", i), f"{mode!r}: expected ro or rw")
            continue
        for mount in _mounts(project, other, lambda *_: None):
            if mount.type == "tmpfs" or mount.target in targets:
                continue
            targets.add(mount.target)
            mounts.append(msgspec.structs.replace(
                mount, read_only=mount.read_only if mode == "" else mode == "ro"))
    return mounts


def _files(project: Project, service: Service, refuse: Any) -> list[Mount]:
    """The service's ``secrets`` and ``configs`` as compose mounts them without a swarm: a
    secret at ``/run/secrets/<target or name>``, a config at its ``target`` (default
    ``/<name>``), read-only. A host ``file`` is bind-mounted as it is (its owner and mode: compose
    ignores ``uid``, ``gid`` and ``mode`` there, shoal refuses them); a value (``content``,
    ``environment``) is bind-mounted from the file ``project_files`` writes with them."""
    mounts = []
    for kind, defined, directory in (("secrets", project.secrets, "/run/secrets"),
                                     ("configs", project.configs, "")):
        for i, item in enumerate(service.config.get(kind) or []):
            source = str(item.get("source", ""))
            definition = defined.get(source) or {}
            target = str(item.get("target") or source)
            if not target.startswith("/"):
                target = f"{directory}/{target}"
            if ".." in target.split("/"):
                refuse((kind, i, "target"), f"{target!r}: '..' is not allowed")
                continue
            path = definition.get("file")
            if isinstance(path, str):
                for key in ("uid", "gid", "mode"):
                    if key in item:
                        refuse((kind, i, key), AS_ON_HOST)
            elif is_written(definition):
                try:
                    path = wanted_file(project, kind, source, item).path
                except ValueError as exc:
                    refuse((kind, i), str(exc))
                    continue
            else:
                continue  # undefined (the loader's), or external (refused)
            mounts.append(Mount(type="bind", source=path, target=target, read_only=True))
    return mounts


def _tmpfs_options(text: str, refuse: Any, key: tuple[str | int, ...]) -> tuple[int, int]:
    """``size=64m,mode=1777`` of a short ``tmpfs`` entry: its size in bytes and its mode."""
    size = mode = 0
    for option in filter(None, text.split(",")):
        name, _, value = option.partition("=")
        if name == "size":
            size = _size(value, refuse, key)
        elif name == "mode" and value and all(c in "01234567" for c in value):
            mode = int(value, 8)
        else:
            refuse(key, f"tmpfs option {option!r}: expected size=BYTES or mode=OCTAL")
    return size, mode


def _size(value: Any, refuse: Any, key: str | tuple[str | int, ...]) -> int:
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
