"""What ``create`` and ``run`` are told, turned into a ``ContainerSpec``: docker's flags, each
checked here, and the whole spec checked against the wire schema and ``check_spec`` before
anything is sent."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import click
import msgspec

from cli.arguments import key_values, parse_memory
from cli.mounts import parse_mount, parse_tmpfs, parse_volume
from protocol.durations import parse_duration
from protocol.errors import InvalidArgument
from protocol.specs import (
    DEFAULT_NETWORK_MODE,
    ContainerSpec,
    DeviceMapping,
    HealthCheck,
    LogOptions,
    Platform,
    PortMapping,
    Resources,
    RestartPolicy,
    Ulimit,
)
from protocol.validation import check_spec, millicpus


def parse_port(text: str) -> PortMapping:
    """``[IP:][HOST:]CONTAINER[/PROTO]`` (an empty or missing HOST: any free port)."""
    spec, _, protocol = text.partition("/")
    parts = spec.split(":")
    if len(parts) > 3:
        raise click.BadParameter(f"bad port mapping {text!r}: expected "
                                 "[IP:][HOSTPORT:]CONTAINERPORT[/tcp|udp]")
    try:
        numbers = [int(p) if p else 0 for p in parts[-2:]]
    except ValueError:
        raise click.BadParameter(f"bad port mapping {text!r}") from None
    host_ip = parts[0] if len(parts) == 3 else ""
    try:
        return PortMapping(container_port=numbers[-1], host_port=numbers[0] if len(numbers) == 2
                           else 0, protocol=protocol or "tcp", host_ip=host_ip)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise click.BadParameter(f"bad port mapping {text!r}: {exc}") from None


def parse_healthcheck(cmd: str | None, interval: str | None, timeout: str | None,
                      retries: int | None, start_period: str | None,
                      start_interval: str | None, off: bool) -> HealthCheck | None:
    """docker's ``--health-*`` flags: a command run by the shell (CMD-SHELL), durations in
    Go's form; ``--no-healthcheck`` (test NONE) with none of them. None: the image's."""
    durations = {"interval": interval, "timeout": timeout, "start_period": start_period,
                 "start_interval": start_interval}
    given = cmd is not None or retries is not None or any(
        v is not None for v in durations.values())
    if off:
        if given:
            raise click.UsageError("--no-healthcheck conflicts with --health-* options")
        return HealthCheck(test=["NONE"])
    if not given:
        return None
    seconds: dict[str, float] = {}
    for name, text in durations.items():
        if text is None:
            continue
        flag = "--health-" + name.replace("_", "-")
        try:
            seconds[name] = parse_duration(text)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=flag) from None
        if seconds[name] < 0:
            raise click.BadParameter(f"{text!r} cannot be negative", param_hint=flag)
    return HealthCheck(test=["CMD-SHELL", cmd] if cmd else [], retries=retries or 0,
                       **seconds)


@dataclass(frozen=True)
class SecurityOpts:
    """What ``--security-opt`` asks for."""

    seccomp: str = ""  # as ContainerSpec.seccomp
    no_new_privileges: bool = False


_TRUTH = {"true": True, "1": True, "false": False, "0": False}


def parse_security_opts(opts: tuple[str, ...]) -> SecurityOpts:
    """``--security-opt seccomp=unconfined|PROFILE.json`` (the profile file is read here, as
    Docker's client does) and ``no-new-privileges[=true|false]`` (``:`` too, as Docker takes
    it); any other option is refused."""
    seccomp = ""
    no_new_privileges = False
    for opt in opts:
        key, sep, value = opt.partition("=" if "=" in opt else ":")
        if key == "no-new-privileges" and (not sep or value in _TRUTH):
            no_new_privileges = _TRUTH[value] if sep else True
            continue
        if key != "seccomp" or not sep or not value:
            raise click.BadParameter(
                f"{opt!r} is not supported: only seccomp=unconfined|PROFILE.json and "
                "no-new-privileges are (apparmor= and label= need an LSM shoal does not "
                "drive)", param_hint="--security-opt")
        if value == "unconfined":
            seccomp = value
            continue
        try:
            with open(value, encoding="utf-8") as f:
                seccomp = f.read()
        except OSError as exc:
            raise click.BadParameter(f"cannot read seccomp profile {value}: {exc.strerror}",
                                     param_hint="--security-opt") from None
    return SecurityOpts(seccomp=seccomp, no_new_privileges=no_new_privileges)


def parse_device(text: str) -> DeviceMapping:
    """``--device HOST[:CONTAINER][:PERMISSIONS]`` as Docker reads it."""
    try:
        return DeviceMapping.parse(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from None


def parse_ulimit(text: str) -> Ulimit:
    """Docker's ``--ulimit NAME=SOFT[:HARD]`` (HARD: SOFT when not given; -1: unlimited)."""
    name, equals, values = text.partition("=")
    soft, _, hard = values.partition(":")
    try:
        numbers = (int(soft), int(hard or soft))
    except ValueError:
        numbers = None
    if not equals or numbers is None:
        raise click.BadParameter(f"{text!r}: expected NAME=SOFT[:HARD], e.g. nofile=1024:2048",
                                 param_hint="--ulimit")
    try:
        return msgspec.convert({"name": name, "soft": numbers[0], "hard": numbers[1]}, Ulimit)
    except msgspec.ValidationError as exc:
        raise click.BadParameter(f"{text!r}: {exc}".replace("`$.", "`"),
                                 param_hint="--ulimit") from None


