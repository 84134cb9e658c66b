"""One file's document brought to the compose-spec's long forms, so merging and the model see
one shape: fig 1.0 / v1 files (services at the top) lifted under ``services``, then short
syntaxes made long (ports, volumes, environment and labels lists, depends_on and networks lists,
command strings, build strings, …) and relative paths made absolute.

Runs after the file has passed the schema, so shapes the schema rules out are not handled
again here; what the schema lets through but cannot be read (``ports: ["80:x"]``) is an error
with its line."""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Mapping
from typing import Any

from cli.compose.document import Document
from cli.compose.errors import Path

# The top-level keys of v2, v3 and compose-spec files; a file with none of them is fig 1.0 / v1.
TOP_LEVEL = frozenset({"version", "name", "include", "services", "networks", "volumes",
                       "configs", "secrets", "models"})
# v1's names for what the spec calls otherwise.
_V1_RENAMES = {"net": "network_mode"}


def lift_v1(document: Document) -> None:
    """A fig 1.0 / v1 file (services at the top level, no ``version``) as a compose-spec one:
    its services under ``services``, v1's keys renamed (``net``, ``dockerfile``, ``log_driver``,
    ``log_opt``). Lines move with their values."""
    data = document.data
    if any(key in TOP_LEVEL or key.startswith("x-") for key in data):
        return
    services: dict[str, Any] = {}
    for name, service in data.items():
        if not isinstance(service, dict):
            services[name] = service  # the schema names it
            continue
        lifted = {_V1_RENAMES.get(k, k): v for k, v in service.items()
                  if k not in ("dockerfile", "log_driver", "log_opt")}
        if "dockerfile" in service:
            build = lifted.get("build")
            lifted["build"] = {"context": build if isinstance(build, str) else ".",
                               "dockerfile": service["dockerfile"]}
        if "log_driver" in service or "log_opt" in service:
            lifted["logging"] = {k: service[old] for k, old in
                                 (("driver", "log_driver"), ("options", "log_opt"))
                                 if old in service}
        services[name] = lifted
    lines = {("services", *path): line for path, line in document.lines.items() if path}
    moved = {"dockerfile": ("build", "dockerfile"), "log_driver": ("logging", "driver"),
             "log_opt": ("logging", "options")}
    for (_, owner, key, *rest), line in [(p, n) for p, n in lines.items() if len(p) >= 3]:
        if isinstance(key, str) and key in _V1_RENAMES:
            lines[("services", owner, _V1_RENAMES[key], *rest)] = line
        elif key in ("dockerfile", "log_driver", "log_opt"):
            target = moved[str(key)]
            lines.setdefault(("services", owner, target[0]), line)
            lines[("services", owner, *target, *rest)] = line
    lines[()] = 1
    lines[("services",)] = 1
    document.data = {"services": services}
    document.lines = lines


def normalize(document: Document, base_dir: str, env: Mapping[str, str]) -> None:
    """Long forms throughout ``document`` (after ``lift_v1`` and the schema), relative paths
    against ``base_dir``; ``KEY`` alone in ``environment`` is read from ``env``."""
    data = document.data
    for name, service in (data.get("services") or {}).items():
        data["services"][name] = _service(document, ("services", name), service, base_dir, env)
    for kind in ("networks", "volumes", "configs", "secrets"):
        section = data.get(kind)
        if section is None:
            continue
        data[kind] = {name: _resource(value or {}, base_dir) for name, value in section.items()}


def _resource(value: dict[str, Any], base_dir: str) -> dict[str, Any]:
    resource = dict(value)
    external = resource.get("external")
    if isinstance(external, dict):  # v2/v3's external: {name: x}
        resource["external"] = True
        if "name" in external:
            resource["name"] = external["name"]
    if isinstance(resource.get("file"), str):
        resource["file"] = _absolute(resource["file"], base_dir, {})
    return resource


def _service(document: Document, path: Path, service: dict[str, Any], base_dir: str,
             env: Mapping[str, str]) -> dict[str, Any]:
    s = dict(service)
    for key in ("command", "entrypoint"):
        if isinstance(s.get(key), str):
            try:
                s[key] = shlex.split(s[key])
            except ValueError as exc:
                raise document.error((*path, key), f"cannot split into words: {exc}") from None
    for key in ("dns", "dns_search", "tmpfs", "expose", "profiles", "env_file", "label_file"):
        if isinstance(s.get(key), str | int):
            s[key] = [s[key]]
    if "expose" in s:
        s["expose"] = [str(port) for port in s["expose"]]
    if "environment" in s:
        s["environment"] = _environment(s["environment"], env)
    if "labels" in s:
        s["labels"] = _labels(s["labels"])
    if "env_file" in s:
        s["env_file"] = [
            {"path": _absolute(item, base_dir, env), "required": True} if isinstance(item, str)
            else {**item, "path": _absolute(item["path"], base_dir, env),
                  "required": item.get("required", True)}
            for item in s["env_file"]]
    if isinstance(s.get("build"), str):
        s["build"] = {"context": s["build"]}
    if isinstance(s.get("build"), dict) and isinstance(s["build"].get("context"), str):
        context = s["build"]["context"]
        if "://" not in context and not context.startswith("git@"):
            s["build"] = {**s["build"], "context": _absolute(context, base_dir, env)}
    if isinstance(s.get("extends"), str):
        s["extends"] = {"service": s["extends"]}
    if "depends_on" in s:
        s["depends_on"] = _depends_on(s["depends_on"])
    if "networks" in s and isinstance(s["networks"], list):
        s["networks"] = {name: None for name in s["networks"]}
    if "extra_hosts" in s:
        s["extra_hosts"] = _extra_hosts(s["extra_hosts"])
    if "ports" in s:
        s["ports"] = [port for i, item in enumerate(s["ports"])
                      for port in _ports(document, (*path, "ports", i), item)]
    if "volumes" in s:
        s["volumes"] = [_volume(document, (*path, "volumes", i), item, base_dir, env)
                        for i, item in enumerate(s["volumes"])]
    for key in ("secrets", "configs"):
        if key in s:
            s[key] = [{"source": item} if isinstance(item, str) else item for item in s[key]]
    healthcheck = s.get("healthcheck")
    if isinstance(healthcheck, dict) and isinstance(healthcheck.get("test"), str):
        s["healthcheck"] = {**healthcheck, "test": ["CMD-SHELL", healthcheck["test"]]}
    return s


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _environment(value: Any, env: Mapping[str, str]) -> dict[str, str | None]:
    """A map; ``KEY`` alone (or ``KEY:`` with no value) takes the shell's value, or stays
    unset (None) when the shell has none."""
    pairs: dict[str, str | None] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            pairs[key] = env.get(key) if item is None else _scalar_text(item)
        return pairs
    for item in value:
        key, sep, text = str(item).partition("=")
        pairs[key] = text if sep else env.get(key)
    return pairs


