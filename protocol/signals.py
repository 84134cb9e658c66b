"""Signals as requests name them: a number, "KILL" or "SIGKILL". Pure.

The numbers are Linux's (x86, arm), which is what container images and the wire speak,
whatever host the code runs on: a Windows worker has no ``signal.SIGKILL`` and still takes
``kill -s KILL`` (its process driver maps the numbers onto what Windows can do).
"""

from __future__ import annotations

from protocol.errors import InvalidArgument

SIGHUP = 1
SIGINT = 2
SIGQUIT = 3
SIGKILL = 9
SIGTERM = 15

# Linux's numbering, by name; real-time signals go by number.
NUMBERS: dict[str, int] = {
    "SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGILL": 4, "SIGTRAP": 5, "SIGABRT": 6,
    "SIGIOT": 6, "SIGBUS": 7, "SIGFPE": 8, "SIGKILL": 9, "SIGUSR1": 10, "SIGSEGV": 11,
    "SIGUSR2": 12, "SIGPIPE": 13, "SIGALRM": 14, "SIGTERM": 15, "SIGSTKFLT": 16,
    "SIGCHLD": 17, "SIGCONT": 18, "SIGSTOP": 19, "SIGTSTP": 20, "SIGTTIN": 21, "SIGTTOU": 22,
    "SIGURG": 23, "SIGXCPU": 24, "SIGXFSZ": 25, "SIGVTALRM": 26, "SIGPROF": 27,
    "SIGWINCH": 28, "SIGIO": 29, "SIGPOLL": 29, "SIGPWR": 30, "SIGSYS": 31,
    "SIGRTMIN": 34, "SIGRTMAX": 64,
}


def parse_signal(value: str | int) -> int:
    """The signal number; InvalidArgument for an unknown name or a number out of range."""
    if isinstance(value, int) or value.isdigit():
        number = int(value)
    else:
        name = value.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        try:
            number = NUMBERS[name]
        except KeyError:
            raise InvalidArgument(f"unknown signal {value!r}") from None
    if not 0 < number < 65:
        raise InvalidArgument(f"signal {value!r} is out of range")
    return number
