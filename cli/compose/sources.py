"""The loader's I/O: which files a command means (``-f``, ``COMPOSE_FILE``, else compose.yaml
and its override found from the current directory up), reading them, and two caches: the
schema's verdicts (a document that passed once is not checked again: loading the validator
costs more than the rest of a no-change ``up``) and parsed documents (a text read before is not
parsed again, and a no-change ``up`` does not import PyYAML)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from cli.compose.document import Document
from cli.compose.errors import ComposeError
from cli.compose.loader import LoadOptions, load_project
from cli.compose.model import Project

DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
OVERRIDE_FILES = ("compose.override.yaml", "compose.override.yml",
                  "docker-compose.override.yml", "docker-compose.override.yaml")


PARSED = "compose-parsed"  # beside the verdicts' directory


class _ParsedDocument(msgspec.Struct, array_like=True):
    file: str
    data: dict[str, Any]
    lines: list[tuple[list[str | int], int]]


class FileSources:
    def __init__(self, cache_dir: Path | None) -> None:
        self.cache_dir = cache_dir

    def read(self, path: str) -> str:
        with open(path, encoding="utf-8") as f:
            return f.read()

    def exists(self, path: str) -> bool:
        return os.path.isfile(path)

    def parsed(self, key: str) -> Document | None:
        if self.cache_dir is None:
            return None
        try:
            saved = msgspec.msgpack.decode((self.cache_dir.parent / PARSED / key).read_bytes(),
                                           type=_ParsedDocument)
        except (OSError, msgspec.DecodeError):
            return None  # none kept, or unreadable: parsed again
        return Document(saved.file, saved.data, {tuple(path): line
                                                 for path, line in saved.lines})

    def remember_parsed(self, key: str, document: Document) -> None:
        if self.cache_dir is None:
            return
        saved = _ParsedDocument(document.file, document.data,
                                [(list(path), line) for path, line in document.lines.items()])
        encoded = msgspec.msgpack.encode(saved)
        # Kept only if it comes back equal (a YAML value msgpack would change is not).
        if msgspec.msgpack.decode(encoded, type=_ParsedDocument) != saved:
            return
        directory = self.cache_dir.parent / PARSED
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            partial = directory / f".{key}.{os.getpid()}"
            partial.write_bytes(encoded)
            os.replace(partial, directory / key)
        except OSError:
            pass  # no cache: the next load parses again

    def known_valid(self, key: str) -> bool:
        return self.cache_dir is not None and (self.cache_dir / key).exists()

    def remember_valid(self, key: str) -> None:
        if self.cache_dir is None:
            return
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            (self.cache_dir / key).touch()
        except OSError:
            pass  # no cache: the next load checks again


def verdict_cache_dir(environ: Mapping[str, str]) -> Path | None:
    base = environ.get("XDG_CACHE_HOME") or (
        os.path.join(environ["HOME"], ".cache") if environ.get("HOME") else "")
    return Path(base) / "shoal" / "compose-schema" if base else None


def compose_files(given: Sequence[str], environ: Mapping[str, str], cwd: str) -> list[str]:
    """The files, as absolute paths: ``-f`` (``-`` is not supported), else ``COMPOSE_FILE``
    (split on ``COMPOSE_PATH_SEPARATOR`` or ``:``), else the first default file in the current
    directory or above, with its override file when there is one."""
    if not given and environ.get("COMPOSE_FILE"):
        given = [f for f in environ["COMPOSE_FILE"].split(
            environ.get("COMPOSE_PATH_SEPARATOR", os.pathsep)) if f]
    if given:
        files = [os.path.normpath(os.path.join(cwd, f)) for f in given]
        for shown, path in zip(given, files, strict=True):
            if not os.path.isfile(path):
                raise ComposeError("", 0, (), f"{shown}: no such file")
        return files
    directory = Path(cwd)
    for candidate in (directory, *directory.parents):
        for name in DEFAULT_FILES:
            if (candidate / name).is_file():
                files = [str(candidate / name)]
                for override in OVERRIDE_FILES:
                    if (candidate / override).is_file():
                        files.append(str(candidate / override))
                        break
                return files
    raise ComposeError("", 0, (), f"no configuration file provided: none of "
                                  f"{', '.join(DEFAULT_FILES)} here or above (or give -f)")


def load(files: Sequence[str], project_name: str, profiles: Sequence[str],
         env_files: Sequence[str], targets: Sequence[str] = ()) -> Project:
    """The project the command line means, from the real files and environment."""
    environ = dict(os.environ)
    cwd = os.getcwd()
    paths = compose_files(files, environ, cwd)
    display = {path: os.path.relpath(path, cwd) if path.startswith(cwd + os.sep) else path
               for path in paths}
    options = LoadOptions(
        files=paths, environ=environ, project_name=project_name, profiles=profiles,
        env_files=[os.path.normpath(os.path.join(cwd, f)) for f in env_files],
        display=display, targets=targets)
    return load_project(options, FileSources(verdict_cache_dir(environ)))
