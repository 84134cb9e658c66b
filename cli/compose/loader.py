"""Compose files to a Project, as compose reads them: each file parsed (with lines), lifted from
fig 1.0 / v1, interpolated from the environment and ``.env`` (or ``--env-file``), checked
against the compose-spec schema, brought to long forms, its ``extends`` resolved (in the same
file or another); then the files merged in order, the project named, profiles applied and
references between services checked.

Pure: files are read through ``Sources`` and the environment is a mapping, both given by the
caller (``cli.compose.sources`` for the real ones, dicts in tests).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cli.compose import schema
from cli.compose.document import Document, parse, text_key
from cli.compose.dotenv import parse_env_file
from cli.compose.errors import ComposeError, Path, Problem
from cli.compose.interpolation import interpolate
from cli.compose.merge import merge_documents, merge_service
from cli.compose.model import Project, Service, service_from_config
from cli.compose.normalize import lift_v1, normalize

MAX_EXTENDS_DEPTH = 32


class Sources(Protocol):
    """Where the loader reads: files by absolute path, and caches of parsed documents (by
    ``text_key``) and of schema verdicts."""

    def read(self, path: str) -> str:
        """The file's text; OSError when it cannot be read."""

    def exists(self, path: str) -> bool: ...

    def known_valid(self, key: str) -> bool: ...

    def remember_valid(self, key: str) -> None: ...

    def parsed(self, key: str) -> Document | None:
        """The document a text was parsed into before (None: parse it)."""

    def remember_parsed(self, key: str, document: Document) -> None:
        """Keep ``document``, just parsed and not yet changed, for ``parsed``."""


@dataclass(frozen=True)
class LoadOptions:
    files: Sequence[str]  # absolute paths, in -f order
    environ: Mapping[str, str]  # the process environment
    project_name: str = ""  # -p
    profiles: Sequence[str] = ()  # --profile
    env_files: Sequence[str] = ()  # --env-file (absolute); none: the project's .env
    display: Mapping[str, str] = field(default_factory=dict)  # path -> name in messages
    # Services named on the command line: enabled whatever their profiles, as in compose.
    targets: Sequence[str] = ()


def load_project(options: LoadOptions, sources: Sources) -> Project:
    if not options.files:
        raise ComposeError("", 0, (), "no compose file given")
    working_dir = posixpath.dirname(options.files[0])
    env = project_environment(options, sources, working_dir)
    loading = _Loading(sources, env, options.display)
    documents = [loading.document(path, working_dir) for path in options.files]
    merged: dict[str, Any] = {}
    for document in documents:
        merged = merge_documents(merged, document.data)
    name = project_name(options.project_name or env.get("COMPOSE_PROJECT_NAME", ""),
                        merged.get("name", ""), working_dir)
    active = set(options.profiles) or {p for p in env.get("COMPOSE_PROFILES", "").split(",")
                                       if p}
    services: dict[str, Service] = {}
    disabled: dict[str, Service] = {}
    for service_name, config in (merged.get("services") or {}).items():
        service = service_from_config(service_name, with_env_files(config, sources, env))
        enabled = not service.profiles or bool(active & set(service.profiles)) \
            or "*" in active or service_name in options.targets
        (services if enabled else disabled)[service_name] = service
    origins = {path: (document.file, line)
               for document in documents for path, line in document.lines.items()}
    project = Project(
        name=name, working_dir=working_dir, files=list(options.files), services=services,
        networks=merged.get("networks") or {}, volumes=merged.get("volumes") or {},
        configs=merged.get("configs") or {}, secrets=merged.get("secrets") or {},
        disabled=disabled, origins=origins, environment=dict(env))
    check_references(project)
    return project


def project_environment(options: LoadOptions, sources: Sources,
                        working_dir: str) -> dict[str, str]:
    """The variables interpolation sees: the env files' (``--env-file``, else the project's
    ``.env`` when there is one), under the process environment, which wins, as in compose."""
    env_files = list(options.env_files)
    default = posixpath.join(working_dir, ".env")
    if not env_files and sources.exists(default):
        env_files = [default]
    values: dict[str, str] = {}
    for path in env_files:
        try:
            text = sources.read(path)
        except OSError as exc:
            raise ComposeError(options.display.get(path, path), 0, (),
                               f"cannot read the env file: {exc.strerror or exc}") from None
        values.update(parse_env_file(options.display.get(path, path), text,
                                     {**values, **options.environ}))
    return {**values, **options.environ}


