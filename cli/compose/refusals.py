"""What a Compose file may ask that shoal cannot honour (yet): ONE table, each entry a path
pattern and the reason given to the user. A feature that lands deletes its line here (and, for a
key, adds it to HONOURED_SERVICE_KEYS with its translation in ``cli.compose.translate``).

Patterns are dotted paths into the resolved project: ``*`` matches any one key (a service, a
network), and ``=VALUE`` at the end matches only that value. A key under ``services.*`` that is
neither honoured nor listed is refused with ``UNHONOURED``: nothing in a file is ignored.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cli.compose.errors import Path, Problem
from cli.compose.model import Project

PENDING_HEALTH = "not supported yet: the engine has no healthchecks"
PENDING_BUILD = "not supported yet: shoal cannot build images from a Dockerfile"
PENDING_DNS = "not supported yet: shoal has no embedded DNS to resolve service names"
PENDING_OVERLAY = "not supported yet: shoal has no overlay networks"
PENDING_REGISTRY = "not supported yet: shoal cannot pull from a registry (images come from " \
                   "the nodes' stores: shoal image import)"
NO_VOLUMES = "not supported yet: shoal has named volumes in no driver (bind mounts and tmpfs " \
             "only)"
UNHONOURED = "shoal cannot honour this"

REFUSALS: dict[str, str] = {
    # healthchecks (the engine's HEALTHCHECK)
    "services.*.healthcheck": PENDING_HEALTH,
    "services.*.depends_on.*.condition=service_healthy": PENDING_HEALTH,
    # Dockerfile builds
    "services.*.build": PENDING_BUILD,
    # registries
    "services.*.pull_policy=always": PENDING_REGISTRY,
    "services.*.pull_policy=build": PENDING_BUILD,
    "services.*.pull_policy=daily": PENDING_REGISTRY,
    "services.*.pull_policy=weekly": PENDING_REGISTRY,
    # names resolved by the embedded DNS
    "services.*.networks.*.aliases": PENDING_DNS,
    "services.*.links": PENDING_DNS,
    "services.*.external_links": PENDING_DNS,
    # overlay networks (and any driver but bridge)
    "networks.*.driver=overlay": PENDING_OVERLAY,
    "networks.*.attachable": PENDING_OVERLAY,
    # volumes
    "volumes.*": NO_VOLUMES,
    "services.*.volumes.*.type=volume": NO_VOLUMES,
    "services.*.volumes_from": "not supported yet: a container cannot mount another's volumes",
    # what the runtime has no field for yet
    "services.*.depends_on.*.condition=service_completed_successfully":
        "not supported yet: starts wait for service_started only",
    "services.*.depends_on.*.restart": "not supported yet: dependants are not restarted",
    "services.*.network_mode=service:*": "not supported yet: a container cannot join "
                                         "another's network",
    "services.*.network_mode=container:*": "not supported yet: a container cannot join "
                                           "another's network",
    "services.*.cap_add": "not supported yet: the runtime keeps Docker's default capabilities",
    "services.*.cap_drop": "not supported yet: the runtime keeps Docker's default capabilities",
    "services.*.ulimits": "not supported yet: the runtime sets no rlimits",
    "services.*.logging.options": "not supported yet: logs are kept by the worker, whole",
    "services.*.deploy.resources.reservations": "not supported yet: limits only",
    "services.*.deploy.mode=global": "not supported yet: replicated services only",
    "services.*.deploy.labels": "not supported yet: shoal has no service objects to label",
    "services.*.deploy.update_config": "not supported yet: up recreates a changed service",
    "services.*.deploy.rollback_config": "not supported yet: up recreates a changed service",
    "services.*.deploy.endpoint_mode": PENDING_DNS,
    "services.*.deploy.restart_policy.delay": "not supported yet: restarts use Docker's "
                                              "backoff",
    "services.*.deploy.restart_policy.window": "not supported yet: restarts use Docker's "
                                               "backoff",
    "configs": "not supported yet: shoal has no configs",
    "secrets": "not supported yet: shoal has no secrets",
    "services.*.configs": "not supported yet: shoal has no configs",
    "services.*.secrets": "not supported yet: shoal has no secrets",
}

HONOURED_SERVICE_KEYS = frozenset({
    "image", "command", "entrypoint", "environment", "env_file", "working_dir", "user",
    "hostname", "labels", "restart", "deploy", "scale", "platform", "container_name", "ports",
    "expose", "networks", "network_mode", "dns", "dns_search", "extra_hosts", "volumes",
    "tmpfs", "init", "stop_signal", "stop_grace_period", "mem_limit", "memswap_limit", "cpus",
    "cpu_shares", "pids_limit", "tty", "stdin_open", "depends_on", "profiles", "extends",
    "security_opt", "logging", "pull_policy",
})
# Within the honoured keys, the sub-keys that are honoured too (the rest: UNHONOURED).
HONOURED_SUBKEYS: dict[str, frozenset[str]] = {
    "deploy": frozenset({"replicas", "resources", "restart_policy", "placement", "mode",
                         "labels", "update_config", "rollback_config", "endpoint_mode"}),
    "logging": frozenset({"driver", "options"}),
}
HONOURED_NETWORK_KEYS = frozenset({"name", "driver", "external", "internal", "labels", "ipam",
                                   "attachable"})


def refusals(project: Project) -> list[Problem]:
    """Everything in ``project`` that shoal would have to ignore, each with its reason."""
    found: dict[Path, str] = {}
    document = project.as_document()
    for pattern, reason in REFUSALS.items():
        for path in _matches(document, pattern):
            found.setdefault(path, reason)
    for name, service in project.services.items():
        for key, value in service.config.items():
            where: Path = ("services", name, key)
            if key.startswith("x-"):
                continue
            if key not in HONOURED_SERVICE_KEYS:
                found.setdefault(where, UNHONOURED)
            elif key in HONOURED_SUBKEYS and isinstance(value, dict):
                for sub in value:
                    if sub not in HONOURED_SUBKEYS[key]:
                        found.setdefault((*where, sub), UNHONOURED)
    for name, network in project.networks.items():
        driver = network.get("driver", "bridge")
        if driver not in ("bridge", "overlay"):
            found.setdefault(("networks", name, "driver"),
                             f"{driver}: not supported: shoal's networks are bridges")
        for key in network:
            if key not in HONOURED_NETWORK_KEYS and not key.startswith("x-"):
                found.setdefault(("networks", name, key), UNHONOURED)
    ordered = sorted(found.items(), key=lambda item: str(item[0]))
    # A refused key's children are not refused again.
    kept = [(path, reason) for path, reason in ordered
            if not any(path[:n] in found for n in range(1, len(path)))]
    return [project.problem(path, f"{reason}") for path, reason in kept]


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
    if not isinstance(node, str):
        return False
    return node.startswith(wanted[:-1]) if wanted.endswith("*") else node == wanted
