"""The engine's verbs that change a container in place: pause and unpause (the freezer),
rename, update (limits and restart policy), and the resource samples ``stats`` reads.

Docker's rules: only a running container pauses, only a paused one unpauses; a new name is
unique on the worker; an update changes only what it is given, in the cgroups at once when the
container runs and in its spec for every later start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from protocol.errors import Conflict, InvalidArgument
from protocol.messages import UpdateContainer
from protocol.observed import ResourceSample
from protocol.updates import updated_spec
from worker.engine.records import EngineContainer

if TYPE_CHECKING:
    from worker.engine.engine import Engine

SAMPLED = ("running", "paused")  # the states with cgroups to read


class LiveChanges:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def pause(self, ref: str) -> EngineContainer:
        engine = self.engine
        record = engine.find(ref)
        async with engine._lock(record.id):
            status = record.state.status
            if status == "paused":
                raise Conflict(f"Container {record.id} is already paused")
            if status != "running":
                raise Conflict(f"Container {record.id} is not running")
            await engine.driver.pause(record)
            self._set_status(record, "running", "paused")
            await engine.disk.durable()
        engine._announce("container", "pause", record.id, name=record.name)
        return record

    async def unpause(self, ref: str) -> EngineContainer:
        engine = self.engine
        record = engine.find(ref)
        async with engine._lock(record.id):
            if record.state.status != "paused":
                raise Conflict(f"Container {record.id} is not paused")
            await engine.driver.resume(record)
            self._set_status(record, "paused", "running")
            engine.health.begin(record, fresh=False)  # its checks go on where they were
            await engine.disk.durable()
        engine._announce("container", "unpause", record.id, name=record.name)
        return record

    async def thaw_to_stop(self, record: EngineContainer) -> None:
        """After a stopping signal to a paused container: thaw it so that the signal is
        acted on (Docker's stop and kill of a paused container)."""
        if record.state.status == "paused":
            await self.engine.driver.resume(record)
            self._set_status(record, "paused", "running")

    def _set_status(self, record: EngineContainer, was: str, status: str) -> None:
        """``status`` unless the record left ``was`` while the freezer was written (its exit,
        which the supervisor has recorded, stands)."""
        if record.state.status != was:
            return
        record.state = msgspec.structs.replace(record.state, status=status)
        self.engine.disk.save(record)
        self.engine._notify()

    async def rename(self, ref: str, new_name: str) -> EngineContainer:
        engine = self.engine
        record = engine.find(ref)
        name = new_name.lstrip("/")
        from worker.engine.engine import NAME_RE  # the one rule of a name, create's

        if not NAME_RE.match(name):
            raise InvalidArgument(f"Invalid container name ({name}), only "
                                  "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        async with engine._lock(record.id):
            # Checked and taken with no await between: two renames to one name cannot both
            # find it free.
            if name == record.name:
                raise InvalidArgument("Renaming a container with the same name as its current "
                                      "name")
            taken = next((r for r in engine.records.values() if r.name == name), None)
            if taken is not None:
                raise Conflict(f'Conflict. The container name "/{name}" is already in use by '
                               f"container \"{taken.id}\". You have to remove (or rename) "
                               "that container to be able to reuse that name.",
                               details={"name": name})
            old = record.name
            record.name = name
            engine.disk.save(record)
            await engine.disk.durable()
            await engine.driver.renamed(record)
        engine._announce("container", "rename", record.id, name=name, oldName=f"/{old}")
        return record

    async def update(self, request: UpdateContainer) -> EngineContainer:
        engine = self.engine
        record = engine.find(request.id)
        async with engine._lock(record.id):
            spec = record.spec
            record.spec = updated_spec(spec, request)
            if record.spec.resources != spec.resources:
                try:
                    await engine.driver.change_limits(record, spec.resources)
                except BaseException:
                    record.spec = spec
                    raise
            engine.disk.save(record)
            await engine.disk.durable()
        engine._announce("container", "update", record.id, name=record.name)
        return record

    async def sample(self, ref: str) -> tuple[EngineContainer, ResourceSample]:
        """The container and its use now (all zero when it does not run, as Docker's)."""
        record = self.engine.find(ref)
        if record.state.status not in SAMPLED:
            return record, ResourceSample()
        return record, await self.engine.driver.sample(record)

