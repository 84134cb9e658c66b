"""A Compose file as plain values, with the line of every key and item, so that every error can
name the file, the line and the path (``compose.yaml:12: services.web.ports[1]: …``); the YAML
itself is read by ``cli.compose.yaml_reader``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cli.compose.errors import ComposeError, Path, path_text


@dataclass
class Document:
    """One file's values, and where each path stands in it (line numbers from 1)."""

    file: str  # as the user named it, for messages
    data: dict[str, Any]
    lines: dict[Path, int] = field(default_factory=dict)

    def line_of(self, path: Path) -> int:
        """The line of ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return 1

    def error(self, path: Path, message: str) -> ComposeError:
        return ComposeError(self.file, self.line_of(path), path, message)


def parse(file: str, text: str) -> Document:
    """``text`` (the content of ``file``) as a Document; a ComposeError when it is not YAML, or
    not a mapping at the top. (The YAML reader loads only here: a document parsed before
    comes from the loader's cache, and a no-change ``up`` need not import PyYAML.)"""
    from cli.compose.yaml_reader import read_yaml

    return read_yaml(file, text)


def text_key(file: str, text: str) -> str:
    """What a parsed document is cached by: the name it is shown by, and its text."""
    digest = hashlib.sha256(file.encode())
    digest.update(b"\0")
    digest.update(text.encode())
    return digest.hexdigest()


def where(document: Document, path: Path) -> str:
    """``file:line: path`` for messages that are not errors."""
    return f"{document.file}:{document.line_of(path)}: {path_text(path)}"


def lookup(data: Mapping[str, Any], path: Path) -> Any:
    value: Any = data
    for part in path:
        value = value[part]
    return value
