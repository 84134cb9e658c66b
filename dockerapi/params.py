"""Query parameters as Docker's daemon reads them: booleans (``httputils.BoolValue``), numbers,
times, and the JSON ``filters`` argument in both its shapes."""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Iterable

from aiohttp import web

from dockerapi.errors import bad_parameter

_FALSE = ("", "0", "no", "false", "none")


def flag(request: web.Request, key: str, default: bool = False) -> bool:
    """Docker's rule: absent is ``default``; "", 0, no, false, none (any case) are false;
    anything else is true."""
    if key not in request.query:
        return default
    return request.query[key].strip().lower() not in _FALSE


def integer(request: web.Request, key: str, default: int) -> int:
    text = request.query.get(key, "")
    if text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise bad_parameter(f"invalid value for {key}: {text!r}: expected a number") from None


def timestamp(request: web.Request, key: str) -> float:
    """A time as Docker's API takes it: Unix seconds with an optional fraction
    (``1700000000.000000001``), an RFC 3339 time, or a duration before now (``10m``)."""
    text = request.query.get(key, "").strip()
    if not text:
        return 0.0
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        pass
    units = {"s": 1, "m": 60, "h": 3600}
    if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
        return time.time() - float(text[:-1]) * units[text[-1]]
    raise bad_parameter(f"invalid value for {key}: {text!r}: expected a Unix time, an RFC "
                        "3339 time or a duration")


def filters(request: web.Request, allowed: Iterable[str]) -> dict[str, list[str]]:
    """``filters={"label":["a=b"]}`` (or the old ``{"label":{"a=b":true}}``), keys checked."""
    text = request.query.get("filters", "")
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except ValueError:
        raise bad_parameter(f"invalid filters: {text[:80]!r} is not JSON") from None
    if not isinstance(raw, dict):
        raise bad_parameter("invalid filters: expected a JSON object")
    known = set(allowed)
    result: dict[str, list[str]] = {}
    for key, values in raw.items():
        if key not in known:
            raise bad_parameter(f"invalid filter '{key}'")
        if isinstance(values, dict):
            values = [k for k, on in values.items() if on]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise bad_parameter(f"invalid filter '{key}': expected a list of strings")
        result[key] = values
    return result
