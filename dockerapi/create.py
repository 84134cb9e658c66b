"""``POST /containers/create``: Docker's container config turned into a ``ContainerSpec``.

Every field Docker defines is either translated, or accepted only at its empty value (what the
docker CLI and docker-py send for options not given), or refused with a 400 that names it: a
field that matters is never dropped silently. Swarm classic's ``constraint:``/``affinity:`` env
entries become placement rules, as its manager read them.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from dockerapi.errors import ApiError, bad_parameter
from protocol.errors import InvalidArgument
from protocol.specs import (
    ContainerSpec,
    DeviceMapping,
    HealthCheck,
    LogOptions,
    Mount,
    Platform,
    PortMapping,
    Resources,
    RestartPolicy,
    Ulimit,
    network_container,
)
from protocol.validation import check_spec

# Docker's rule for container names.
NAME_PATTERN = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

# Fields that are client-side or descriptive in Docker and need nothing from the daemon.
_CLIENT_ONLY = {"AttachStdin", "AttachStdout", "AttachStderr", "StdinOnce", "ArgsEscaped",
                "NetworkDisabled", "ConsoleSize", "OomScoreAdj", "MacAddress", "Shell",
                "OnBuild", "ExposedPorts", "Isolation"}
# docker's volume names: a letter or digit first, then letters, digits, '_', '.', '-'.
VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
# Docker's default network: shoal's worker has a bridge network of that name.
DEFAULT_NETWORK = "bridge"

# Fields whose only accepted values are these (the defaults clients send).
_DEFAULTS: dict[str, tuple[Any, ...]] = {
    "CgroupnsMode": ("", "private", "host"), "IpcMode": ("", "private", "shareable"),
    "PidMode": ("",), "UTSMode": ("",), "UsernsMode": ("",), "Runtime": ("", "runc"),
    "Isolation": ("", "default"), "VolumeDriver": ("",), "CgroupParent": ("",),
    "Cgroup": ("",), "ShmSize": (0, 67108864), "MemorySwappiness": (None, -1),
    "OomKillDisable": (None, False),
}


def _empty(value: Any) -> bool:
    return value is None or value is False or value == 0 or value == "" or value == [] \
        or value == {}


def _leftover(section: str, body: dict[str, Any], used: set[str]) -> None:
    """Refuse any field of ``body`` not in ``used`` that carries more than its empty value."""
    for key, value in body.items():
        if key in used or key in _CLIENT_ONLY or _empty(value):
            continue
        if key in _DEFAULTS and value in _DEFAULTS[key]:
            continue
        raise bad_parameter(f"{section}.{key} is not supported by shoal "
                            f"(given {str(value)[:80]})")


def _object(body: Any, section: str) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise bad_parameter(f"{section}: expected a JSON object")
    return body


def _strings(value: Any, field: str, *, single: bool = False) -> list[str]:
    """A list of strings or null; with ``single``, a string too (Docker's strslice: Cmd,
    Entrypoint)."""
    if value is None:
        return []
    if single and isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise bad_parameter(f"{field}: expected a string or a list of strings")


def _number(value: Any, field: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_parameter(f"{field}: expected a whole number")
    return value


def _placement(env: list[str]) -> tuple[list[str], list[str], list[str]]:
    """Swarm classic's env entries ``constraint:RULE`` and ``affinity:RULE``, taken out of the
    environment: (env, constraints, affinities)."""
    kept, constraints, affinities = [], [], []
    for entry in env:
        if entry.startswith("constraint:"):
            constraints.append(entry.removeprefix("constraint:"))
        elif entry.startswith("affinity:"):
            affinities.append(entry.removeprefix("affinity:"))
        else:
            kept.append(entry)
    return kept, constraints, affinities


def _binds(binds: list[str]) -> list[Mount]:
    """``SOURCE:TARGET[:ro|rw]``: a bind when SOURCE is an absolute path, else a named
    volume (made on first use, as Docker makes one)."""
    mounts = []
    for bind in binds:
        parts = bind.split(":")
        if len(parts) < 2 or not parts[0] or not parts[1].startswith("/"):
            raise bad_parameter(f"invalid volume specification: {bind!r}")
        options = parts[2].split(",") if len(parts) > 2 else []
        unknown = [o for o in options if o not in ("ro", "rw", "")]
        if len(parts) > 3 or unknown:
            raise bad_parameter(f"HostConfig.Binds: {bind!r}: only ro and rw are supported")
        kind = "bind" if parts[0].startswith("/") else "volume"
        if kind == "volume" and not VOLUME_NAME.match(parts[0]):
            raise bad_parameter(f"HostConfig.Binds: {parts[0]!r} is not a volume name and a "
                                "host path must be absolute")
        mounts.append(Mount(type=kind,  # type: ignore[arg-type]  # bind or volume
                            source=parts[0], target=parts[1],
                            read_only="ro" in options))
    return mounts


def _api_mounts(items: list[Any]) -> list[Mount]:
    """``HostConfig.Mounts``: bind, volume and tmpfs, with the options shoal has."""
    mounts = []
    for item in items:
        item = _object(item, "HostConfig.Mounts[]")
        kind = item.get("Type") or "volume"
        _leftover("HostConfig.Mounts[]", item, {"Type", "Source", "Target", "ReadOnly",
                                                "Consistency", "BindOptions", "VolumeOptions",
                                                "TmpfsOptions"})
        if kind not in ("bind", "volume", "tmpfs"):
            raise bad_parameter(f"HostConfig.Mounts: type {kind!r} is not supported")
        bind = _object(item.get("BindOptions"), "BindOptions")
        _leftover("BindOptions", bind, {"Propagation"})
        if bind.get("Propagation") not in (None, "", "rprivate"):
            raise bad_parameter("BindOptions.Propagation: only rprivate is supported")
        volume = _object(item.get("VolumeOptions"), "VolumeOptions")
        _leftover("VolumeOptions", volume, {"NoCopy", "Labels", "DriverConfig"})
        driver = _object(volume.get("DriverConfig"), "DriverConfig")
        if (driver.get("Name") or "local") != "local" or driver.get("Options"):
            raise bad_parameter("VolumeOptions.DriverConfig: only the local driver, without "
                                "options, is supported")
        if volume.get("Labels"):
            raise bad_parameter("VolumeOptions.Labels: create the volume with its labels "
                                "first (POST /volumes/create)")
        tmpfs = _object(item.get("TmpfsOptions"), "TmpfsOptions")
        _leftover("TmpfsOptions", tmpfs, {"SizeBytes", "Mode"})
        source = str(item.get("Source") or "")
        if kind == "volume" and not source:
            raise bad_parameter("HostConfig.Mounts: a volume needs a Source (anonymous "
                                "volumes are not supported)")
        mounts.append(Mount(type=kind,  # type: ignore[arg-type]  # checked above
                            source="" if kind == "tmpfs" else source,
                            target=str(item.get("Target", "")),
                            read_only=bool(item.get("ReadOnly")),
                            no_copy=bool(volume.get("NoCopy")),
                            tmpfs_size=_number(tmpfs.get("SizeBytes"), "SizeBytes"),
                            tmpfs_mode=_number(tmpfs.get("Mode"), "Mode")))
    return mounts


def _tmpfs(tmpfs: dict[str, Any]) -> list[Mount]:
    """``HostConfig.Tmpfs``: {path: "size=64m,mode=1777,ro"}, Docker's --tmpfs options."""
    mounts = []
    for target, options in tmpfs.items():
        if not isinstance(options, str):
            raise bad_parameter("HostConfig.Tmpfs: expected an object of strings")
        size, mode, read_only = 0, 0, False
        for option in filter(None, options.split(",")):
            key, sep, value = option.partition("=")
            if key in ("ro", "rw") and not sep:
                read_only = key == "ro"
            elif key in ("nosuid", "nodev", "noexec", "exec") and not sep:
                continue  # a tmpfs is always nosuid,nodev; exec as Docker's default
            elif key == "size" and sep:
                size = _bytes(value)
            elif key == "mode" and sep and re.fullmatch(r"[0-7]{1,4}", value):
                mode = int(value, 8)
            else:
                raise bad_parameter(f"HostConfig.Tmpfs: {target}: option {option!r} is not "
                                    "supported (size=, mode=, ro, rw)")
        mounts.append(Mount(type="tmpfs", target=target, read_only=read_only,
                            tmpfs_size=size, tmpfs_mode=mode))
    return mounts


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def _bytes(text: str) -> int:
    found = re.fullmatch(r"(\d+)([bkmgt]?)", text.strip().lower())
    if not found:
        raise bad_parameter(f"HostConfig.Tmpfs: bad size {text!r}")
    return int(found.group(1)) * _UNITS[found.group(2)]