def build_spec(image: str, command: tuple[str, ...], *, name: str, env: tuple[str, ...],
               workdir: str, user: str, entrypoint: str | None, labels: tuple[str, ...],
               hostname: str, init: bool, network: str, memory: str | None,
               cpus: float | None, cpu_shares: int | None, pids_limit: int | None,
               restart: str, rm: bool, publish: tuple[str, ...], volume: tuple[str, ...],
               security_opt: tuple[str, ...], exclusive: bool = False, ip: str = "",
               add_host: tuple[str, ...] = (), dns: tuple[str, ...] = (),
               dns_search: tuple[str, ...] = (), network_alias: tuple[str, ...] = (),
               publish_all: bool = False, expose: tuple[str, ...] = (),
               tmpfs: tuple[str, ...] = (),
               mount: tuple[str, ...] = (), health_cmd: str | None = None,
               health_interval: str | None = None, health_timeout: str | None = None,
               health_retries: int | None = None, health_start_period: str | None = None,
               health_start_interval: str | None = None,
               no_healthcheck: bool = False, cap_add: tuple[str, ...] = (),
               cap_drop: tuple[str, ...] = (), privileged: bool = False,
               device: tuple[str, ...] = (),
               ulimit: tuple[str, ...] = (), reserve_memory: str | None = None,
               reserve_cpu: float | None = None, log_opt: tuple[str, ...] = ()
               ) -> ContainerSpec:
    try:
        policy = RestartPolicy.parse(restart)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--restart") from None
    label_map = key_values(labels, "label", "-l")
    healthcheck = parse_healthcheck(health_cmd, health_interval, health_timeout,
                                    health_retries, health_start_period, health_start_interval,
                                    no_healthcheck)
    mounts = [*(parse_volume(v) for v in volume), *(parse_tmpfs(t) for t in tmpfs),
              *(parse_mount(m) for m in mount)]
    targets = [m.target.rstrip("/") for m in mounts]
    for target in targets:
        if targets.count(target) > 1:
            raise click.BadParameter(f"duplicate mount point: {target}")
    env_list = [e if "=" in e else f"{e}={os.environ.get(e, '')}" for e in env]
    security = parse_security_opts(security_opt)
    try:
        log_options = LogOptions.parse(key_values(log_opt, "log option", "--log-opt")) \
            if log_opt else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--log-opt") from None
    try:
        return ContainerSpec(
            image=image, name=name, command=list(command),
            entrypoint=[entrypoint] if entrypoint is not None else None, env=env_list,
            workdir=workdir, user=user, hostname=hostname,
            labels=label_map,
            restart=policy, auto_remove=rm, init=init, network=network, exclusive=exclusive,
            ip=ip, add_hosts=list(add_host), dns=list(dns), dns_search=list(dns_search),
            network_aliases=list(network_alias), publish_all=publish_all, expose=list(expose),
            ports=[parse_port(p) for p in publish], mounts=mounts, healthcheck=healthcheck,
            seccomp=security.seccomp, no_new_privileges=security.no_new_privileges,
            devices=[parse_device(d) for d in device],
            cap_add=list(cap_add), cap_drop=list(cap_drop), privileged=privileged,
            ulimits=[parse_ulimit(text) for text in ulimit], log_options=log_options,
            resources=Resources(
                memory=parse_memory(memory) if memory else 0,
                millicpus=millicpus(cpus) if cpus else 0, cpu_shares=cpu_shares or 0,
                pids=pids_limit or 0,
                reserved_memory=parse_memory(reserve_memory) if reserve_memory else 0,
                reserved_millicpus=millicpus(reserve_cpu) if reserve_cpu else 0))
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(str(exc)) from exc


