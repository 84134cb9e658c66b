"""The registry access a run came with, handed to the workers that may pull its image.

``shoal run``/``create`` through a scheduler send how the run's image's registry is reached
(credentials from the user's login, a CA, ``--insecure-registry``) with the request, as
Swarm's ``--with-registry-auth`` does. The leader keeps them in memory only, per container,
and attaches them to every ``Assign`` of that container as it leaves for a worker (a restart
on another node needs them again): a worker that lacks the image pulls with them and forgets
them. They are dropped when the container is removed, and never shared with another run (one
user's login never pulls another's image). Nothing is written to the store: after a failover
the new leader knows none, and its workers pull anonymously (or through its store).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable

import msgspec

from protocol.messages import Assign, Message, RegistryOptions

MAX_CONTAINERS = 100_000  # containers remembered; the oldest are forgotten beyond


class PullAccess:
    """``RegistryOptions`` per container id, in memory."""

    def __init__(self, limit: int = MAX_CONTAINERS) -> None:
        self.limit = limit
        self._by_container: collections.OrderedDict[str, RegistryOptions] = \
            collections.OrderedDict()

    def remember(self, container_ids: Iterable[str],
                 options: RegistryOptions) -> Callable[[], None]:
        """Keep ``options`` for the containers (before their submission commits: the
        assignments may leave before it returns); what undoes it if the submission fails
        (an id taken keeps what its container had)."""
        before = {cid: self._by_container.pop(cid, None) for cid in container_ids}
        for cid in before:
            self._by_container[cid] = options
        while len(self._by_container) > self.limit:
            self._by_container.popitem(last=False)

        def undo() -> None:
            for cid, previous in before.items():
                self._by_container.pop(cid, None)
                if previous is not None:
                    self._by_container[cid] = previous

        return undo

    def forget(self, container_id: str) -> None:
        self._by_container.pop(container_id, None)

    def __len__(self) -> int:
        return len(self._by_container)

    def attach(self, message: Message) -> Message:
        """An ``Assign`` with its container's access; anything else as it is."""
        if not isinstance(message, Assign) or message.registry is not None:
            return message
        options = self._by_container.get(message.container_id)
        if options is None:
            return message
        return msgspec.structs.replace(message, registry=options)