def _anonymous(volumes: dict[str, Any], mounts: list[Mount]) -> None:
    """``Config.Volumes``: mount points; one no bind, volume or tmpfs covers would be an
    anonymous volume, which shoal does not make (docker-py lists its binds' targets here)."""
    covered = {m.target for m in mounts}
    anonymous = sorted(set(volumes) - covered)
    if anonymous:
        raise bad_parameter(f"Config.Volumes: anonymous volumes are not supported "
                            f"({', '.join(anonymous)[:80]}): name a volume in "
                            "HostConfig.Binds or Mounts")


def _healthcheck(config: dict[str, Any]) -> HealthCheck | None:
    """``Config.Healthcheck``: durations in nanoseconds, as Docker sends them."""
    if config.get("Healthcheck") is None:
        return None
    health = _object(config.get("Healthcheck"), "Config.Healthcheck")
    _leftover("Config.Healthcheck", health, {"Test", "Interval", "Timeout", "StartPeriod",
                                              "StartInterval", "Retries"})

    def seconds(key: str) -> float:
        return _number(health.get(key), f"Healthcheck.{key}") / 1e9
    return HealthCheck(test=_strings(health.get("Test"), "Healthcheck.Test"),
                       interval=seconds("Interval"), timeout=seconds("Timeout"),
                       start_period=seconds("StartPeriod"),
                       start_interval=seconds("StartInterval"),
                       retries=_number(health.get("Retries"), "Healthcheck.Retries"))


