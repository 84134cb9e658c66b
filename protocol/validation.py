"""The checks a container spec must pass before anything is made for it: what the wire schema
cannot say (an env entry is ``KEY=VALUE``, a mount target is absolute, a cpu limit is not too
small to mean anything) and what the kernel would only refuse at start (a NUL byte in an argv
entry, a uid it cannot hold, a hostname ``sethostname`` rejects).

One pure function, ``check_spec``, called by the CLI before it sends a spec, by the scheduler at
submit and by the worker's engine at create, so a bad spec is refused with the same
``InvalidSpec`` everywhere, naming the field (``env[2]``, ``mounts[0].target``), and nothing is
created for it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import msgspec

from protocol.errors import InvalidSpec, Unsupported
from protocol.specs import (
    CONTAINER_NETWORK_PREFIX,
    DEFAULT_NETWORK_MODE,
    ContainerSpec,
    HealthCheck,
    Mount,
    Resources,
    network_container,
)

MIN_MILLICPUS = 10  # 0.01 cpus: below, the CFS quota rounds to nothing (0 = no limit)
MIN_MEMORY = 6 * 1024 * 1024  # docker's minimum memory limit (0 = no limit)
MAX_ID = 2**32 - 2  # uid/gid: (uid_t)-1 means "no change" to the kernel, so it is not an id
MIN_HEALTH_DURATION = 0.001  # Docker refuses a healthcheck duration under 1 ms (0: default)
HOST_NAME_MAX = 64  # what sethostname(2) accepts
_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")


def check_spec(spec: ContainerSpec) -> ContainerSpec:
    """``spec`` if it can be created as it is; else ``InvalidSpec`` for its first bad field."""
    _check_argv("command", spec.command)
    if spec.entrypoint is not None:
        _check_argv("entrypoint", spec.entrypoint)
    for number, entry in enumerate(spec.env):
        check_env_entry(f"env[{number}]", entry)
    if spec.workdir:
        _check_path("workdir", spec.workdir)
    if spec.user:
        check_user("user", spec.user)
    if spec.hostname:
        check_hostname("hostname", spec.hostname)
    for number, mount in enumerate(spec.mounts):
        _check_mount(f"mounts[{number}]", mount)
    _check_resources(spec.resources)
    _check_seccomp(spec.seccomp)
    _check_capabilities(spec)
    for number, device in enumerate(spec.devices):
        for name in ("path_on_host", "path_in_container"):
            path = getattr(device, name)
            if not path.startswith("/") or "\0" in path:
                raise InvalidSpec.of(f"devices[{number}].{name}",
                                     f"{path!r} is not an absolute path")
    if spec.platform is not None and spec.platforms:
        raise InvalidSpec.of("platforms", "give platform or platforms, not both")
    _check_network(spec)
    if spec.healthcheck is not None:
        check_healthcheck("healthcheck", spec.healthcheck)
    _check_ulimits(spec)
    return spec


def _check_ulimits(spec: ContainerSpec) -> None:
    seen: set[str] = set()
    for number, limit in enumerate(spec.ulimits):
        if limit.name in seen:
            raise InvalidSpec.of(f"ulimits[{number}]", f"{limit.name} is given twice")
        seen.add(limit.name)
        if limit.hard != -1 and (limit.soft == -1 or limit.soft > limit.hard):
            raise InvalidSpec.of(f"ulimits[{number}]", f"{limit.name}: the soft limit "
                                 f"({limit.soft}) is above the hard one ({limit.hard})")


def check_healthcheck(field: str, check: HealthCheck) -> None:
    """InvalidSpec for a test of no known form or a duration Docker refuses."""
    if check.test:
        kind = check.test[0]
        if kind not in ("NONE", "CMD", "CMD-SHELL"):
            raise InvalidSpec.of(f"{field}.test[0]", f"{kind!r} is not NONE, CMD or CMD-SHELL")
        if kind == "NONE" and len(check.test) != 1:
            raise InvalidSpec.of(f"{field}.test", "NONE takes no command")
        if kind == "CMD" and len(check.test) < 2:
            raise InvalidSpec.of(f"{field}.test", "CMD needs a command")
        if kind == "CMD-SHELL" and len(check.test) != 2:
            raise InvalidSpec.of(f"{field}.test", "CMD-SHELL takes one shell command line")
    for name in ("interval", "timeout", "start_period", "start_interval"):
        value = getattr(check, name)
        if 0 < value < MIN_HEALTH_DURATION:
            raise InvalidSpec.of(f"{field}.{name}", f"{value:g} s is under the minimum of 1 ms "
                                 "(0 means the default)")


def _check_seccomp(profile: str) -> None:
    """"" (the default profile), "unconfined", or a JSON object (a profile in Docker's format;
    the runtime checks its fields when it compiles it)."""
    if profile in ("", "unconfined"):
        return
    try:
        decoded = msgspec.json.decode(profile)
    except msgspec.DecodeError as exc:
        raise InvalidSpec.of("seccomp", f"not a JSON profile: {exc}") from None
    if not isinstance(decoded, dict) or "defaultAction" not in decoded:
        raise InvalidSpec.of("seccomp", "a profile is a JSON object with a defaultAction")


_CAP_NAME = re.compile(r"(?:CAP_)?[A-Z][A-Z_]*|ALL", re.IGNORECASE)


def _check_capabilities(spec: ContainerSpec) -> None:
    """Capability names are words (the worker knows which its kernel has); one both added and
    dropped is refused, and so is a seccomp profile given with --privileged, which has none."""
    for field, names in (("cap_add", spec.cap_add), ("cap_drop", spec.cap_drop)):
        for number, name in enumerate(names):
            if not _CAP_NAME.fullmatch(name):
                raise InvalidSpec.of(f"{field}[{number}]", f"{_shown(name)} is not a "
                                     "capability name")
    both = {_cap_key(n) for n in spec.cap_add} & {_cap_key(n) for n in spec.cap_drop} - {"ALL"}
    if both:
        raise InvalidSpec.of("cap_add", f"{', '.join(sorted(both))} both added and dropped")
    if spec.privileged and spec.seccomp not in ("", "unconfined"):
        raise InvalidSpec.of("seccomp", "a privileged container has no seccomp filter: give "
                             "a profile or --privileged, not both")


def _cap_key(name: str) -> str:
    upper = name.upper()
    return upper if upper == "ALL" or upper.startswith("CAP_") else "CAP_" + upper


NETWORKS = ("none", "host")  # the two that are not a bridge: no address, no published port
# Reserved: no network made with ``network create`` may take these names.
PREDEFINED_NETWORKS = (*NETWORKS, "bridge", DEFAULT_NETWORK_MODE)
_NETWORK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _check_network(spec: ContainerSpec) -> None:
    """``none`` (its own namespace, loopback only), ``host``, ``default`` (the node's default:
    ``bridge``, or ``host`` on a process-driver worker), or a network's name (``bridge``, or
    one made with ``network create``); what only a bridge network can
    give (an address, published ports) is refused elsewhere, naming why."""
    network = spec.network
    if network.startswith(CONTAINER_NETWORK_PREFIX):
        _check_joined_network(spec, network_container(network))
        return
    if not _NETWORK_NAME.fullmatch(network):
        raise InvalidSpec.of("network", f"{_shown(network)} is not a network name")
    if network in NETWORKS:
        why = "has no network of its own" if network == "host" else "has loopback only"
        if spec.ports:
            raise InvalidSpec.of("ports", f"a container on --network {network} {why}: no "
                                 "port can be published (use a bridge network)")
        if spec.publish_all:
            raise InvalidSpec.of("publish_all", f"a container on --network {network} {why}: "
                                 "no port can be published (use a bridge network)")
        for field, given in (("ip", spec.ip), ("dns", spec.dns),
                             ("network_aliases", spec.network_aliases)):
            if given:
                flag = "network-alias" if field == "network_aliases" else field
                raise InvalidSpec.of(field, f"a container on --network {network} {why}: "
                                     f"--{flag} needs a bridge network")
    for number, entry in enumerate(spec.network_aliases):
        check_network_alias(entry, f"network_aliases[{number}]")
    for number, entry in enumerate(spec.expose):
        parse_exposed(entry, f"expose[{number}]")
    if spec.network_spec is not None and spec.network_spec.name != network:
        raise InvalidSpec.of("network_spec", f"names {_shown(spec.network_spec.name)}, not "
                             f"the container's network {_shown(network)}")
    if spec.ip:
        _check_address("ip", spec.ip)
    _check_connected(spec)
    for number, entry in enumerate(spec.dns):
        _check_address(f"dns[{number}]", entry)
    for number, entry in enumerate(spec.add_hosts):
        host, sep, address = entry.partition(":")
        if not sep or not host:
            raise InvalidSpec.of(f"add_hosts[{number}]", f"{_shown(entry)}: expected "
                                 "HOST:IP")
        check_hostname(f"add_hosts[{number}]", host)
        _check_address(f"add_hosts[{number}]", address)
    for number, domain in enumerate(spec.dns_search):
        if not domain or any(c.isspace() for c in domain):
            raise InvalidSpec.of(f"dns_search[{number}]", f"{_shown(domain)}: not a domain")
    for number, port in enumerate(spec.ports):
        if port.host_ip:
            _check_address(f"ports[{number}].host_ip", port.host_ip)


def _check_joined_network(spec: ContainerSpec, target: str) -> None:
    """``container:NAME`` (Docker's): NAME's namespace, addresses, ports, /etc/hosts,
    /etc/resolv.conf and hostname are the container's, so what would set any of them for it
    alone is refused, as Docker refuses it (each in shoal's words)."""
    if not _NETWORK_NAME.fullmatch(target):
        raise InvalidSpec.of("network", f"{_shown(spec.network)}: expected container:NAME "
                             "(a container's name or id)")
    mode = f"--network container:{target}"
    shared = f"a container on {mode} shares its network"
    for field, given, flag, why in (
            ("hostname", spec.hostname, "hostname", f"it has the hostname of {target}"),
            ("ports", spec.ports, "publish", f"publish the port on {target}"),
            ("publish_all", spec.publish_all, "publish-all", f"publish on {target}"),
            ("expose", spec.expose, "expose", f"expose the port on {target}"),
            ("dns", spec.dns, "dns", f"it has the /etc/resolv.conf of {target}"),
            ("dns_search", spec.dns_search, "dns-search",
             f"it has the /etc/resolv.conf of {target}"),
            ("add_hosts", spec.add_hosts, "add-host", f"it has the /etc/hosts of {target}"),
            ("ip", spec.ip, "ip", "its address is the one of " + target),
            ("network_aliases", spec.network_aliases, "network-alias",
             f"give the alias to {target}"),
            ("links", spec.links, "link", f"link {target} instead"),
            ("connected", spec.connected, "network", "it cannot be connected to other "
             f"networks; connect {target}")):
        if given:
            raise InvalidSpec.of(field, f"{shared}: --{flag} conflicts with it ({why})")
    if spec.network_spec is not None:
        raise InvalidSpec.of("network_spec", f"{shared}: it has no network spec of its own")


def _check_connected(spec: ContainerSpec) -> None:
    """The networks beyond the container's own: each a network's name, once, and none when
    the container has no network namespace of its own to put an interface in."""
    # The default network is a native worker's bridge (a process-driver worker has no other
    # network than the host's, and placement keeps such a container off those).
    seen = {spec.network, "bridge" if spec.network == DEFAULT_NETWORK_MODE else spec.network}
    for number, attachment in enumerate(spec.connected):
        field = f"connected[{number}]"
        if spec.network in NETWORKS:
            raise InvalidSpec.of(field, f"a container on --network {spec.network} cannot be "
                                 "on another network too (use a bridge network)")
        if not _NETWORK_NAME.fullmatch(attachment.name) or attachment.name in (
                *NETWORKS, DEFAULT_NETWORK_MODE):
            raise InvalidSpec.of(field, f"{_shown(attachment.name)} is not a network name")
        if attachment.name in seen:
            raise InvalidSpec.of(field, f"the container is on network "
                                 f"{_shown(attachment.name)} already")
        seen.add(attachment.name)
        if attachment.spec is not None and attachment.spec.name != attachment.name:
            raise InvalidSpec.of(f"{field}.spec", f"names {_shown(attachment.spec.name)}, "
                                 f"not {_shown(attachment.name)}")
        if attachment.ip:
            _check_address(f"{field}.ip", attachment.ip)
        for alias_number, alias in enumerate(attachment.aliases):
            check_network_alias(alias, f"{field}.aliases[{alias_number}]")


def _check_address(field: str, text: str) -> None:
    import ipaddress  # here: only specs that name an address pay for it

    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise InvalidSpec.of(field, f"{_shown(text)} is not an IP address") from None


def check_specs(specs: Sequence[ContainerSpec]) -> None:
    """Each of ``specs``; the field of a refusal is prefixed with the spec's place
    (``containers[1].env[0]``) when there are several."""
    for number, spec in enumerate(specs):
        try:
            check_spec(spec)
        except InvalidSpec as exc:
            if len(specs) == 1:
                raise
            raise InvalidSpec.of(f"containers[{number}].{exc.field}", exc.reason) from None


def millicpus(cpus: float) -> int:
    """``--cpus`` in the unit of ``Resources.millicpus``; a value above 0 that would round to
    less than ``MIN_MILLICPUS`` is refused here rather than silently becoming no limit."""
    if cpus < 0 or 0 < cpus < MIN_MILLICPUS / 1000:
        raise InvalidSpec.of("resources.millicpus", _cpus_reason(f"{cpus:g}"))
    return round(cpus * 1000)


def check_env_entry(field: str, entry: str) -> None:
    key, equals, _ = entry.partition("=")
    _check_text(field, entry)
    if not equals:
        raise InvalidSpec.of(field, f"{_shown(entry)} is not KEY=VALUE")
    if not key:
        raise InvalidSpec.of(field, f"{_shown(entry)} has an empty variable name")


def check_user(field: str, user: str) -> None:
    """``name``, ``uid``, ``name:group`` or ``uid:gid``; a number must be an id the kernel
    can hold (0 to 2^32-2)."""
    _check_text(field, user)
    parts = user.split(":")
    if len(parts) > 2 or not all(parts):
        raise InvalidSpec.of(field, f"{_shown(user)} is not USER[:GROUP]")
    for part in parts:
        if part.isdigit() and int(part) > MAX_ID:
            raise InvalidSpec.of(field, f"id {part} is out of range (0 to {MAX_ID})")


def check_hostname(field: str, hostname: str) -> None:
    """A host name as RFC 1123 has it, within the kernel's 64 bytes."""
    if len(hostname.encode("utf-8", "surrogateescape")) > HOST_NAME_MAX:
        raise InvalidSpec.of(field, f"{_shown(hostname)} is longer than {HOST_NAME_MAX} bytes")
    if not all(_HOST_LABEL.fullmatch(label) for label in hostname.split(".")):
        raise InvalidSpec.of(field, f"{_shown(hostname)} is not a host name: dot-separated labels "
                                 "of letters, digits and '-', not starting or ending with '-'")


def _check_mount(field: str, mount: Mount) -> None:
    _check_path(f"{field}.target", mount.target)
    if mount.target.rstrip("/") == "":
        raise InvalidSpec.of(f"{field}.target", "a mount cannot replace the container's root '/'")
    if mount.type == "bind":
        _check_path(f"{field}.source", mount.source)
    else:
        _check_text(f"{field}.source", mount.source)


def _check_resources(resources: Resources) -> None:
    if 0 < resources.millicpus < MIN_MILLICPUS:
        raise InvalidSpec.of("resources.millicpus",
                          _cpus_reason(f"{resources.millicpus / 1000:g}"))
    if 0 < resources.memory < MIN_MEMORY:
        raise InvalidSpec.of("resources.memory", f"a memory limit of {resources.memory} bytes is "
                          f"below the minimum of 6 MiB ({MIN_MEMORY}; 0 means no limit)")
    for field, reserved, limit, unit in (
            ("resources.reserved_millicpus", resources.reserved_millicpus,
             resources.millicpus, "millicpus"),
            ("resources.reserved_memory", resources.reserved_memory, resources.memory,
             "bytes")):
        if limit and reserved > limit:
            raise InvalidSpec.of(field, f"a reservation ({reserved} {unit}) above the limit "
                                        f"({limit} {unit})")
    swap = resources.memory_swap
    if swap not in (0, -1):
        if not resources.memory:
            raise InvalidSpec.of("resources.memory_swap",
                              "a memory+swap limit needs a memory limit too")
        if swap < resources.memory:
            raise InvalidSpec.of("resources.memory_swap",
                              f"memory+swap ({swap} bytes) is less than memory "
                              f"({resources.memory} bytes); -1 means unlimited swap")


def _cpus_reason(cpus: str) -> str:
    return (f"a cpu limit of {cpus} cpus is below the minimum of "
            f"{MIN_MILLICPUS / 1000:g} (0 means no limit)")


def _check_argv(field: str, argv: Sequence[str]) -> None:
    for number, entry in enumerate(argv):
        _check_text(f"{field}[{number}]", entry)


def _check_path(field: str, path: str) -> None:
    _check_text(field, path)
    if not path.startswith("/"):
        raise InvalidSpec.of(field, f"{_shown(path)} is not an absolute path")


def _check_text(field: str, text: str) -> None:
    """No NUL: the kernel takes these as C strings, so one would cut them short."""
    if "\x00" in text:
        raise InvalidSpec.of(field, f"{_shown(text)} contains a NUL byte")


def _shown(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")



def parse_exposed(text: str, field: str = "expose") -> tuple[int, str]:
    """An exposed port as an image's ExposedPorts or ``--expose`` give it, ``PORT[/PROTO]``:
    (port, "tcp"|"udp")."""
    port, _, protocol = text.partition("/")
    protocol = protocol.lower() or "tcp"
    if not port.isdigit() or not 1 <= int(port) <= 65535 or protocol not in ("tcp", "udp"):
        raise InvalidSpec.of(field, f"{_shown(text)} is not PORT[/tcp|udp]")
    return int(port), protocol


def check_network_alias(alias: str, field: str = "aliases") -> None:
    """A name a resolver can answer: letters, digits, ``_.-``, from a letter or digit."""
    if len(alias) > 253 or not _NETWORK_NAME.fullmatch(alias):
        raise InvalidSpec.of(field, f"{_shown(alias)} is not a name (letters, digits, '_.-')")


ENCRYPTED_OPTION = "encrypted"


def refuse_network_options(options: Sequence[str]) -> None:
    """Docker's network driver options (``--opt KEY[=VALUE]``): shoal takes none, and says
    why for each rather than ignoring it."""
    for option in options:
        key = option.partition("=")[0]
        if key == ENCRYPTED_OPTION:
            raise Unsupported("--opt encrypted: overlay encryption (IPsec between the hosts "
                              "for VXLAN traffic) is not built in shoal yet; an overlay's "
                              "traffic between hosts is plain VXLAN, so use it only on a "
                              "network between the hosts that you trust",
                              details={"option": key})
        raise Unsupported(f"--opt {_shown(key)}: shoal's network drivers take no options "
                          "(bridge and overlay are configured by --subnet, --gateway, "
                          "--internal and --attachable)", details={"option": key})


def own_network(spec: ContainerSpec) -> str:
    """The network a container was submitted on, as the worker that makes it names it: the
    default one is a node's ``bridge``."""
    return "bridge" if spec.network == DEFAULT_NETWORK_MODE else spec.network
