"""Argument forms several verbs share: ``KEY=VALUE`` lists (labels, filters) and docker's
sizes (``512m``), each refused with the option's name when malformed."""

from __future__ import annotations

from collections.abc import Iterable

import click


def key_values(items: Iterable[str], what: str, hint: str) -> dict[str, str]:
    """``KEY=VALUE`` items as a mapping (a later key wins); a usage error names ``hint``."""
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{what} {item!r} is not KEY=VALUE", param_hint=hint)
        pairs[key] = value
    return pairs


MAX_BYTES = 1 << 62  # the wire's bound for a size


def parse_memory(text: str) -> int:
    """``512m``, ``2g``, ``1.5g``, ``1024`` (bytes): docker's size notation."""
    units = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    value = text.strip().lower()
    factor = units.get(value[-1:], 0)
    number = value[:-1] if factor else value
    try:
        amount = float(number)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a size like 512m or 2g") from None
    if amount != amount or amount < 0:  # NaN or negative
        raise click.BadParameter(f"{text!r} is not a size like 512m or 2g")
    size = amount * (factor or 1)
    if size >= MAX_BYTES:
        raise click.BadParameter(f"{text!r} is too large: at most {MAX_BYTES >> 40}t")
    return int(size)
