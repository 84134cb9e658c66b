"""What a list of cgroup v1 device rules amounts to: the kernel's own reduction of
``devices.allow``/``devices.deny`` writes to a default and a list of exceptions, and its check
of one access against them.

cgroup v2 has no device files; a device filter program (``worker.runtime.device_filter``) is
built from the policy this module computes from the very lines the v1 controller is given
(``cgroups._device_writes``), so that a container is confined alike on both.

The kernel's rules (security/device_cgroup.c), which differ from "the last matching rule
wins": writing ``a`` resets the default and drops every exception; a rule whose sign is the
default's removes access bits from the exceptions with exactly its type, major and minor (a
wildcard is only equal to a wildcard); a rule of the other sign adds an exception (merged into
one with the same type, major and minor). A check on a default-deny cgroup needs one exception
that covers the whole access asked for; on a default-allow cgroup, any exception that shares a
bit with the access refuses it.
"""

from __future__ import annotations

from typing import NamedTuple

# The access bits, as the kernel numbers them (and as struct bpf_cgroup_dev_ctx carries them
# in the high half of access_type).
ACCESS_MKNOD = 1
ACCESS_READ = 2
ACCESS_WRITE = 4
_ACCESS_LETTERS = (("r", ACCESS_READ), ("w", ACCESS_WRITE), ("m", ACCESS_MKNOD))

WILDCARD = 0xFFFFFFFF  # the kernel's ~0: "*" as a major or minor (and the number itself)

# Named tuples, not dataclasses: this module is imported by a command that starts a container,
# and a dataclass costs ten times as much to define.


class DeviceException(NamedTuple):
    """One exception to the default: a device type ("c" or "b"), major and minor (WILDCARD
    for any), and the access bits it is about."""

    kind: str
    major: int
    minor: int
    access: int

    def covers(self, kind: str, major: int, minor: int) -> bool:
        return (self.kind == kind and self.major in (WILDCARD, major)
                and self.minor in (WILDCARD, minor))

    def line(self) -> str:
        """As ``devices.list`` shows it."""
        numbers = f"{_number(self.major)}:{_number(self.minor)}"
        return f"{self.kind} {numbers} {access_letters(self.access)}"


class DevicePolicy(NamedTuple):
    """A device cgroup's state: its default and the exceptions to it, in the order made."""

    default_allow: bool
    exceptions: tuple[DeviceException, ...]

    def permits(self, kind: str, major: int, minor: int, access: int) -> bool:
        """Whether opening (``access`` READ and/or WRITE) or making (MKNOD) the device of type
        ``kind`` ("c" or "b") is allowed, as the kernel decides it."""
        matching = [ex for ex in self.exceptions if ex.covers(kind, major, minor)]
        if self.default_allow:
            return not any(access & ex.access for ex in matching)
        return any(not access & ~ex.access for ex in matching)

    def listing(self) -> list[str]:
        """The lines of ``devices.list`` (a default-allow cgroup shows only ``a *:* rwm``)."""
        if self.default_allow:
            return ["a *:* rwm"]
        return [ex.line() for ex in self.exceptions]


def access_bits(letters: str) -> int:
    bits = 0
    for letter in letters:
        bit = dict(_ACCESS_LETTERS).get(letter)
        if bit is None:
            raise ValueError(f"device access {letters!r}: {letter!r} is none of r, w and m")
        bits |= bit
    return bits


def access_letters(bits: int) -> str:
    return "".join(letter for letter, bit in _ACCESS_LETTERS if bits & bit)


def _number(value: int) -> str:
    return "*" if value == WILDCARD else str(value)


def _parse_number(text: str, line: str) -> int:
    if text == "*":
        return WILDCARD
    if not text.isdigit() or int(text) > WILDCARD:
        raise ValueError(f"device rule {line!r}: {text!r} is not a device number")
    return int(text)


ROOT = DevicePolicy(True, ())  # a new device cgroup's state: the root's


def reduce(rules: list[tuple[bool, str]], start: DevicePolicy = ROOT) -> DevicePolicy:
    """The state of a device cgroup in state ``start`` (by default a new one) after writing
    each ``(allow, line)`` in order to ``devices.allow`` (True) or ``devices.deny``. A line is
    ``a`` or ``TYPE MAJOR:MINOR ACCESS``; a malformed one raises ValueError."""
    default_allow = start.default_allow
    exceptions = list(start.exceptions)
    for allow, line in rules:
        if line.startswith("a"):  # the kernel reads nothing after the "a"
            default_allow = allow
            exceptions = []
            continue
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] not in ("c", "b") or parts[1].count(":") != 1:
            raise ValueError(f"device rule {line!r}: not 'a' nor 'TYPE MAJOR:MINOR ACCESS'")
        major, minor = (_parse_number(n, line) for n in parts[1].split(":"))
        rule = DeviceException(parts[0], major, minor, access_bits(parts[2]))
        same = [i for i, ex in enumerate(exceptions)
                if (ex.kind, ex.major, ex.minor) == (rule.kind, rule.major, rule.minor)]
        if allow == default_allow:  # takes access away from the exactly equal exceptions
            for i in same:
                exceptions[i] = exceptions[i]._replace(access=exceptions[i].access & ~rule.access)
            exceptions = [ex for ex in exceptions if ex.access]
        elif same:
            for i in same:
                exceptions[i] = exceptions[i]._replace(access=exceptions[i].access | rule.access)
        else:
            exceptions.append(rule)
    return DevicePolicy(default_allow, tuple(exceptions))


def parse_listing(lines: list[str]) -> DevicePolicy | None:
    """A default-deny cgroup's state from its ``devices.list``; None for a default-allow one,
    whose listing (``a *:* rwm`` alone) does not show its exceptions."""
    if lines == ["a *:* rwm"]:
        return None
    return reduce([(False, "a")] + [(True, line) for line in lines])


def transition(current: DevicePolicy, target: DevicePolicy) -> list[tuple[bool, str]] | None:
    """Writes that take a default-deny cgroup from ``current`` to ``target`` live, never
    allowing between them an access that neither allows, and refusing one that both allow only
    where no order can avoid it; None when either default is allow (only writing ``a``, which
    drops every exception at once, changes a default).

    Every exception keeps, at every moment, a subset of its access in one of the two policies,
    so nothing is allowed that neither allows. Gains come first and losses last, so while
    exceptions only gain or only lose access (a device added or removed, the usual update),
    nothing both allow is ever refused. An exception that gains some access and loses other
    access is first cut to what both give it, then given the rest: an access that the two
    policies allow through different such exceptions is refused between those writes, the
    price of never allowing their sum (which neither may allow)."""
    if current.default_allow or target.default_allow:
        return None
    had = {(ex.kind, ex.major, ex.minor): ex.access for ex in current.exceptions}
    wants = {(ex.kind, ex.major, ex.minor): ex.access for ex in target.exceptions}
    gains = [(key, access & ~had.get(key, 0)) for key, access in wants.items()]
    losses = [(key, access & ~wants.get(key, 0)) for key, access in had.items()]
    gained = {key for key, bits in gains if bits}
    lost = {key for key, bits in losses if bits}
    mixed = gained & lost

    def writes(allow: bool, changes: list[tuple[tuple[str, int, int], int]],
               keys: set[tuple[str, int, int]], mixed_ones: bool) -> list[tuple[bool, str]]:
        return [(allow, DeviceException(*key, bits).line()) for key, bits in changes
                if key in keys and (key in mixed) == mixed_ones]

    return (writes(True, gains, gained, False) + writes(False, losses, lost, True)
            + writes(True, gains, gained, True) + writes(False, losses, lost, False))
