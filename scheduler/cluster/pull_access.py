"""The registry access a run came with, handed to the workers that may pull its image.

``shoal run``/``create`` through a scheduler send how the run's image's registry is reached
(credentials from the user's login, a CA, ``--insecure-registry``) with the request, as
Swarm's ``--with-registry-auth`` does. The leader keeps them in memory only, per container,
and attaches them to every ``Assign`` of that container as it leaves for a worker (a restart
on another node needs them again): a worker that lacks the image pulls with them and forgets
them. They are dropped when the container is removed, and never shared with another run (one
user's login never pulls another's image). A global job's replicas are made later, as nodes
join, so its access is kept per job until the job is removed or submitted again without any;
a container is that job's replica when the leader's records say so (``global_job_of``), never
because of a label or a name, which any run may give itself. Nothing is written to the store:
after a failover the new leader knows none, and its workers pull anonymously (or through its
store).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable

import msgspec

from protocol.messages import Assign, Message, RegistryOptions

MAX_CONTAINERS = 100_000  # containers remembered; the oldest are forgotten beyond


class PullAccess:
    """``RegistryOptions`` per container id, and per global job, in memory."""

    def __init__(self, limit: int = MAX_CONTAINERS,
                 global_job_of: Callable[[str], str | None] = lambda _cid: None) -> None:
        """``global_job_of``: the global job a container id is a replica of, if it is one."""
        self.limit = limit
        self.global_job_of = global_job_of
        self._by_container: collections.OrderedDict[str, RegistryOptions] = \
            collections.OrderedDict()
        self._by_global_job: collections.OrderedDict[str, RegistryOptions] = \
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

    def remember_global_job(self, job: str,
                            options: RegistryOptions | None) -> Callable[[], None]:
        """Keep ``options`` for every replica of global job ``job``, now and as nodes join,
        in place of what an earlier submission of it brought (None: the job pulls without
        any from now on); what undoes it if the submission fails."""
        previous = self._by_global_job.pop(job, None)
        if options is not None:
            self._by_global_job[job] = options
            while len(self._by_global_job) > self.limit:
                self._by_global_job.popitem(last=False)

        def undo() -> None:
            self._by_global_job.pop(job, None)
            if previous is not None:
                self._by_global_job[job] = previous

        return undo

    def forget(self, container_id: str) -> None:
        """A removed container's access, or a removed global job's (the name is the job's)."""
        self._by_container.pop(container_id, None)
        self._by_global_job.pop(container_id, None)

    def __len__(self) -> int:
        return len(self._by_container) + len(self._by_global_job)

    def attach(self, message: Message) -> Message:
        """An ``Assign`` with its container's access; anything else as it is."""
        if not isinstance(message, Assign) or message.registry is not None:
            return message
        options = self._by_container.get(message.container_id)
        if options is None and self._by_global_job:
            job = self.global_job_of(message.container_id)
            options = None if job is None else self._by_global_job.get(job)
        if options is None:
            return message
        return msgspec.structs.replace(message, registry=options)
