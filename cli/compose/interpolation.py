"""Compose's variable substitution in a document's values: ``$VAR``, ``${VAR}``,
``${VAR:-default}`` / ``${VAR-default}`` (empty or unset / unset), ``${VAR:?error}`` /
``${VAR?error}``, ``${VAR:+other}`` / ``${VAR+other}``, defaults that nest (``${A:-${B}}``),
and ``$$`` for a literal ``$``. Keys are left as written, as compose does.

A value that was a whole substitution and now reads as a number or a boolean where the schema
wants one (``replicas: ${N}``) is cast, as compose does for its typed fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cli.compose.document import Document
from cli.compose.errors import Path

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Fields whose interpolated text is cast back to the type the schema wants (compose-go's list).
_INTEGER_KEYS = frozenset({
    "replicas", "scale", "retries", "cpu_shares", "cpu_count", "cpu_percent", "cpu_period",
    "cpu_quota", "cpu_rt_period", "cpu_rt_runtime", "mem_swappiness", "oom_score_adj",
    "pids_limit", "max_replicas_per_node", "max_attempts", "parallelism", "shm_size",
    "target", "published", "uid", "gid", "soft", "hard", "mode", "weight", "size",
})
_BOOLEAN_KEYS = frozenset({
    "init", "tty", "stdin_open", "privileged", "read_only", "oom_kill_disable", "external",
    "internal", "attachable", "enable_ipv6", "disable", "required", "nocopy",
    "create_host_path", "use_api_socket",
})
_TRUE = frozenset({"true", "yes", "y", "on"})
_FALSE = frozenset({"false", "no", "n", "off"})


class InterpolationError(ValueError):
    pass


def substitute(text: str, env: Mapping[str, str]) -> str:
    """``text`` with its variables replaced from ``env``; InterpolationError says why not."""
    out, end = _expand(text, 0, env, closing=False)
    assert end == len(text)
    return out


def _expand(text: str, start: int, env: Mapping[str, str], *, closing: bool) -> tuple[str, int]:
    """Expand from ``start`` to the end of ``text`` (or to the ``}`` that closes a nested
    default when ``closing``); the text and where it stopped."""
    out: list[str] = []
    i = start
    while i < len(text):
        char = text[i]
        if closing and char == "}":
            return "".join(out), i
        if char != "$":
            out.append(char)
            i += 1
            continue
        following = text[i + 1:i + 2]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "{":
            value, i = _braced(text, i + 2, env)
            out.append(value)
        else:
            match = _NAME.match(text, i + 1)
            if match is None:
                raise InterpolationError(f"invalid interpolation format in {text!r}: a $ must "
                                         "be followed by a name, {NAME} or $ ($$ for a $)")
            out.append(env.get(match.group(), ""))
            i = match.end()
    if closing:
        raise InterpolationError(f"invalid interpolation format in {text!r}: missing }}")
    return "".join(out), i


def _braced(text: str, start: int, env: Mapping[str, str]) -> tuple[str, int]:
    """``${…}`` from just after its brace; the value and the index after its ``}``."""
    match = _NAME.match(text, start)
    if match is None:
        raise InterpolationError(f"invalid interpolation format in {text!r}: expected a "
                                 "variable name after ${")
    name, i = match.group(), match.end()
    if text[i:i + 1] == "}":
        return env.get(name, ""), i + 1
    operator = text[i:i + 2] if text[i:i + 1] == ":" else text[i:i + 1]
    if operator not in (":-", "-", ":?", "?", ":+", "+"):
        raise InterpolationError(f"invalid interpolation format in {text!r}: unexpected "
                                 f"{text[i:i + 1] or 'end'} after ${{{name}")
    word, end = _expand(text, i + len(operator), env, closing=True)
    value = env.get(name)
    unset_or_empty = value is None or (operator.startswith(":") and value == "")
    kind = operator[-1]
    if kind == "-":
        result = word if unset_or_empty else value
    elif kind == "+":
        result = "" if unset_or_empty else word
    else:
        if unset_or_empty:
            state = "unset" if value is None else "empty"
            raise InterpolationError(f"required variable {name} is {state}"
                                     + (f": {word}" if word else ""))
        result = value
    assert result is not None
    return result, end + 1


def interpolate(document: Document, env: Mapping[str, str]) -> None:
    """Substitute in every value of ``document`` in place; a ComposeError names the first
    value that cannot be (with its line and path)."""
    document.data = _walk(document, document.data, (), env)


def _walk(document: Document, value: Any, path: Path, env: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _walk(document, v, (*path, k), env) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(document, v, (*path, i), env) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value
    try:
        result = substitute(value, env)
    except InterpolationError as exc:
        raise document.error(path, str(exc)) from None
    return _cast(result, path)


def _cast(text: str, path: Path) -> Any:
    key = next((p for p in reversed(path) if isinstance(p, str)), "")
    if isinstance(path[-1] if path else None, int):
        return text  # an item of a list keeps its text (ports: ["${P}:80"])
    if key in _INTEGER_KEYS and re.fullmatch(r"-?\d+", text.strip()):
        return int(text)
    if key in _BOOLEAN_KEYS and text.strip().lower() in _TRUE | _FALSE:
        return text.strip().lower() in _TRUE
    return text

