"""The requests the leader serves, as work items staged in a commit cycle.

Each item checks its request against the staged records (so two requests in one cycle see each
other), stages its changes, and answers once the commit says what became of its keys. These are
the container and app items; the node items are ``node_work``'s.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import structlog

from protocol.errors import Conflict, InvalidArgument, NotFound, ShoalError, Unavailable
from protocol.messages import (
    ContainerCreated,
    Message,
    Ok,
    Revoke,
    Submitted,
    UpdateContainer,
)
from protocol.observed import ContainerState
from protocol.specs import AppSpec, ContainerSpec
from protocol.updates import updated_spec
from scheduler.cluster.cycle import LeaderCycle, Work
from scheduler.cluster.overlay_endpoints import assignment
from scheduler.placement import Explanation, validate_spec
from scheduler.reconcile import LIVE, Orphan, Reschedule
from scheduler.store import AppRecord, ContainerRecord
from scheduler.store.keys import check_id
from scheduler.store.records import DesiredState

log = structlog.get_logger("shoal.scheduler")

replace = msgspec.structs.replace


def _first_error(cycle: LeaderCycle, keys: Sequence[tuple[str, str]]) -> ShoalError | None:
    for kind, record_id in keys:
        error = cycle.failed.get((kind, record_id))  # type: ignore[arg-type]
        if error is not None:
            return error
    return None


def stage_node_loss(cycle: LeaderCycle, loss: Reschedule | Orphan, why: str) -> None:
    """Stage what the reconciler decided for a container whose node was lost (``why``)."""
    record = cycle.containers.get(loss.container_id)
    if record is None:
        return
    if isinstance(loss, Orphan):
        cycle.put_container(loss.container_id, replace(
            record, schedule_state="orphaned", placement=loss.reason))
        return
    log.info("rescheduling", container_id=loss.container_id, from_node=loss.from_node,
             generation=loss.generation)
    cycle.put_container(loss.container_id, replace(
        record, schedule_state="pending", node_id="", generation=loss.generation,
        observed=None, restarts=record.restarts + 1,
        placement=f"rescheduled: node {loss.from_node} {why}"))
    cycle.place[loss.container_id] = None


def _free_id(cycle: LeaderCycle, cid: str) -> None:
    """Refuse an id a container holds. A removed container's record, still waiting for its
    node to stop it, does not hold its id: the new record replaces it, under generations above
    its own (``LeaderCycle.first_generation``), so the old copy is stopped as stale."""
    check_id(cid)
    record = cycle.containers.get(cid)
    if record is not None and record.desired != "removed":
        raise Conflict(f"a container named {cid} already exists", details={"id": cid})
    job = cycle.apps.get(cid)
    if job is not None and job.global_job:  # ``rm NAME`` removes the job: one name, one thing
        raise Conflict(f"a global job named {cid} exists", details={"id": cid})


def stage_removal(cycle: LeaderCycle, cid: str, record: ContainerRecord, reason: str) -> None:
    """Mark a container removed and revoke it where it runs; deleted once no node has it."""
    cycle.put_container(cid, replace(record, desired="removed", schedule_state="removed"))
    if record.node_id:
        cycle.send(record.node_id, Revoke(container_id=cid, generation=record.generation,
                                          reason=reason), ("containers", cid))
    cycle.recheck.add(cid)


def _refusal(why: Explanation) -> Unavailable:
    return Unavailable(why.message, details={"placement": why.details()[:4096]})


class Submit(Work):
    """New containers (a job's replicas, or one created container): placed, then committed."""

    def __init__(self, ids: list[str], spec: ContainerSpec, *, start: bool, job: bool) -> None:
        super().__init__()
        self.ids = ids
        self.spec = spec
        self.start = start
        self.job = job
        self.refusal: Explanation | None = None
        self.refused_ids: list[str] = []

    def stage(self, cycle: LeaderCycle) -> None:
        validate_spec(self.spec)
        for cid in self.ids:
            _free_id(cycle, cid)
        desired: DesiredState = "running" if self.start else "stopped"
        for cid in self.ids:
            # One spec object for every replica: placement compiles a job's class once.
            cycle.put_container(cid, ContainerRecord(
                spec=self.spec, desired=desired, created_at=cycle.now,
                generation=cycle.first_generation(cid)))
            cycle.place[cid] = self

    def refused(self, cycle: LeaderCycle, container_id: str, why: Explanation) -> None:
        self.refusal = why
        self.refused_ids.append(container_id)
        cycle.delete_container(container_id)  # a refused submission records nothing

    def finish(self, cycle: LeaderCycle) -> Message | None:
        placed = [cid for cid in self.ids if cid not in self.refused_ids]
        committed = [cid for cid in placed if cycle.ok(("containers", cid))]
        error = _first_error(cycle, [("containers", cid) for cid in placed])
        if not self.job:
            if self.refusal is not None:
                raise _refusal(self.refusal)
            if error is not None:
                raise error
            return ContainerCreated(id=self.ids[0])
        notes = []
        if self.refusal is not None:
            notes.append(f"{len(self.refused_ids)} of {len(self.ids)} not placed: "
                         f"{self.refusal.message}")
        if error is not None:
            notes.append(f"{len(placed) - len(committed)} not committed: {error}")
        return Submitted(ids=committed, refused="; ".join(notes)[:65536])


def existing(cycle: LeaderCycle, cid: str) -> ContainerRecord:
    record = cycle.containers.get(cid)
    if record is None or record.desired == "removed":
        raise NotFound(f"no container {cid} in the cluster", details={"id": cid})
    return record


class Start(Work):
    """Start a created or stopped container (placing it again if it no longer has a node)."""

    def __init__(self, cid: str) -> None:
        super().__init__()
        self.cid = cid
        self.before: ContainerRecord | None = None
        self.refusal: Explanation | None = None

    def stage(self, cycle: LeaderCycle) -> None:
        record = existing(cycle, self.cid)
        if record.desired == "running" and (record.schedule_state in LIVE
                                            or record.schedule_state == "pending"):
            return
        self.before = record
        if record.schedule_state in LIVE and record.node_id:
            cycle.put_container(self.cid, replace(record, desired="running"))
            cycle.send(record.node_id, assignment(self.cid, record), ("containers", self.cid))
            return
        cycle.put_container(self.cid, replace(record, desired="running",
                                              schedule_state="pending", node_id="",
                                              observed=None))
        cycle.place[self.cid] = self

    def refused(self, cycle: LeaderCycle, container_id: str, why: Explanation) -> None:
        self.refusal = why
        if self.before is not None:
            cycle.containers.put(container_id, self.before)

    def finish(self, cycle: LeaderCycle) -> Message | None:
        if self.refusal is not None:
            raise _refusal(self.refusal)
        error = cycle.error(("containers", self.cid))
        if error is not None:
            raise error
        return Ok()


class Stop(Work):
    """Stop a container: desired stopped in etcd, then its worker is told by Revoke."""

    def __init__(self, cid: str) -> None:
        super().__init__()
        self.cid = cid

    def stage(self, cycle: LeaderCycle) -> None:
        record = existing(cycle, self.cid)
        if record.desired == "stopped" and record.schedule_state not in LIVE:
            return
        if record.schedule_state in LIVE and record.node_id:
            state = replace(record.observed or ContainerState(), status="exited",
                            finished_at=cycle.now)
            cycle.put_container(self.cid, replace(record, desired="stopped",
                                                  schedule_state="exited", observed=state))
            cycle.send(record.node_id, Revoke(container_id=self.cid,
                                              generation=record.generation,
                                              reason="stopped by request"),
                       ("containers", self.cid))
        else:
            cycle.put_container(self.cid, replace(record, desired="stopped",
                                                  schedule_state="exited"))

    def finish(self, cycle: LeaderCycle) -> Message | None:
        error = cycle.error(("containers", self.cid))
        if error is not None:
            raise error
        return Ok()


class Remove(Work):
    """Remove a container: marked removed, revoked where it runs, deleted once no node has it.
    The name of a global job removes the job and every replica (as ``docker service rm``); a
    replica alone is not removed (the job would make it again)."""

    def __init__(self, cid: str, force: bool) -> None:
        super().__init__()
        self.cid = cid
        self.force = force
        self.key: tuple[str, str] = ("containers", cid)

    def stage(self, cycle: LeaderCycle) -> None:
        job = cycle.apps.get(self.cid)
        if job is not None and job.global_job:
            self.key = ("apps", self.cid)
            for rid in job.container_ids:
                replica = cycle.containers.get(rid)
                if replica is not None and replica.desired != "removed":
                    stage_removal(cycle, rid, replica, f"global job {self.cid} removed")
            cycle.apps.delete(self.cid)
            return
        record = existing(cycle, self.cid)
        owner = cycle.apps.get(record.app) if record.app else None
        if owner is not None and owner.global_job:
            raise Conflict(f"{self.cid} is a replica of global job {record.app}: remove the "
                           f"job (rm {record.app})", details={"id": self.cid})
        live = record.schedule_state in LIVE and bool(record.node_id)
        if live and record.desired == "running" and not self.force:
            raise Conflict(f"container {self.cid} is running: stop it first or force removal",
                           details={"id": self.cid})
        stage_removal(cycle, self.cid, record, "removed by request")

    def finish(self, cycle: LeaderCycle) -> Message | None:
        error = _first_error(cycle, [self.key])
        if error is not None:
            raise error
        return Ok()


class UpdateSpec(Work):
    """Keep a ``container.update`` in the container's record: the limits placement counts and
    the spec a later placement runs it with."""

    def __init__(self, update: UpdateContainer) -> None:
        super().__init__()
        self.update = update

    def stage(self, cycle: LeaderCycle) -> None:
        cid = self.update.id
        record = existing(cycle, cid)
        cycle.put_container(cid, replace(record, spec=updated_spec(record.spec, self.update)))

    def finish(self, cycle: LeaderCycle) -> Message | None:
        error = cycle.error(("containers", self.update.id))
        if error is not None:
            raise error
        return Ok()

def app_ids(app: AppSpec) -> list[str]:
    """APP.SERVICE for a named container of the app, APP.N (its position) for an unnamed one."""
    ids = [f"{app.name}.{spec.name or index}"
           for index, spec in enumerate(app.containers, start=1)]
    seen: set[str] = set()
    for cid in ids:
        check_id(cid)
        if cid in seen:
            raise InvalidArgument(f"app {app.name}: two containers would be named {cid}",
                                  details={"id": cid})
        seen.add(cid)
    return ids


class SubmitAppWork(Work):
    """An app's containers placed in one batch with its ``AppRecord``. With ``all_or_nothing``
    one refusal records nothing at all; otherwise what fits is placed and the rest reported."""

    def __init__(self, app: AppSpec) -> None:
        super().__init__()
        self.app = app
        self.ids: list[str] = []
        self.refusal: Explanation | None = None
        self.refused_ids: list[str] = []

    def stage(self, cycle: LeaderCycle) -> None:
        check_id(self.app.name)
        if not self.app.containers:
            raise InvalidArgument(f"app {self.app.name} has no containers")
        if cycle.apps.get(self.app.name) is not None:
            raise Conflict(f"an app named {self.app.name} already exists",
                           details={"app": self.app.name})
        self.ids = app_ids(self.app)
        for cid, spec in zip(self.ids, self.app.containers, strict=True):
            validate_spec(spec)
            _free_id(cycle, cid)
        for cid, spec in zip(self.ids, self.app.containers, strict=True):
            cycle.put_container(cid, ContainerRecord(spec=spec, app=self.app.name,
                                                     created_at=cycle.now,
                                                     generation=cycle.first_generation(cid)))
            cycle.place[cid] = self
        cycle.apps.put(self.app.name, AppRecord(spec=self.app, container_ids=self.ids))

    def refused(self, cycle: LeaderCycle, container_id: str, why: Explanation) -> None:
        if self.refusal is None:
            self.refusal = why
        self.refused_ids.append(container_id)
        if self.app.all_or_nothing:
            for cid in self.ids:
                if cycle.containers.get(cid) is not None:
                    cycle.delete_container(cid)
            cycle.apps.delete(self.app.name)
            return
        cycle.delete_container(container_id)
        kept = [cid for cid in self.ids if cid not in self.refused_ids]
        cycle.apps.put(self.app.name, AppRecord(spec=self.app, container_ids=kept))

    def finish(self, cycle: LeaderCycle) -> Message | None:
        if self.app.all_or_nothing and self.refusal is not None:
            raise Unavailable(
                f"app {self.app.name} not submitted (all or nothing): "
                f"{len(self.refused_ids)} of {len(self.ids)} containers cannot be placed: "
                f"{self.refusal.message}",
                details={"placement": self.refusal.details()[:4096],
                         "refused": ",".join(self.refused_ids)[:4096]})
        error = cycle.error(("apps", self.app.name))
        if error is not None:
            raise error
        placed = [cid for cid in self.ids if cid not in self.refused_ids]
        committed = [cid for cid in placed if cycle.ok(("containers", cid))]
        notes = []
        if self.refusal is not None:
            notes.append(f"{len(self.refused_ids)} of {len(self.ids)} not placed: "
                         f"{self.refusal.message}")
        if len(committed) != len(placed):
            notes.append(f"{len(placed) - len(committed)} not committed")
        return Submitted(ids=committed, refused="; ".join(notes)[:65536])


class CreateTogether(Work):
    """Containers created together, none started, placed as one all-or-nothing app (the
    leader places them with ``PlacementEngine.place_app``): one refusal records nothing, and
    the answer names the container that found no node, and why."""

    def __init__(self, ids: list[str], specs: list[ContainerSpec]) -> None:
        super().__init__()
        self.ids = ids
        self.specs = specs
        self.refusal: Explanation | None = None
        self.refused_ids: list[str] = []

    def stage(self, cycle: LeaderCycle) -> None:
        for cid, spec in zip(self.ids, self.specs, strict=True):
            validate_spec(spec)
            _free_id(cycle, cid)
        for cid, spec in zip(self.ids, self.specs, strict=True):
            cycle.put_container(cid, ContainerRecord(spec=spec, desired="stopped",
                                                     created_at=cycle.now,
                                                     generation=cycle.first_generation(cid)))
            cycle.place[cid] = self

    APP = "together"  # the app's name for the engine (its note names it; ours does not)

    def as_app(self) -> AppSpec:
        """The containers as the placement engine takes an all-or-nothing app."""
        return AppSpec(name=self.APP, containers=self.specs, all_or_nothing=True)

    def refused(self, cycle: LeaderCycle, container_id: str, why: Explanation) -> None:
        if self.refusal is None:
            # The engine's note names the containers that found no node (those placed with
            # them are refused too): those are the refused ones, and the note says no more.
            prefix = f"app {self.APP} is all-or-nothing and "
            self.refusal = why
            if why.note.startswith(prefix):
                note = why.note.removeprefix(prefix)
                self.refusal = why.with_note(note)
                self.refused_ids = note.removesuffix(" found no node:").split(", ")
        if container_id not in self.refused_ids and not self.refusal.note:
            self.refused_ids.append(container_id)
        for cid in self.ids:
            if cycle.containers.get(cid) is not None:
                cycle.delete_container(cid)

    def finish(self, cycle: LeaderCycle) -> Message | None:
        if self.refusal is not None:
            raise Unavailable(
                f"nothing created (all or nothing): {self.refusal.message}",
                details={"placement": self.refusal.details()[:4096],
                         "refused": ",".join(self.refused_ids)[:4096]})
        error = _first_error(cycle, [("containers", cid) for cid in self.ids])
        if error is not None:
            raise error
        return Submitted(ids=self.ids)