def _ports(bindings: dict[str, Any]) -> list[PortMapping]:
    ports = []
    for key, hosts in bindings.items():
        number, _, proto = key.partition("/")
        if not number.isdigit():
            raise bad_parameter(f"HostConfig.PortBindings: bad port {key!r}")
        for host in hosts or [{}]:
            host = _object(host, "HostConfig.PortBindings[]")
            host_port = str(host.get("HostPort") or "0")
            if not host_port.isdigit():
                raise bad_parameter(f"HostConfig.PortBindings: bad host port {host_port!r} "
                                    "(ranges are not supported)")
            try:
                ports.append(PortMapping(container_port=int(number), host_port=int(host_port),
                                         protocol=proto or "tcp",  # type: ignore[arg-type]
                                         host_ip=str(host.get("HostIp") or "")))
            except (TypeError, ValueError) as exc:
                raise bad_parameter(f"HostConfig.PortBindings: {key}: {exc}") from None
    return ports


def _resources(hc: dict[str, Any]) -> Resources:
    nanos = _number(hc.get("NanoCpus"), "NanoCpus")
    millicpus = nanos // 1_000_000
    quota, period = _number(hc.get("CpuQuota"), "CpuQuota"), _number(hc.get("CpuPeriod"),
                                                                      "CpuPeriod")
    if quota > 0:
        if nanos:
            raise bad_parameter("Conflicting options: Nano CPUs and CPU Period cannot both be "
                                "set")
        millicpus = quota * 1000 // (period or 100_000)
    pids = _number(hc.get("PidsLimit"), "PidsLimit")
    return Resources(millicpus=millicpus, cpu_shares=_number(hc.get("CpuShares"), "CpuShares"),
                     memory=_number(hc.get("Memory"), "Memory"),
                     memory_swap=_number(hc.get("MemorySwap"), "MemorySwap"),
                     pids=max(pids, 0))


def _security(opts: list[str]) -> tuple[str, bool]:
    """``HostConfig.SecurityOpt``: the seccomp profile (as ``ContainerSpec.seccomp``) and
    whether no-new-privileges is asked for."""
    seccomp = ""
    no_new_privileges = False
    for opt in opts:
        key, sep, value = opt.partition("=" if "=" in opt else ":")
        if key == "seccomp" and sep and value:
            seccomp = value
        elif key == "no-new-privileges" and value in (("true", "false") if sep else ("",)):
            no_new_privileges = value != "false"
        else:
            raise bad_parameter(f"HostConfig.SecurityOpt: {opt[:80]!r} is not supported "
                                "(only seccomp=unconfined, a seccomp profile and "
                                "no-new-privileges)")
    return seccomp, no_new_privileges


def _devices(items: list[Any]) -> list[DeviceMapping]:
    """``HostConfig.Devices``: [{PathOnHost, PathInContainer, CgroupPermissions}]."""
    mappings = []
    for item in items:
        item = _object(item, "HostConfig.Devices[]")
        _leftover("HostConfig.Devices[]", item,
                  {"PathOnHost", "PathInContainer", "CgroupPermissions"})
        host = str(item.get("PathOnHost") or "")
        mappings.append(DeviceMapping(
            path_on_host=host, path_in_container=str(item.get("PathInContainer") or host),
            permissions=str(item.get("CgroupPermissions") or "rwm")))
    return mappings