_INVALID_NAME_CHARS = re.compile(r"[^a-z0-9_-]")
_VALID_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def project_name(explicit: str, from_file: str, working_dir: str) -> str:
    """-p or COMPOSE_PROJECT_NAME (must already be valid), else the file's ``name``, else the
    project directory's name made valid as compose does (lowercase, only a-z 0-9 _ -, starting
    with a letter or digit)."""
    if explicit:
        if not _VALID_NAME.match(explicit):
            raise ComposeError("", 0, (), f"project name {explicit!r} is not valid: only "
                                          "lowercase letters, digits, dashes and underscores, "
                                          "starting with a letter or digit")
        return explicit
    if from_file:
        if not _VALID_NAME.match(from_file):
            raise ComposeError("", 0, ("name",), f"project name {from_file!r} is not valid: "
                                                  "only lowercase letters, digits, dashes and "
                                                  "underscores, starting with a letter or digit")
        return from_file
    normalized = _INVALID_NAME_CHARS.sub("", posixpath.basename(working_dir).lower())
    normalized = normalized.lstrip("_-")
    if not normalized:
        raise ComposeError("", 0, (), f"cannot make a project name of {working_dir!r}: give "
                                      "-p NAME")
    return normalized


class _Loading:
    """One load's files: each read and prepared once, however often it is extended."""

    def __init__(self, sources: Sources, env: Mapping[str, str],
                 display: Mapping[str, str]) -> None:
        self.sources = sources
        self.env = env
        self.display = display
        self.prepared: dict[str, Document] = {}
        self.resolved: dict[tuple[str, str], dict[str, Any]] = {}

    def document(self, path: str, base_dir: str) -> Document:
        """``path`` parsed, interpolated, checked, in long forms, its extends resolved."""
        document = self._prepared(path, base_dir)
        services = document.data.get("services") or {}
        for name in list(services):
            services[name] = self._resolve(document, path, name, ())
        return document

    def _prepared(self, path: str, base_dir: str) -> Document:
        if path in self.prepared:
            return self.prepared[path]
        shown = self.display.get(path, path)
        try:
            text = self.sources.read(path)
        except OSError as exc:
            raise ComposeError(shown, 0, (), f"cannot read: {exc.strerror or exc}") from None
        parsed_key = text_key(shown, text)
        document = self.sources.parsed(parsed_key)
        if document is None:
            document = parse(shown, text)
            self.sources.remember_parsed(parsed_key, document)
        lift_v1(document)
        interpolate(document, self.env)
        key = schema.verdict_key(document.data)
        if not self.sources.known_valid(key):
            found = schema.problems(document)
            if found:
                raise ComposeError.of(found)
            self.sources.remember_valid(key)
        normalize(document, base_dir, self.env)
        self.prepared[path] = document
        return document

    def _resolve(self, document: Document, path: str, name: str,
                 chain: tuple[tuple[str, str], ...]) -> dict[str, Any]:
        """Service ``name`` of ``document`` with its ``extends`` applied (recursively)."""
        if (path, name) in self.resolved:
            return self.resolved[(path, name)]
        services = document.data.get("services") or {}
        where: Path = ("services", name)
        if name not in services:
            last = chain[-1] if chain else (path, name)
            raise document.error(("services", last[1], "extends"),
                                 f"extends a service {name!r} that {document.file} does "
                                 "not define")
        if (path, name) in chain:
            cycle = " -> ".join(n for _, n in (*chain, (path, name)))
            raise document.error((*where, "extends"), f"extends itself: {cycle}")
        if len(chain) > MAX_EXTENDS_DEPTH:
            raise document.error((*where, "extends"), "extends nested too deep")
        service = services[name]
        extends = service.get("extends")
        if extends is None:
            return dict(service)
        base_path, base_document = path, document
        if extends.get("file"):
            base_path = posixpath.normpath(posixpath.join(posixpath.dirname(path),
                                                          extends["file"]))
            if not self.sources.exists(base_path):
                raise document.error((*where, "extends", "file"),
                                     f"cannot read {extends['file']}: no such file")
            base_document = self._prepared(base_path, posixpath.dirname(base_path))
        base = self._resolve(base_document, base_path, extends["service"],
                             (*chain, (path, name)))
        own = {k: v for k, v in service.items() if k != "extends"}
        resolved = merge_service({k: v for k, v in base.items() if k != "extends"}, own)
        self.resolved[(path, name)] = resolved
        return resolved


