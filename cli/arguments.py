"""Argument forms several commands share: ``KEY=VALUE`` lists (labels, filters), docker's
sizes (``512m``) and a daemon's ``--advertise`` address, each refused with the option's name
when malformed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

import click

F = TypeVar("F", bound=Callable[..., object])


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


def _advertise_value(ctx: click.Context, param: click.Parameter, value: str) -> str:
    # Imported here: the address rules bring the wire's error types (msgspec), which a
    # command that only parses its arguments (``shoal --version``) never loads.
    from protocol.addresses import check_advertise
    from protocol.errors import InvalidArgument

    if value:
        try:
            check_advertise(value)
        except InvalidArgument as exc:
            raise click.BadParameter(str(exc)) from None
    return value


def advertise_option(help_text: str) -> Callable[[F], F]:
    """``--advertise ADDR``: the address a daemon tells others, checked as it is parsed."""
    return click.option("--advertise", default="", metavar="ADDR", callback=_advertise_value,
                        help=help_text)


def require_advertise(listen: str, advertise: str, daemon: str) -> None:
    """A daemon others must reach cannot tell them a wildcard: a usage error saying what to
    pass instead."""
    from protocol.addresses import is_wildcard

    if is_wildcard(listen) and not advertise:
        port = listen.rpartition(":")[2]
        raise click.UsageError(
            f"--listen {listen} is a wildcard, which nobody can reach by that name: also give "
            f"--advertise with the address other hosts reach this {daemon} by, e.g. "
            f"--advertise tcp://192.0.2.10:{port} (or just the host: --advertise 192.0.2.10)")


def insecure_option(daemon: str) -> Callable[[F], F]:
    """``--insecure``: no CURVE on the tcp listener. Loud, because anyone who reaches the port
    then owns the host."""
    return click.option(
        "--insecure", is_flag=True,
        help=f"Serve tcp without CURVE: no authentication, no encryption; anyone who reaches "
             f"the port controls this {daemon}. Only on a network you trust completely.")


def warn_insecure(daemon: str, listen: str) -> None:
    click.secho(f"WARNING: this {daemon} serves {listen} with NO authentication and NO "
                "encryption (--insecure): anyone who can reach it can run anything as root "
                "here.", fg="red", bold=True, err=True)


def ipc_option(default_help: str) -> Callable[[F], F]:
    return click.option(
        "--ipc", default="", metavar="PATH|none",
        help=f"Also serve this root-only unix socket (mode 0660, group shoal if it exists), "
             f"which the CLI on this host uses without keys; 'none' for no socket "
             f"(default: {default_help}).")
