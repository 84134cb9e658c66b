"""JSON text to Python values and back, with the json package's own C scanner and encoder
(``_json``) and without the package: ``import json`` imports ``re`` (and with it ``enum``),
which costs a runtime command milliseconds. What it reads and writes is what ``json.loads``
and ``json.dumps`` do, except that NaN and Infinity are refused both ways (they are not JSON).
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False  # typing costs a runtime command milliseconds to import
if TYPE_CHECKING:
    from typing import Any

_WHITESPACE = " \t\n\r"


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


class _ScannerSettings:
    """What ``_json.make_scanner`` reads from a json.JSONDecoder, with json.loads' defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_no_constant)


_scan = _json.make_scanner(_ScannerSettings)  # type: ignore[arg-type]  # duck-typed context


def loads(data: bytes | str) -> Any:
    """The value of the JSON text ``data`` (UTF-8 when bytes); ValueError if it is not JSON."""
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration as stop:
        raise ValueError(f"Expecting value: char {stop.value}") from None
    if text[end:].strip(_WHITESPACE):
        raise ValueError(f"Extra data: char {end}")
    return value


def _unencodable(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_compact = _json.make_encoder(None, _unencodable, _json.encode_basestring_ascii, None, ":", ",",
                              False, False, False)


def dumps(value: object, *, indent: int | None = None) -> str:
    """``value`` as JSON text: compact (no spaces), or ``indent`` spaces a level as
    ``json.dumps(value, indent=indent)`` writes it."""
    if indent is None:
        return "".join(_compact(value, 0))
    return _indented(value, indent, 0)


def _indented(value: object, indent: int, level: int) -> str:
    inner = "\n" + " " * (indent * (level + 1))
    if isinstance(value, dict) and value:
        items = [f"{_json.encode_basestring_ascii(str(k))}: {_indented(v, indent, level + 1)}"
                 for k, v in value.items()]
    elif isinstance(value, (list, tuple)) and value:
        items = [_indented(v, indent, level + 1) for v in value]
    else:
        return dumps(value)
    close = "}" if isinstance(value, dict) else "]"
    return ("{" if close == "}" else "[") + inner + ("," + inner).join(items) + "\n" + \
        " " * (indent * level) + close