def _log_config(log_config: dict[str, Any]) -> LogOptions | None:
    """``HostConfig.LogConfig``: json-file (the only driver), with Docker's max-size, max-file
    and compress; other options and drivers refused with the reason."""
    kind = log_config.get("Type") or ""
    if kind not in ("", "json-file"):
        raise bad_parameter(f"HostConfig.LogConfig: {kind}: not supported: shoal keeps every "
                            "container's log as json-file")
    options = _object(log_config.get("Config"), "HostConfig.LogConfig.Config")
    if not options:
        return None
    try:
        return LogOptions.parse({str(k): str(v) for k, v in options.items()})
    except ValueError as exc:
        raise bad_parameter(f"HostConfig.LogConfig: {exc}") from None


def _network(hc: dict[str, Any], networking: dict[str, Any],
             default: str) -> tuple[str, str, list[str]]:
    """(network, fixed address, aliases). Docker's ``default`` is the daemon's ``default``
    (shoal's ``bridge`` network, or ``none`` where there are no networks); ``bridge``,
    ``none``, ``host`` and ``container:<id|name>`` are kept as given. One network at create,
    as Docker takes (more join with ``POST /networks/{id}/connect``)."""
    mode = hc.get("NetworkMode") or "default"
    if not isinstance(mode, str):
        raise bad_parameter("HostConfig.NetworkMode: expected a string")
    network = default if mode == "default" else mode
    address, aliases = "", []
    endpoints = _object(networking.get("EndpointsConfig"), "NetworkingConfig.EndpointsConfig")
    if len(endpoints) > 1:
        raise bad_parameter("Container cannot be connected to network endpoints: "
                            f"{', '.join(endpoints)} (one network at create; connect more "
                            "after)")
    for name, endpoint in endpoints.items():
        if name not in (network, mode) and not (name == DEFAULT_NETWORK
                                                 and mode == "default"):
            # Compose leaves the mode at default and names the network here
            if mode != "default":
                raise bad_parameter(f"NetworkingConfig names network {name!r}, but "
                                    f"HostConfig.NetworkMode is {mode!r}")
            network = name
        endpoint = _object(endpoint, f"NetworkingConfig.EndpointsConfig.{name}")
        aliases = _strings(endpoint.get("Aliases"), "Aliases")
        ipam = _object(endpoint.get("IPAMConfig"), "IPAMConfig")
        address = str(ipam.get("IPv4Address") or "")
        _leftover("IPAMConfig", ipam, {"IPv4Address"})
        _leftover(f"NetworkingConfig.EndpointsConfig.{name}", endpoint,
                  {"IPAMConfig", "Aliases", "NetworkID", "EndpointID", "Gateway",
                   "IPAddress", "DriverOpts", "Links"})
        if endpoint.get("Links"):
            raise bad_parameter("EndpointsConfig.Links: links are not supported (use "
                                "names or aliases on a network)")
    if aliases and network in ("none", "host"):
        raise bad_parameter(f"network-scoped aliases are not supported on network {network}")
    return network, address, aliases