def with_env_files(config: dict[str, Any], sources: Sources,
                   env: Mapping[str, str]) -> dict[str, Any]:
    """``config`` with its ``env_file`` entries read into ``environment`` (whose own values
    win), as compose resolves them: a changed env file changes the service."""
    if not config.get("env_file"):
        return config
    values: dict[str, str | None] = {}
    for item in config["env_file"]:
        try:
            text = sources.read(item["path"])
        except OSError as exc:
            if not item.get("required", True):
                continue
            raise ComposeError("", 0, (), f"env_file {item['path']}: cannot read: "
                                          f"{exc.strerror or exc}") from None
        values.update(parse_env_file(item["path"], text, env))
    resolved = {k: v for k, v in config.items() if k != "env_file"}
    resolved["environment"] = {**values, **(config.get("environment") or {})}
    return resolved


def check_references(project: Project) -> None:
    """Every name a service uses is defined: services it depends on (and enabled by the
    profiles), networks, named volumes, configs and secrets."""
    problems: list[Problem] = []

    def problem(path: Path, message: str) -> None:
        problems.append(project.problem(path, message))

    for name, service in project.services.items():
        for dependency in service.depends_on:
            path: Path = ("services", name, "depends_on", dependency.service)
            if dependency.service in project.disabled:
                if dependency.required:
                    profiles = ", ".join(project.disabled[dependency.service].profiles)
                    problem(path, f"depends on {dependency.service}, whose profiles "
                                  f"({profiles}) are not active")
            elif dependency.service not in project.services and dependency.required:
                problem(path, f"depends on an undefined service {dependency.service!r}")
        for network in service.networks:
            if network != "default" and network not in project.networks:
                problem(("services", name, "networks", network),
                        f"uses an undefined network {network!r}")
        for i, volume in enumerate(service.volumes):
            if volume.type == "volume" and volume.source \
                    and volume.source not in project.volumes:
                problem(("services", name, "volumes", i),
                        f"uses an undefined volume {volume.source!r}")
        for kind, defined in (("configs", project.configs), ("secrets", project.secrets)):
            for i, item in enumerate(service.config.get(kind) or []):
                if item["source"] not in defined:
                    problem(("services", name, kind, i),
                            f"uses an undefined {kind[:-1]} {item['source']!r}")
        if "image" not in service.config and "build" not in service.config:
            problem(("services", name), "has neither image nor build")
    cycle = dependency_cycle(project)
    if cycle:
        problem(("services", cycle[0], "depends_on"),
                f"dependency cycle: {' -> '.join(cycle)}")
    if problems:
        raise ComposeError.of(problems)


def dependency_cycle(project: Project) -> list[str]:
    """A cycle of depends_on among the enabled services, as the names along it, or []."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(name: str) -> list[str]:
        state[name] = 1
        stack.append(name)
        for dependency in project.services[name].depends_on:
            following = dependency.service
            if following not in project.services:
                continue
            if state.get(following) == 1:
                return [*stack[stack.index(following):], following]
            if following not in state:
                found = visit(following)
                if found:
                    return found
        stack.pop()
        state[name] = 2
        return []

    for name in sorted(project.services):
        if name not in state:
            found = visit(name)
            if found:
                return found
    return []


def start_order(project: Project, wanted: Sequence[str], *, with_dependencies: bool
                ) -> list[str]:
    """The services to act on, dependencies before dependants: ``wanted`` (all when empty),
    with what they depend on unless ``with_dependencies`` is false."""
    unknown = [name for name in wanted if name not in project.services]
    if unknown:
        raise ComposeError("", 0, (), f"no such service: {', '.join(unknown)}")
    roots = list(wanted) or sorted(project.services)
    order: list[str] = []

    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for dependency in project.services[name].depends_on:
            if dependency.service in project.services:
                visit(dependency.service)
        if name in roots or with_dependencies:
            order.append(name)

    for name in roots:
        visit(name)
    return order


def restarted_with(project: Project, services: Sequence[str]) -> list[str]:
    """``services`` and, after them in start order, every service that depends on one of them
    with ``restart: true``, transitively: what compose restarts when they are restarted or
    recreated."""
    found = list(services)
    grew = True
    while grew:
        grew = False
        for name, service in project.services.items():
            if name not in found and any(d.restart and d.service in found
                                         for d in service.depends_on):
                found.append(name)
                grew = True
    return start_order(project, found, with_dependencies=False)
