"""A document checked against the compose-spec JSON schema (vendored beside this module, see
README.md), each violation a Problem with the file, the line and the path. Unknown keys are
errors, as the schema says (only ``x-`` extensions are free).

``jsonschema`` costs a few hundred milliseconds to import, so the shell caches verdicts
(``verdict_key``) and calls ``problems`` only for a document it has not seen pass.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from cli.compose.document import Document
from cli.compose.errors import Path, Problem

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

MAX_PROBLEMS = 20
# Which copy of the schema compose-spec.json is (see README.md): part of every verdict's key, so
# a new copy (with a new id) checks every document again. Not a digest of the file, which would
# cost reading it on every load.
SCHEMA_ID = "compose-spec@170098ba07d9"


@cache
def _schema_text() -> bytes:
    from importlib import resources  # ~20 ms: only when a document is checked

    return resources.files("cli.compose").joinpath("compose-spec.json").read_bytes()


def verdict_key(data: Any) -> str:
    """A digest of the schema's id and ``data``: the same key means the same verdict."""
    digest = hashlib.sha256(SCHEMA_ID.encode())
    digest.update(json.dumps(data, sort_keys=True, default=str).encode())
    return digest.hexdigest()


@cache
def _validator() -> Any:
    from jsonschema import Draft7Validator

    return Draft7Validator(json.loads(_schema_text()))


def problems(document: Document) -> list[Problem]:
    """Every violation of the schema in ``document`` (at most MAX_PROBLEMS), by line."""
    found: list[Problem] = []
    for error in _validator().iter_errors(document.data):
        for path, message in _explain(error):
            found.append(Problem(document.file, document.line_of(path), path, message))
    found.sort(key=lambda p: (p.line, p.message))
    unique = list(dict.fromkeys(found))
    return unique[:MAX_PROBLEMS]


def _explain(error: ValidationError) -> Iterator[tuple[Path, str]]:
    """What a user should read for ``error``: an unknown key at its own path, the most
    relevant branch of a oneOf/anyOf, the rest in the schema's words."""
    path: Path = tuple(error.absolute_path)
    rule = error.schema if isinstance(error.schema, Mapping) else {}
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = rule.get("properties", {})
        patterns = rule.get("patternProperties", {})
        import re

        for key in error.instance:
            if key not in allowed and not any(re.search(p, key) for p in patterns):
                yield (*path, key), "unknown key"
        return
    if error.validator in ("oneOf", "anyOf") and error.context:
        from jsonschema.exceptions import best_match

        depth = max(len(e.absolute_path) for e in error.context)
        if depth > len(path):  # a branch that matched the shape and failed deeper down
            deepest = best_match(e for e in error.context if len(e.absolute_path) == depth)
            if deepest is not None:
                yield from _explain(deepest)
                return
        types = sorted({_type_name(e.validator_value) for e in error.context
                        if e.validator == "type"})
        if types and all(e.validator == "type" for e in error.context):
            yield path, f"must be {' or '.join(types)}, not {_json_type(error.instance)}"
            return
        deepest = best_match(error.context)
        if deepest is not None:
            yield from _explain(deepest)
            return
    if error.validator == "type":
        yield path, (f"must be {_type_name(error.validator_value)}, not "
                     f"{_json_type(error.instance)}")
        return
    if error.validator == "required":
        yield path, error.message.replace("is a required property", "is required")
        return
    yield path, error.message


_TYPE_NAMES = {"object": "a mapping", "array": "a list", "integer": "an integer",
               "string": "a string", "number": "a number", "boolean": "a boolean",
               "null": "null"}


def _type_name(value: Any) -> str:
    names = value if isinstance(value, list) else [value]
    return " or ".join(_TYPE_NAMES.get(n, str(n)) for n in names)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return f"a string ({value!r})" if len(value) < 40 else "a string"
    if isinstance(value, list):
        return "a list"
    return "a mapping"