def spec_from_create(body: Any, name: str, platform: str,
                     default_network: str = DEFAULT_NETWORK) -> ContainerSpec:
    """The spec a create request asks for, checked as the daemon will check it."""
    config = _object(body, "body")
    if name and not NAME_PATTERN.match(name):
        raise bad_parameter(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] "
                            "are allowed")
    hc = _object(config.get("HostConfig"), "HostConfig")
    networking = _object(config.get("NetworkingConfig"), "NetworkingConfig")
    image = config.get("Image")
    if not isinstance(image, str) or not image:
        raise bad_parameter("Config.Image: an image is required")
    env, constraints, affinities = _placement(_strings(config.get("Env"), "Env"))
    entrypoint = config.get("Entrypoint")
    restart = _object(hc.get("RestartPolicy"), "HostConfig.RestartPolicy")
    restart_name = restart.get("Name") or "no"
    if restart.get("MaximumRetryCount") and restart_name != "on-failure":
        raise bad_parameter(f"maximum retry count cannot be used with restart policy "
                            f"'{restart_name}'")  # dockerd's words: only on-failure counts
    tmpfs = _tmpfs(_object(hc.get("Tmpfs"), "HostConfig.Tmpfs"))
    network, address, aliases = _network(hc, networking, default_network)
    if network_container(network) and config.get("MacAddress"):
        # Client-only elsewhere; beside container:X Docker refuses it, and so does shoal.
        raise bad_parameter(f"a container on --network {network} shares its network: "
                            "--mac-address conflicts with it")
    init = hc.get("Init")
    stop_timeout = config.get("StopTimeout")
    _leftover("Config", config, {
        "Image", "Cmd", "Entrypoint", "Env", "WorkingDir", "User", "Labels", "Tty",
        "OpenStdin", "StopSignal", "StopTimeout", "Hostname", "HostConfig",
        "NetworkingConfig", "Healthcheck", "Volumes"})
    _leftover("HostConfig", hc, {
        "Binds", "Mounts", "PortBindings", "RestartPolicy", "Memory", "MemorySwap", "NanoCpus",
        "CpuShares", "CpuQuota", "CpuPeriod", "PidsLimit", "NetworkMode", "AutoRemove", "Init",
        "SecurityOpt", "LogConfig", "ExtraHosts", "Dns", "DnsSearch", "Tmpfs", "CapAdd",
        "CapDrop", "Privileged", "PublishAllPorts", "Devices", "Ulimits"})
    mounts = [*_binds(_strings(hc.get("Binds"), "Binds")),
              *_api_mounts(hc.get("Mounts") or []), *tmpfs]
    _anonymous(_object(config.get("Volumes"), "Config.Volumes"), mounts)
    seccomp, no_new_privileges = _security(_strings(hc.get("SecurityOpt"), "SecurityOpt"))
    try:
        policy = RestartPolicy(name=restart_name,  # type: ignore[arg-type]  # decode checks
                               max_retries=_number(restart.get("MaximumRetryCount"),
                                                   "MaximumRetryCount"))
        log_options = _log_config(_object(hc.get("LogConfig"), "HostConfig.LogConfig"))
        spec = ContainerSpec(
            image=image, name=name.removeprefix("/"),
            command=_strings(config.get("Cmd"), "Cmd", single=True),
            entrypoint=None if entrypoint is None else
            [e for e in _strings(entrypoint, "Entrypoint", single=True) if e],
            env=env, workdir=str(config.get("WorkingDir") or ""),
            user=str(config.get("User") or ""), hostname=str(config.get("Hostname") or ""),
            labels=_object(config.get("Labels"), "Labels"), restart=policy,
            resources=_resources(hc), ports=_ports(_object(hc.get("PortBindings"),
                                                           "HostConfig.PortBindings")),
            mounts=mounts,
            platform=_platform(platform), constraints=constraints, affinities=affinities,
            network=network, ip=address, network_aliases=aliases,
            healthcheck=_healthcheck(config),
            publish_all=bool(hc.get("PublishAllPorts")),
            expose=sorted(_object(config.get("ExposedPorts"), "Config.ExposedPorts")),
            add_hosts=_strings(hc.get("ExtraHosts"), "ExtraHosts"),
            dns=_strings(hc.get("Dns"), "Dns"), dns_search=_strings(hc.get("DnsSearch"),
                                                                   "DnsSearch"),
            init=bool(init), tty=bool(config.get("Tty")),
            stdin_open=bool(config.get("OpenStdin")),
            stop_signal=str(config.get("StopSignal") or ""),
            stop_timeout=float(stop_timeout) if isinstance(stop_timeout, int) else None,
            auto_remove=bool(hc.get("AutoRemove")),
            seccomp=seccomp, no_new_privileges=no_new_privileges,
            devices=_devices(hc.get("Devices") or []),
            cap_add=_strings(hc.get("CapAdd"), "CapAdd"),
            cap_drop=_strings(hc.get("CapDrop"), "CapDrop"),
            privileged=hc.get("Privileged") is True, ulimits=_ulimits(hc.get("Ulimits")),
            log_options=log_options)
        decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(spec), type=ContainerSpec)
        return check_spec(decoded)
    except (msgspec.ValidationError, OverflowError, TypeError, ValueError) as exc:
        raise bad_parameter(f"invalid container config: {exc}".replace("`$.", "`")) from None
    except InvalidArgument as exc:
        raise bad_parameter(str(exc)) from None
    except ApiError:
        raise


def _ulimits(value: Any) -> list[Ulimit]:
    """``HostConfig.Ulimits``: [{Name, Soft, Hard}], Docker's --ulimit."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad_parameter("HostConfig.Ulimits: expected a list")
    found = []
    for item in value:
        item = _object(item, "HostConfig.Ulimits[]")
        _leftover("HostConfig.Ulimits[]", item, {"Name", "Soft", "Hard"})
        try:
            found.append(msgspec.convert({"name": item.get("Name"), "soft": item.get("Soft"),
                                          "hard": item.get("Hard")}, Ulimit))
        except msgspec.ValidationError as exc:
            raise bad_parameter(f"HostConfig.Ulimits: {exc}".replace("`$.", "`")) from None
    return found


def _platform(text: str) -> Platform | None:
    if not text:
        return None
    os_, _, rest = text.partition("/")
    arch, _, variant = rest.partition("/")
    return Platform(os=os_, arch=arch, variant=variant)
