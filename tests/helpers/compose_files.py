"""Compose projects loaded from texts in memory: the loader's Sources over a dict, so loader
tests need no files."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

from cli.compose.document import Document
from cli.compose.loader import LoadOptions, load_project
from cli.compose.model import Project

PROJECT_DIR = "/srv/app"


class MemorySources:
    def __init__(self, files: Mapping[str, str]) -> None:
        self.files = {path: textwrap.dedent(text) for path, text in files.items()}
        self.valid: set[str] = set()
        self.reads: list[str] = []

    def read(self, path: str) -> str:
        self.reads.append(path)
        if path not in self.files:
            raise FileNotFoundError(2, "No such file or directory", path)
        return self.files[path]

    def exists(self, path: str) -> bool:
        return path in self.files

    def known_valid(self, key: str) -> bool:
        return key in self.valid

    def remember_valid(self, key: str) -> None:
        self.valid.add(key)

    def parsed(self, key: str) -> Document | None:
        return None  # every text parsed: the loader's own path (FileSources caches)

    def remember_parsed(self, key: str, document: Document) -> None:
        pass


def load_texts(files: Mapping[str, str], *, env: Mapping[str, str] | None = None,
               order: Sequence[str] | None = None, **options: object) -> Project:
    """Load ``files`` (names relative to PROJECT_DIR; the -f list is ``order`` or every file
    not starting with a dot or 'other/'), as -f would, with ``env`` as the environment."""
    absolute = {f"{PROJECT_DIR}/{name}": text for name, text in files.items()}
    given = order if order is not None else [n for n in files
                                             if not n.startswith((".", "other/", "env/"))]
    paths = [f"{PROJECT_DIR}/{name}" for name in given]
    display = {f"{PROJECT_DIR}/{name}": name for name in files}
    return load_project(LoadOptions(files=paths, environ=dict(env or {}), display=display,
                                    **options),  # type: ignore[arg-type]
                        MemorySources(absolute))