def _labels(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {k: "" if v is None else _scalar_text(v) for k, v in value.items()}
    labels: dict[str, str] = {}
    for item in value:
        key, _, text = str(item).partition("=")
        labels[key] = text
    return labels


def _depends_on(value: Any) -> dict[str, dict[str, Any]]:
    if isinstance(value, list):
        return {name: {"condition": "service_started", "required": True} for name in value}
    return {name: {"condition": "service_started", "required": True, **(item or {})}
            for name, item in value.items()}


def _extra_hosts(value: Any) -> list[str]:
    if isinstance(value, dict):
        items = [(k, v if isinstance(v, str) else ",".join(v)) for k, v in value.items()]
    else:
        items = []
        for entry in value:
            separator = "=" if "=" in entry else ":"
            host, _, address = entry.partition(separator)
            items.append((host, address))
    return [f"{host}:{address.strip('[]')}" for host, address in items]


_PORT = re.compile(
    r"^(?:(?:(?P<ip>\[[^\]]*\]|[^:\[\]]*):)?(?P<published>[0-9]*(?:-[0-9]+)?):)?"
    r"(?P<target>[0-9]+(?:-[0-9]+)?)(?:/(?P<protocol>[a-z]+))?$")


def _ports(document: Document, path: Path, item: Any) -> list[dict[str, Any]]:
    if isinstance(item, dict):
        long_form = {"mode": "ingress", "protocol": "tcp", **item}
        if "published" in long_form:
            long_form["published"] = str(long_form["published"])
        return [long_form]
    text = str(item)
    match = _PORT.match(text)
    if match is None:
        raise document.error(path, f"bad port {text!r}: expected "
                                   "[[HOST_IP:]PUBLISHED:]TARGET[/PROTOCOL]")
    target_low, target_high = _range(match.group("target"))
    published = match.group("published") or ""
    protocol = match.group("protocol") or "tcp"
    host_ip = (match.group("ip") or "").strip("[]")
    count = target_high - target_low + 1
    if published and "-" in published:
        low, high = _range(published)
        if high - low + 1 != count and count != 1:
            raise document.error(path, f"bad port {text!r}: the published range and the "
                                       "target range differ in size")
        publish = [f"{low + i}" for i in range(count)] if count > 1 or low == high \
            else [published]
    else:
        if published and count > 1:
            raise document.error(path, f"bad port {text!r}: one published port for a range")
        publish = [published] * count
    ports = []
    for offset, published_port in enumerate(publish):
        port: dict[str, Any] = {"mode": "ingress", "target": target_low + offset,
                                "protocol": protocol}
        if published_port:
            port["published"] = published_port
        if host_ip:
            port["host_ip"] = host_ip
        ports.append(port)
    return ports


def _range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    return int(low), int(high or low)


def _volume(document: Document, path: Path, item: Any, base_dir: str,
            env: Mapping[str, str]) -> dict[str, Any]:
    if isinstance(item, dict):
        volume = dict(item)
        if volume.get("type") == "bind" and isinstance(volume.get("source"), str):
            volume["source"] = _absolute(volume["source"], base_dir, env)
        return volume
    parts = str(item).split(":")
    if len(parts) == 1:
        return {"type": "volume", "target": parts[0]}
    if len(parts) > 3:
        raise document.error(path, f"bad volume {item!r}: expected SOURCE:TARGET[:MODE]")
    source, target = parts[0], parts[1]
    options = parts[2].split(",") if len(parts) == 3 else []
    is_path = source.startswith((".", "/", "~")) or source == ""
    volume = {"type": "bind" if is_path else "volume",
              "source": _absolute(source, base_dir, env) if is_path else source,
              "target": target}
    for option in options:
        if option == "ro":
            volume["read_only"] = True
        elif option == "rw":
            pass
        elif option == "nocopy":
            volume["volume"] = {"nocopy": True}
        elif option in ("z", "Z", "shared", "rshared", "slave", "rslave", "private",
                        "rprivate", "delegated", "cached", "consistent"):
            volume.setdefault("bind", {})["selinux" if option in "zZ" else "propagation"] \
                = option
        else:
            raise document.error(path, f"bad volume {item!r}: unknown option {option!r}")
    return volume


def _absolute(path: str, base_dir: str, env: Mapping[str, str]) -> str:
    if path.startswith("~"):
        path = env.get("HOME", "/root") + path[1:]
    return posixpath.normpath(posixpath.join(base_dir, path))
