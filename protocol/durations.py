"""Durations as Go writes them (``30s``, ``1m30s``, ``1.5h``, ``500ms``), which docker's flags
and Compose files take: parsed to seconds, and seconds printed back the way Go prints them."""

from __future__ import annotations

import re

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
          "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds in ``text`` (Go's ``time.ParseDuration``: a sequence of numbers with units,
    an optional sign, ``0`` alone); ValueError naming it otherwise."""
    body = text.strip()
    sign = -1.0 if body.startswith("-") else 1.0
    body = body.lstrip("+-")
    if body == "0":
        return 0.0
    if not body:
        raise ValueError(f"invalid duration {text!r}")
    total = 0.0
    position = 0
    while position < len(body):
        match = _PART.match(body, position)
        if match is None:
            raise ValueError(f"invalid duration {text!r}: expected numbers with units "
                             "(ns, us, ms, s, m, h), as in 30s or 1m30s")
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    return sign * total


def go_duration(seconds: float) -> str:
    """``seconds`` as Go prints a duration: ``30s``, ``1m30s``, ``500ms``, ``1h0m0s``."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        millis = seconds * 1000
        return f"{millis:g}ms" if millis >= 1 else f"{seconds * 1e6:g}µs"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:.9f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{text}"
    if minutes:
        return f"{int(minutes)}m{text}"
    return text