def checked(spec: ContainerSpec) -> ContainerSpec:
    """``spec`` as the receiving service will decode it and then check it: every bound of the
    wire schema, then ``protocol.validation.check_spec`` (the scheduler's and the worker's own
    check), so a bad value is refused with its field's name before anything is sent."""
    try:
        decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(spec), type=ContainerSpec)
    except (msgspec.ValidationError, OverflowError) as exc:
        raise click.UsageError(f"invalid container: {exc}".replace("`$.", "`")) from None
    return check_spec(decoded)


def container_options(function: Callable[..., None]) -> Callable[..., None]:
    options = [
        click.option("--name", default="", help="Assign a name to the container."),
        click.option("-e", "--env", multiple=True, help="Set an environment variable."),
        click.option("-w", "--workdir", default="", help="Working directory inside."),
        click.option("-u", "--user", default="", help="User (name|uid[:group|gid])."),
        click.option("--entrypoint", default=None, help="Override the image's entrypoint."),
        click.option("-l", "--label", "labels", multiple=True, help="KEY=VALUE label."),
        click.option("--hostname", default="", help="Container host name."),
        click.option("--init", is_flag=True, help="Run an init inside (reaps, forwards)."),
        click.option("--network", default=DEFAULT_NETWORK_MODE, show_default=True,
                     metavar="default|none|host|bridge|NAME|container:NAME",
                     help="The node's default (bridge; host on a process-driver worker), "
                          "its own namespace with loopback only (none), the host's, the "
                          "node's bridge, a network made with network create, or another "
                          "container's (container:NAME, on its node)."),
        click.option("--ip", default="", help="Its address on a bridge network."),
        click.option("--network-alias", multiple=True, metavar="NAME",
                     help="One more name for it on its network (the resolver at 127.0.0.11 "
                          "answers it to containers on that network)."),
        click.option("--add-host", multiple=True, metavar="HOST:IP",
                     help="An extra line of /etc/hosts."),
        click.option("--dns", multiple=True, help="A resolver for /etc/resolv.conf."),
        click.option("--dns-search", multiple=True, help="A search domain for resolv.conf."),
        click.option("-m", "--memory", default=None, help="Memory limit (e.g. 512m)."),
        click.option("--cpus", type=click.FloatRange(0, 1024), default=None),
        click.option("--reserve-memory", default=None,
                     help="Memory placement counts on the node (e.g. 256m; default: the "
                          "--memory limit), as docker service create's."),
        click.option("--reserve-cpu", type=click.FloatRange(0, 1024), default=None,
                     help="CPUs placement counts on the node (default: the --cpus limit), "
                          "as docker service create's."),
        click.option("--cpu-shares", type=click.IntRange(0, 262144), default=None),
        click.option("--pids-limit", type=click.IntRange(0), default=None),
        click.option("--restart", default="no", show_default=True,
                     help="no | on-failure[:N] | always | unless-stopped"),
        click.option("--rm", is_flag=True, help="Remove the container when it exits."),
        click.option("--exclusive", is_flag=True,
                     help="Never run twice, even across a partition: its worker kills it once "
                          "cut off from every scheduler for the cluster's fence delay, before "
                          "a replacement is placed (default: at least once)."),
        click.option("-p", "--publish", multiple=True,
                     metavar="[IP:][HOSTPORT:]CONTAINERPORT[/tcp|udp]",
                     help="Publish a port (on a bridge network; no HOSTPORT: a free one)."),
        click.option("-P", "--publish-all", is_flag=True,
                     help="Publish every exposed port (the image's EXPOSE and --expose) on a "
                          "free host port."),
        click.option("--expose", multiple=True, metavar="PORT[/tcp|udp]",
                     help="Expose a port as if the image did (published by -P)."),
        click.option("-v", "--volume", multiple=True, metavar="SOURCE:/PATH[:ro|rw]",
                     help="Bind mount a /host/path, or mount a named volume (made on first "
                          "use, filled from the image)."),
        click.option("--tmpfs", multiple=True, metavar="/PATH[:size=,mode=,ro]",
                     help="Mount a tmpfs."),
        click.option("--mount", multiple=True,
                     metavar="type=volume|bind|tmpfs,source=,target=[,readonly]",
                     help="Attach a mount, docker's long form."),
        click.option("--health-cmd", default=None, help="Command to run to check health."),
        click.option("--health-interval", default=None, metavar="DURATION",
                     help="Time between checks (e.g. 30s, 1m30s)."),
        click.option("--health-timeout", default=None, metavar="DURATION",
                     help="Longest a check may run."),
        click.option("--health-retries", type=click.IntRange(0), default=None,
                     help="Failures in a row that make it unhealthy."),
        click.option("--health-start-period", default=None, metavar="DURATION",
                     help="Grace for a starting container: failures then do not count."),
        click.option("--health-start-interval", default=None, metavar="DURATION",
                     help="Time between checks during the start period."),
        click.option("--no-healthcheck", is_flag=True,
                     help="Disable any healthcheck the image has."),
        click.option("--security-opt", multiple=True,
                     help="seccomp=unconfined, or seccomp=PROFILE.json (Docker's format; "
                          "without it, Docker's default profile); no-new-privileges: no "
                          "privilege gained through exec (setuid bits, file capabilities)."),
        click.option("--device", multiple=True, metavar="HOST[:CONTAINER][:rwm]",
                     help="A host device (or the devices under a host directory) in the "
                          "container, allowed in its device cgroup with these permissions "
                          "(default rwm)."),
        click.option("--cap-add", multiple=True, metavar="CAP",
                     help="Add a capability to Docker's default set (ALL: every one)."),
        click.option("--cap-drop", multiple=True, metavar="CAP",
                     help="Drop a capability from Docker's default set (ALL: every one)."),
        click.option("--log-opt", multiple=True, metavar="KEY=VALUE",
                     help="The json-file log's rotation, as docker's: max-size=10m (decimal), "
                          "max-file=3, compress=true (default: the worker's)."),
        click.option("--ulimit", multiple=True, metavar="NAME=SOFT[:HARD]",
                     help="A limit of each of its processes (setrlimit), e.g. nofile=1024 or "
                          "nproc=64:128; -1 is unlimited."),
        click.option("--privileged", is_flag=True,
                     help="No isolation limits: every capability, no seccomp filter, the "
                          "host's devices, /sys writable, no masked paths."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def placement_options(function: Callable[..., None]) -> Callable[..., None]:
    """Where a container may go in a cluster (a worker asked directly refuses constraints and
    affinities, and runs only its own platform)."""
    options = [
        click.option("-c", "--constraint", "constraints", multiple=True,
                     help="Node rule, e.g. node.labels.zone==a (~ for soft)."),
        click.option("--affinity", "affinities", multiple=True,
                     help="Affinity rule, e.g. container==web, image==redis (stored on the node), "
                          "container.image!=redis (no redis container there); ~ for soft."),
        click.option("--placement-pref", "preferences", multiple=True,
                     metavar="spread=node.labels.NAME",
                     help="Spread the job's containers evenly over a node label's values "
                          "(node.labels.NAME, or engine.labels.NAME: a label the worker "
                          "declared at start); several nest in order."),
        click.option("--max-per-node", type=click.IntRange(1, 1 << 31), default=None,
                     metavar="N", help="At most N of the job's containers on one node."),
        click.option("--platform", multiple=True, metavar="OS[/ARCH[/VARIANT]]",
                     help="Run only on nodes of this platform (linux/amd64, or windows: any "
                          "architecture); repeated, on any one of them."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def parse_platform(text: str) -> Platform:
    """``os[/arch[/variant]]``: ``windows`` alone means Windows on any architecture."""
    parts = text.split("/")
    if len(parts) > 3 or not all(parts):
        raise click.BadParameter(f"bad platform {text!r}: expected OS[/ARCH[/VARIANT]]",
                                 param_hint="--platform")
    return Platform(os=parts[0], arch=parts[1] if len(parts) > 1 else "",
                    variant=parts[2] if len(parts) == 3 else "")


def platform_fields(given: object) -> dict[str, object]:
    """``--platform`` once fills ``platform``, repeated fills ``platforms`` (any one will do)."""
    assert isinstance(given, tuple)
    parsed = [parse_platform(text) for text in given]
    if len(parsed) == 1:
        return {"platform": parsed[0]}
    return {"platform": None, "platforms": parsed}


def with_placement(spec: ContainerSpec, options: dict[str, object]) -> ContainerSpec:
    """Move the placement options out of ``options`` into ``spec``."""
    constraints = options.pop("constraints")
    affinities = options.pop("affinities")
    platform = options.pop("platform")
    max_per_node = options.pop("max_per_node")
    preferences = options.pop("preferences")
    assert isinstance(constraints, tuple) and isinstance(affinities, tuple)
    assert isinstance(preferences, tuple)
    return msgspec.structs.replace(
        spec, constraints=list(constraints), affinities=list(affinities),
        preferences=list(preferences),
        **platform_fields(platform),
        max_per_node=max_per_node if isinstance(max_per_node, int) else 0)


def spec_from_options(image: str, command: tuple[str, ...],
                      options: dict[str, object]) -> ContainerSpec:
    """The spec ``create``/``run`` send, from their container and placement options (taken out
    of ``options``), checked against the wire schema."""
    placement = {key: options.pop(key)
                 for key in ("constraints", "affinities", "platform", "max_per_node",
                             "preferences")}
    return checked(with_placement(build_spec(image, command, **options), placement))  # type: ignore[arg-type]


