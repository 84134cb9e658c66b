"""What a Compose file may ask that shoal cannot honour (yet): ONE table, each entry a path
pattern and the reason given to the user. A feature that lands deletes its line here (and, for a
key, adds it to HONOURED with its translation in ``cli.compose.translate``).

Patterns are dotted paths into the resolved project: ``*`` matches any one key (a service, a
network), and ``=VALUE`` at the end matches only that value. A key under ``services.*`` that is
neither honoured (HONOURED) nor listed is refused with ``UNHONOURED``: nothing in a file is
ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from cli.compose.errors import Path, Problem
from cli.compose.model import Project

NO_ENDPOINT_MODE = "not supported: shoal's resolver answers a service's name with every " \
                   "replica's address (dnsrr); it has no virtual IPs"
UNHONOURED = "shoal cannot honour this"
NO_STORE = "not supported: shoal has no store of secrets and configs (give a file, " \
           "content or environment)"
# compose ignores uid, gid and mode for a host file (with a warning); shoal refuses them
# (``translate``), and honours them for a value it writes (``project_files``).
AS_ON_HOST = "not supported: the file is bind-mounted as it is on the host (owner and mode)"

REFUSALS: dict[str, str] = {
    # pull policies with a clock
    "services.*.pull_policy=daily": "not supported yet: shoal keeps no pull times (always, "
                                    "missing, never or build)",
    "services.*.pull_policy=weekly": "not supported yet: shoal keeps no pull times (always, "
                                     "missing, never or build)",
    "services.*.pull_policy=every_*": "not supported yet: shoal keeps no pull times (always, "
                                      "missing, never or build)",
    "services.*.build.context=*://*": "not supported yet: a build context is a directory "
                                      "(not a URL)",
    # what the runtime has no field for yet
    "services.*.deploy.resources.reservations.devices": "not supported: shoal's nodes "
                                                        "report no devices to reserve",
    "services.*.deploy.resources.reservations.generic_resources": "not supported: shoal's "
                                                                  "nodes report no generic "
                                                                  "resources",
    "services.*.deploy.mode=replicated-job": "not supported: shoal has no jobs that run to "
                                             "a number of completions (use restart: no)",
    "services.*.deploy.mode=global-job": "not supported: shoal has no jobs that run to "
                                         "completion once per node (use restart: no with "
                                         "mode: global)",
    "services.*.deploy.labels": "not supported yet: shoal has no service objects to label",
    "services.*.deploy.update_config": "not supported yet: up recreates a changed service",
    "services.*.deploy.rollback_config": "not supported yet: up recreates a changed service",
    "services.*.deploy.endpoint_mode=vip": NO_ENDPOINT_MODE,
    "services.*.external_links": "not supported: a container outside the project is "
                                 "reached by its own name on a shared network",
    "services.*.volumes_from.*=container:*": "not supported yet: volumes from a container "
                                             "outside the project (name one of its services)",
    "services.*.volumes.*.bind": "not supported yet: bind propagation, SELinux labels and "
                                 "create_host_path",
    # configs and secrets are files bind-mounted read-only, as compose does without a swarm:
    # there is no store to hold an external one
    "secrets.*.external": NO_STORE,
    "configs.*.external": NO_STORE,
}

# What shoal honours, by pattern: the keys allowed in the mapping(s) the pattern names. Any
# other key there is refused with UNHONOURED (unless REFUSALS gives a better reason).
HONOURED: dict[str, frozenset[str]] = {
    "services.*": frozenset({
        "image", "command", "entrypoint", "environment", "env_file", "working_dir", "user",
        "hostname", "labels", "restart", "deploy", "scale", "platform", "container_name",
        "ports", "expose", "networks", "network_mode", "dns", "dns_search", "extra_hosts",
        "volumes", "tmpfs", "init", "stop_signal", "stop_grace_period", "mem_limit",
        "memswap_limit", "cpus", "cpu_shares", "pids_limit", "tty", "stdin_open",
        "depends_on", "profiles", "extends", "security_opt", "logging", "pull_policy",
        "healthcheck", "links", "build", "cap_add", "cap_drop", "privileged",
        "volumes_from", "ulimits", "secrets", "configs", "devices"}),
    "services.*.build": frozenset({"context", "dockerfile", "args", "target"}),
    "services.*.healthcheck": frozenset({"test", "interval", "timeout", "retries",
                                         "start_period", "start_interval", "disable"}),
    "services.*.deploy": frozenset({"replicas", "resources", "restart_policy", "placement",
                                    "mode", "endpoint_mode"}),
    "services.*.deploy.resources": frozenset({"limits", "reservations"}),
    "services.*.deploy.resources.reservations": frozenset({"cpus", "memory"}),
    "services.*.deploy.resources.limits": frozenset({"cpus", "memory", "pids"}),
    "services.*.deploy.placement": frozenset({"constraints", "preferences",
                                              "max_replicas_per_node"}),
    "services.*.deploy.restart_policy": frozenset({"condition", "max_attempts", "delay",
                                                   "window"}),
    "services.*.logging": frozenset({"driver", "options"}),
    "services.*.networks.*": frozenset({"ipv4_address", "aliases"}),
    "services.*.ports.*": frozenset({"target", "published", "host_ip", "protocol", "mode",
                                     "name", "app_protocol"}),
    "services.*.volumes.*": frozenset({"type", "source", "target", "read_only", "volume",
                                       "tmpfs"}),
    "services.*.volumes.*.volume": frozenset({"nocopy"}),
    "services.*.volumes.*.tmpfs": frozenset({"size", "mode"}),
    "services.*.depends_on.*": frozenset({"condition", "required", "restart"}),
    "services.*.ulimits.*": frozenset({"soft", "hard"}),
    "services.*.secrets.*": frozenset({"source", "target", "uid", "gid", "mode"}),
    "services.*.configs.*": frozenset({"source", "target", "uid", "gid", "mode"}),
    "secrets.*": frozenset({"name", "file", "environment", "labels"}),
    "configs.*": frozenset({"name", "file", "content", "environment", "labels"}),
    "networks.*": frozenset({"name", "driver", "external", "internal", "labels", "ipam",
                             "attachable"}),
    "volumes.*": frozenset({"name", "driver", "driver_opts", "external", "labels"}),
    "networks.*.ipam": frozenset({"config"}),
    "networks.*.ipam.config.*": frozenset({"subnet", "gateway"}),
}


def refusals(project: Project) -> list[Problem]:
    """Everything in ``project`` that shoal would have to ignore, each with its reason."""
    found: dict[Path, str] = {}
    document = project.as_document()
    for pattern, reason in REFUSALS.items():
        for path in _matches(document, pattern):
            found.setdefault(path, reason)
    for pattern, honoured in HONOURED.items():
        for path in _matches(document, pattern):
            mapping = _at(document, path)
            if not isinstance(mapping, dict):
                continue
            for key in mapping:
                if key not in honoured and not str(key).startswith("x-"):
                    found.setdefault((*path, key), UNHONOURED)
    for name, network in project.networks.items():
        driver = network.get("driver", "bridge")
        if driver not in ("bridge", "overlay"):
            found.setdefault(("networks", name, "driver"),
                             f"{driver}: not supported: shoal's networks are bridges")
        if network.get("attachable") is False and driver == "overlay":
            found.setdefault(("networks", name, "attachable"),
                             "not supported: compose's containers are standalone, so a "
                             "project's overlay is attachable")
        configs = (network.get("ipam") or {}).get("config") or []
        if len(configs) > 1:
            found.setdefault(("networks", name, "ipam", "config", 1),
                             "not supported yet: one subnet per network")
    for name, volume in project.volumes.items():
        driver = (volume or {}).get("driver", "local")
        if driver != "local":
            found.setdefault(("volumes", name, "driver"),
                             f"{driver}: not supported: shoal's volumes are local")
    ordered = sorted(found.items(), key=lambda item: str(item[0]))
    # A refused key's children are not refused again.
    kept = [(path, reason) for path, reason in ordered
            if not any(path[:n] in found for n in range(1, len(path)))]
    return [project.problem(path, f"{reason}") for path, reason in kept]


def _at(document: Any, path: Path) -> Any:
    for part in path:
        document = document[part]
    return document


def _matches(document: Any, pattern: str) -> Iterator[Path]:
    keys, _, value = pattern.partition("=")
    parts = keys.split(".")
    yield from _walk(document, parts, (), value)


def _walk(node: Any, parts: list[str], path: Path, value: str) -> Iterator[Path]:
    if not parts:
        if not value or _value_matches(node, value):
            yield path
        return
    head, rest = parts[0], parts[1:]
    if isinstance(node, dict):
        items = list(node.items()) if head == "*" else \
            [(head, node[head])] if head in node else []
        for key, child in items:
            yield from _walk(child, rest, (*path, key), value)
    elif isinstance(node, list) and head == "*":
        for index, child in enumerate(node):
            yield from _walk(child, rest, (*path, index), value)


def _value_matches(node: Any, wanted: str) -> bool:
    """``node`` is the text ``wanted``, where a ``*`` stands for any characters."""
    if not isinstance(node, str):
        return False
    return re.fullmatch(".*".join(re.escape(part) for part in wanted.split("*")), node) \
        is not None
