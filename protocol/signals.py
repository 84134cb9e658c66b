"""Signals as requests name them: a number, "KILL" or "SIGKILL". Pure."""

from __future__ import annotations

import signal

from protocol.errors import InvalidArgument


def parse_signal(value: str | int) -> int:
    """The signal number; InvalidArgument for an unknown name or a number out of range."""
    if isinstance(value, int) or value.isdigit():
        number = int(value)
    else:
        name = value.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        try:
            number = int(signal.Signals[name])
        except KeyError:
            raise InvalidArgument(f"unknown signal {value!r}") from None
    if not 0 < number < 65:
        raise InvalidArgument(f"signal {value!r} is out of range")
    return number
