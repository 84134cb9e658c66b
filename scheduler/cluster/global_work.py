"""Global jobs in the leader: a submission (``SubmitGlobal``), and the step that keeps each
job's replicas on every eligible node as the nodes change (``stage_global_jobs``, run in every
cycle where a node joined, changed or left, and in the periodic full cycle). Which nodes take a
replica is ``scheduler.global_jobs``'s decision; removing the job is ``work.Remove``'s.
"""

from __future__ import annotations

import msgspec
import structlog

from protocol.errors import Conflict, InvalidArgument
from protocol.messages import Message, Submitted
from protocol.specs import AppSpec, ContainerSpec
from scheduler.cluster.cycle import LeaderCycle, Work
from scheduler.cluster.work import stage_removal
from scheduler.global_jobs import plan_replicas, replica_id, replica_spec
from scheduler.placement import Explanation, validate_spec
from scheduler.store import AppRecord, ContainerRecord
from scheduler.store.keys import check_id

log = structlog.get_logger("shoal.scheduler")


def stage_global_jobs(cycle: LeaderCycle) -> None:
    """Every global job's replicas brought in line with the nodes."""
    for job in list(cycle.apps.ids()):
        record = cycle.apps.get(job)
        if record is None or not record.global_job:
            continue
        try:
            stage_global_job(cycle, job, None)
        except Exception:  # one job's trouble never stops the cycle or the other jobs
            log.exception("keeping a global job's replicas failed", job=job)


def stage_global_job(cycle: LeaderCycle, job: str, owner: Work | None) -> list[str]:
    """One job's replicas: new ones (placed in this cycle, for ``owner`` if given) on the
    nodes that take one, removals from those that no longer do; the ids made."""
    record = cycle.apps.get(job)
    if record is None:
        return []
    spec = record.spec.containers[0]
    replicas = {cid: cid[len(job) + 1:] for cid in record.container_ids
                if (held := cycle.containers.get(cid)) is not None
                and held.desired != "removed"}
    nodes = [entry.info for nid in cycle.nodes.ids()
             if (entry := cycle.nodes.get(nid)) is not None]
    plan = plan_replicas(job, spec, nodes, replicas)
    for cid in plan.remove:
        held = cycle.containers.get(cid)
        if held is not None:
            log.info("global job replica removed", job=job, container_id=cid)
            stage_removal(cycle, cid, held, f"its node no longer takes global job {job}")
    made = []
    for node_id in plan.create:
        cid = replica_id(job, node_id)
        holder = cycle.containers.get(cid)
        if holder is not None and holder.desired != "removed":
            log.warning("global job replica name taken by another container", job=job,
                        container_id=cid)
            continue  # a container that took the name first keeps it
        try:
            check_id(cid)
        except InvalidArgument:
            log.warning("global job replica id too long", job=job, node_id=node_id)
            continue
        cycle.put_container(cid, ContainerRecord(
            spec=replica_spec(job, spec, node_id), app=job, created_at=cycle.now,
            generation=cycle.first_generation(cid)))
        cycle.place[cid] = owner
        made.append(cid)
    ids = sorted((set(replicas) - set(plan.remove)) | set(made))
    if ids != record.container_ids:
        cycle.apps.put(job, msgspec.structs.replace(record, container_ids=ids))
    return made


class SubmitGlobal(Work):
    """``SubmitJob`` with ``mode: global``: the job kept, its replicas made on every node that
    takes one. The same spec again changes nothing; another spec replaces every replica."""

    def __init__(self, job: str, spec: ContainerSpec) -> None:
        super().__init__()
        self.job = job
        self.spec = spec
        self.waiting: list[str] = []
        self.why: Explanation | None = None

    def stage(self, cycle: LeaderCycle) -> None:
        check_id(self.job)
        validate_spec(self.spec)
        existing = cycle.apps.get(self.job)
        if existing is not None and not existing.global_job:
            raise Conflict(f"an app named {self.job} already exists", details={"app": self.job})
        holder = cycle.containers.get(self.job)
        if holder is not None and holder.desired != "removed":
            raise Conflict(f"a container named {self.job} already exists",
                           details={"id": self.job})
        if existing is not None and existing.spec.containers[0] == self.spec:
            stage_global_job(cycle, self.job, self)
            return
        if existing is not None:
            for cid in existing.container_ids:
                held = cycle.containers.get(cid)
                if held is not None and held.desired != "removed":
                    stage_removal(cycle, cid, held, f"global job {self.job} changed")
        cycle.apps.put(self.job, AppRecord(
            spec=AppSpec(name=self.job, containers=[self.spec]), global_job=True,
            container_ids=existing.container_ids if existing is not None else []))
        stage_global_job(cycle, self.job, self)

    def refused(self, cycle: LeaderCycle, container_id: str, why: Explanation) -> None:
        """A replica that does not fit its node waits there, pending, as Swarm's."""
        self.waiting.append(container_id)
        self.why = why
        cycle.keep_pending(container_id, why)

    def finish(self, cycle: LeaderCycle) -> Message | None:
        error = cycle.error(("apps", self.job))
        if error is not None:
            raise error
        record = cycle.apps.get(self.job)
        ids = [cid for cid in (record.container_ids if record is not None else [])
               if cid not in self.waiting]
        note = f"{len(self.waiting)} waiting for room on their node: {self.why.message}" \
            if self.why is not None else ""
        return Submitted(ids=ids, refused=note[:65536])
