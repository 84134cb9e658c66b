"""``--format``: ``table`` (the default), ``json``, or a template in the subset of Go's
text/template that docker users write: ``{{.Names}} {{.Status}}``, ``table {{.ID}}\\t{{.Image}}``,
``{{json .State}}``, ``{{index .Config.Labels "k"}}``, ``{{.Label "k"}}``, ``{{upper .Name}}``.

A template is parsed (and its fields checked against the view's) before any request is sent, so a
typo costs nothing but a usage error naming the fields there are.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import click

_ACTION = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.S)
FUNCTIONS = ("json", "upper", "lower", "title", "index", "join", "len", "truncate")


@dataclass(frozen=True, slots=True)
class _Call:
    """One action: a function (or a bare field, ``function == ""``) and its arguments: field
    paths (tuples of names; ``()`` is ``.``) or string literals."""

    function: str
    args: tuple[tuple[str, ...] | str, ...]


Piece = str | _Call


@dataclass(frozen=True, slots=True)
class Template:
    pieces: tuple[Piece, ...]
    table: bool  # "table ..." prints a header row and aligned columns

    def render(self, view: Mapping[str, Any]) -> str:
        return "".join(piece if isinstance(piece, str) else _evaluate(piece, view)
                       for piece in self.pieces)

    def headers(self, names: Mapping[str, str]) -> list[str]:
        """The header row of a ``table`` template: each action's docker column name."""
        row = "".join(piece if isinstance(piece, str) else _heading(piece, names)
                      for piece in self.pieces)
        return row.split("\t")


def parse(text: str, fields: Sequence[str]) -> Template:
    """Parse ``text``; a field not in ``fields`` (top level) or an unknown function is a usage
    error naming what there is."""
    table = text.startswith("table")
    if table:
        text = text[len("table"):].lstrip()
        if not text:
            text = "\t".join("{{." + name + "}}" for name in fields[:6])
    text = text.replace("\\t", "\t").replace("\\n", "\n")
    pieces: list[Piece] = []
    position = 0
    for match in _ACTION.finditer(text):
        if match.start() > position:
            pieces.append(text[position:match.start()])
        pieces.append(_parse_action(match.group(1), fields))
        position = match.end()
    rest = text[position:]
    if "{{" in rest or "}}" in rest:
        raise click.UsageError(f"--format: unbalanced braces in {rest!r}")
    if rest:
        pieces.append(rest)
    return Template(tuple(pieces), table)


def _parse_action(action: str, fields: Sequence[str]) -> _Call:
    try:
        words = shlex.split(action, posix=True)
    except ValueError as exc:
        raise click.UsageError(f"--format: cannot read {{{{{action}}}}}: {exc}") from None
    if not words:
        raise click.UsageError("--format: an empty {{}}")
    head, *rest = words
    if head.startswith("."):
        function, args = "", [head, *rest]
    elif head in FUNCTIONS:
        function, args = head, rest
    else:
        raise click.UsageError(f"--format: {head!r} is not supported (functions: "
                               f"{', '.join(FUNCTIONS)}; fields start with a dot)")
    parsed: list[tuple[str, ...] | str] = []
    for arg in args:
        if arg.startswith("."):
            path = tuple(part for part in arg.split(".") if part)
            if path and path[0] not in fields:
                raise click.UsageError(f"--format: no field .{path[0]} here (there are: "
                                       f"{', '.join('.' + f for f in fields)})")
            parsed.append(path)
        else:
            parsed.append(arg)
    if function == "" and len(parsed) > 2:
        raise click.UsageError(f"--format: {{{{{action}}}}} has too many arguments")
    return _Call(function, tuple(parsed))


def _resolve(path: tuple[str, ...], view: Any) -> Any:
    value = view
    for name in path:
        if isinstance(value, Mapping) and name in value:
            value = value[name]
        else:
            raise click.ClickException(f"--format: no field {name!r} in "
                                       f"{'.' + '.'.join(path)}")
    return value


def _value(arg: tuple[str, ...] | str, view: Mapping[str, Any]) -> Any:
    return _resolve(arg, view) if isinstance(arg, tuple) else arg


def _evaluate(call: _Call, view: Mapping[str, Any]) -> str:
    args = [_value(arg, view) for arg in call.args]
    if call.function == "":
        first = args[0]
        if callable(first):  # a method-like field: .Label "key"
            return str(first(*args[1:]))
        if len(args) > 1:
            raise click.ClickException("--format: only a function takes arguments")
        return _text(first)
    apply = _APPLY[call.function]
    try:
        return apply(*args)
    except (TypeError, KeyError, IndexError, ValueError) as exc:
        raise click.ClickException(f"--format: {call.function}: {exc}") from None


def _heading(call: _Call, names: Mapping[str, str]) -> str:
    field = next((arg for arg in call.args if isinstance(arg, tuple) and arg), ())
    if not field:
        return call.function.upper()
    return names.get(field[-1], field[-1].upper())


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{_text(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(_text(v) for v in value) + "]"
    if value is None:
        return "<no value>"
    return str(value)


def _index(value: Any, key: Any) -> str:
    if isinstance(value, Mapping):
        return _text(value.get(key, ""))
    return _text(value[int(key)])


_APPLY: dict[str, Callable[..., str]] = {
    "json": lambda value: _json(value),
    "upper": lambda value: _text(value).upper(),
    "lower": lambda value: _text(value).lower(),
    "title": lambda value: _text(value).title(),
    "index": _index,
    "join": lambda value, sep: sep.join(_text(v) for v in value),
    "len": lambda value: str(len(value)),
    "truncate": lambda value, n: _text(value)[:int(n)],
}


def print_formatted(fmt: str, views: Sequence[Mapping[str, Any]], fields: Sequence[str],
                    headers: Mapping[str, str]) -> None:
    """Print ``views`` through the template ``fmt``: a line each, or aligned columns under a
    header row for ``table ...``."""
    from cli.output import table

    template = parse(fmt, fields)
    rows = [template.render(view) for view in views]
    if template.table:
        table(template.headers(headers), [row.split("\t") for row in rows])
        return
    for row in rows:
        click.echo(row)


def _json(value: Any) -> str:
    if isinstance(value, Mapping):  # a view: its method-like fields are not data
        value = {key: item for key, item in value.items() if not callable(item)}
    return json.dumps(value, sort_keys=True)
