"""The compose-spec's merge rules, for several ``-f`` files and for ``extends``: mappings are
merged key by key, sequences appended (without repeats), ``command``, ``entrypoint`` and
``healthcheck.test`` replaced, and the sequences of unique resources keyed: ports by host IP,
published port, target and protocol, volumes and tmpfs by target, secrets and configs by
target (or source). Both sides are in the long forms of ``normalize``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Inside a service: what an override replaces outright.
_REPLACED = frozenset({("command",), ("entrypoint",), ("healthcheck", "test")})
# Inside a service: sequences whose items are unique by a key; a later item with the same key
# replaces the earlier one in place.
_KEYED: dict[tuple[str, ...], Callable[[Any], Any]] = {
    ("ports",): lambda p: (p.get("host_ip", ""), p.get("published", ""), p.get("target"),
                           p.get("protocol", "tcp")),
    ("volumes",): lambda v: v.get("target"),
    ("secrets",): lambda s: s.get("target") or s.get("source"),
    ("configs",): lambda c: c.get("target") or c.get("source"),
    ("tmpfs",): lambda t: str(t).split(":")[0],
    ("env_file",): lambda e: e.get("path"),
}


def merge_documents(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` (a later ``-f``) merged onto ``base``."""
    merged = dict(base)
    for key, value in override.items():
        if key == "services" and isinstance(value, dict):
            services = dict(base.get("services") or {})
            for name, service in value.items():
                services[name] = merge_service(services[name], service) \
                    if name in services else service
            merged["services"] = services
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            merged[key] = _merge_mapping(base[key], value, None)
        else:
            merged[key] = value
    return merged


def merge_service(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """One service's ``override`` merged onto its ``base``."""
    return _merge_mapping(base, override, ())


def _merge_mapping(base: dict[str, Any], override: dict[str, Any],
                   path: tuple[str, ...] | None) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        child = None if path is None else (*path, key)
        if key not in merged or child in _REPLACED:
            merged[key] = value
        else:
            merged[key] = _merge_value(merged[key], value, child)
    return merged


def _merge_value(base: Any, override: Any, path: tuple[str, ...] | None) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        return _merge_mapping(base, override, path)
    if isinstance(base, list) and isinstance(override, list):
        keyed = _KEYED.get(path) if path is not None else None
        if keyed is not None:
            by_key = {keyed(item): item for item in base}
            for item in override:
                by_key[keyed(item)] = item
            return list(by_key.values())
        return _append_unique(base, override)
    return override


def _append_unique(base: list[Any], override: list[Any]) -> list[Any]:
    merged = list(base)
    for item in override:
        if item not in merged:
            merged.append(item)
    return merged
