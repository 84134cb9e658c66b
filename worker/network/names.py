"""The names the embedded resolver answers: one table of endpoints (network, container, name,
job, aliases, address), fed from two sides: this worker's own running containers
(``update_local``, whole, whenever they change) and the endpoints of other hosts on shared
networks (``update_remote``, whole, from the overlay's list). Pure: no sockets, no files.

A container sees only the names on the networks it is on itself, as in Docker, and the
names of the cluster's containers on their nodes' own (host) network, which are on no network
of their own (``EVERY_NETWORK``): those answer with their node's address on any network. A name is a
container's name, its id's first 12 characters, one of its aliases on that network, or its
job's name (every running replica); several answers come back rotated by one per question,
so clients that take the first address spread over the replicas.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

SHORT_ID = 12
EVERY_NETWORK = ""  # an entry's network: answered on whatever networks the asker is on


@dataclass(frozen=True, slots=True)
class NameEntry:
    """One container's endpoint on one network, as the resolver names it."""

    network: str
    container_id: str
    ip: str
    name: str = ""
    job: str = ""
    aliases: tuple[str, ...] = ()

    def names(self) -> set[str]:
        """Every name this endpoint answers to (lower case, no trailing dot)."""
        found = {self.name, self.job, *self.aliases}
        if len(self.container_id) > SHORT_ID:
            found.add(self.container_id[:SHORT_ID])
        return {canonical(n) for n in found if n}


def canonical(name: str) -> str:
    """A name as the table keys it: DNS names compare without case and a root dot."""
    return name.rstrip(".").lower()


@dataclass(slots=True)
class NameTable:
    """The endpoints the resolver knows, indexed by (network, name) and by address."""

    _local: tuple[NameEntry, ...] = ()
    _remote: tuple[NameEntry, ...] = ()
    _by_name: dict[tuple[str, str], list[NameEntry]] = field(default_factory=dict)
    _by_ip: dict[tuple[str, str], NameEntry] = field(default_factory=dict)
    _networks: dict[str, frozenset[str]] = field(default_factory=dict)
    _turns: dict[tuple[str, ...], int] = field(default_factory=dict)

    def update_local(self, entries: Iterable[NameEntry]) -> None:
        """This worker's running containers' endpoints, all of them (replacing the last)."""
        self._local = tuple(entries)
        self._reindex()

    def update_remote(self, entries: Iterable[NameEntry]) -> None:
        """Other hosts' endpoints on networks shared with this one, all of them."""
        self._remote = tuple(entries)
        self._reindex()

    def _reindex(self) -> None:
        by_name: dict[tuple[str, str], list[NameEntry]] = {}
        by_ip: dict[tuple[str, str], NameEntry] = {}
        for entry in (*self._local, *self._remote):
            for name in entry.names():
                by_name.setdefault((entry.network, name), []).append(entry)
            by_ip.setdefault((entry.network, entry.ip), entry)
        networks: dict[str, set[str]] = {}
        for entry in self._local:
            networks.setdefault(entry.container_id, set()).add(entry.network)
        self._by_name = by_name
        self._by_ip = by_ip
        self._networks = {c: frozenset(n) for c, n in networks.items()}
        # A rotation state for names that are gone would only grow.
        if len(self._turns) > 4 * len(by_name) + 64:
            self._turns.clear()

    def networks_of(self, container_id: str) -> frozenset[str]:
        """The networks a local container is on (none once it stopped)."""
        return self._networks.get(container_id, frozenset())

    def lookup(self, name: str, networks: Iterable[str]) -> list[str] | None:
        """The IPv4 addresses ``name`` has on ``networks`` (rotated by one each call), or
        None when no endpoint there has that name (the caller forwards the question)."""
        key = canonical(name)
        found: list[str] = []
        for network in [*sorted(networks), EVERY_NETWORK]:
            for entry in self._by_name.get((network, key), ()):
                if entry.ip not in found:
                    found.append(entry.ip)
        if not found:
            return None
        if len(found) > 1:
            found.sort(key=lambda ip: ipaddress.IPv4Address(ip))
            turn_key = (key, *sorted(networks))
            turn = self._turns.get(turn_key, 0)
            self._turns[turn_key] = turn + 1
            shift = turn % len(found)
            found = found[shift:] + found[:shift]
        return found

    def reverse(self, ip: str, networks: Iterable[str]) -> str | None:
        """The name of the endpoint holding ``ip`` on one of ``networks``, if any."""
        for network in [*sorted(networks), EVERY_NETWORK]:
            entry = self._by_ip.get((network, ip))
            if entry is not None:
                return entry.name or entry.container_id[:SHORT_ID]
        return None

    def __len__(self) -> int:
        return len(self._local) + len(self._remote)
