"""``.env`` files (the project's, ``--env-file``, a service's ``env_file``) as compose reads
them: ``KEY=VALUE`` lines, ``export`` prefixes, ``#`` comments, single quotes kept literal,
double quotes with ``\\n``-style escapes, and ``KEY`` alone (taken from the environment)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from cli.compose.errors import ComposeError

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "$": "$"}


def parse_env_file(file: str, text: str, lookup: Mapping[str, str]) -> dict[str, str]:
    """The variables ``text`` (the content of ``file``) sets; a bare ``KEY`` takes its value
    from ``lookup`` (and is left out when unset there)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not _KEY.fullmatch(key):
            raise ComposeError(file, number, (), f"bad line {raw.strip()!r}: expected KEY=VALUE")
        if not sep:
            if key in lookup:
                values[key] = lookup[key]
            continue
        values[key] = _value(file, number, value.strip())
    return values


def _value(file: str, number: int, value: str) -> str:
    if value[:1] in ("'", '"'):
        quote = value[0]
        end = value.find(quote, 1)
        while quote == '"' and end > 0 and value[end - 1] == "\\":
            end = value.find(quote, end + 1)
        if end < 0:
            raise ComposeError(file, number, (), f"unterminated {quote} quote")
        inner = value[1:end]
        if quote == "'":
            return inner
        return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), inner)
    comment = re.search(r"\s#", value)
    return value[:comment.start()].rstrip() if comment else value
