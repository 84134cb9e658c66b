"""The YAML reader behind ``cli.compose.document.parse``: a Compose file's YAML as plain
values, with the line of every key and item. YAML merge keys (``<<: *defaults``, common with
``x-`` anchors) are applied here; duplicate keys, non-string keys and documents that blow up
through aliases are errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from cli.compose.document import Document
from cli.compose.errors import ComposeError, Path

# Aliases can make a small text into a huge document ("billion laughs"): a bound on the values
# built, and on nesting.
MAX_VALUES = 200_000
MAX_DEPTH = 64
MAX_BYTES = 4 << 20

_MERGE_TAG = "tag:yaml.org,2002:merge"
_SCALARS = yaml.constructor.SafeConstructor()


def read_yaml(file: str, text: str) -> Document:
    """``text`` (the content of ``file``) as a Document; a ComposeError when it is not YAML, or
    not a mapping at the top."""
    if len(text) > MAX_BYTES:
        raise ComposeError(file, 1, (), f"larger than {MAX_BYTES >> 20} MiB")
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise ComposeError(file, line, (), f"not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ComposeError(file, 1, (), f"not valid YAML: {exc}") from None
    if node is None:
        raise ComposeError(file, 1, (), "empty file")
    builder = _Builder(file)
    data = builder.value(node, (), 0)
    if not isinstance(data, dict):
        raise ComposeError(file, node.start_mark.line + 1, (),
                           "the top level must be a mapping")
    return Document(file, data, builder.lines)


_Loader: type[yaml.SafeLoader]
try:
    _Loader = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # a PyYAML built without libyaml
    _Loader = yaml.SafeLoader


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[Path, int] = {}
        self.count = 0

    def value(self, node: yaml.Node, path: Path, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_VALUES or depth > MAX_DEPTH:
            raise ComposeError(self.file, node.start_mark.line + 1, path,
                               f"too large or too deeply nested (at most {MAX_VALUES} values, "
                               f"{MAX_DEPTH} levels)")
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.value(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        try:
            return _SCALARS.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            raise ComposeError(self.file, node.start_mark.line + 1, path, str(exc.problem)) \
                from None

    def _mapping(self, node: yaml.MappingNode, path: Path, depth: int) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        own: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                for source in _merge_sources(value_node):
                    value = self.value(source, path, depth + 1)
                    if not isinstance(value, dict):
                        raise ComposeError(self.file, source.start_mark.line + 1, path,
                                           "a merge key (<<) takes a mapping or a list of them")
                    for k, v in value.items():
                        merged.setdefault(k, v)
                continue
            key = _SCALARS.construct_object(key_node) if isinstance(key_node, yaml.ScalarNode) \
                else None
            if isinstance(key, bool | int | float) and not isinstance(key, bool):
                key = str(key)  # `80: 8080`-like keys, as compose reads them
            if not isinstance(key, str):
                raise ComposeError(self.file, key_node.start_mark.line + 1, path,
                                   "mapping keys must be strings")
            child = (*path, key)
            if key in own:
                raise ComposeError(self.file, key_node.start_mark.line + 1, child,
                                   f"duplicate key {key!r} (first on line "
                                   f"{self.lines.get(child, '?')})")
            self.lines[child] = key_node.start_mark.line + 1
            own[key] = self.value(value_node, child, depth + 1)
        return {**merged, **own}


def _merge_sources(node: yaml.Node) -> Sequence[yaml.Node]:
    return node.value if isinstance(node, yaml.SequenceNode) else [node]
