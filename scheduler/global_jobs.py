"""Global jobs: one replica on every eligible node, as Swarm's ``--mode global``. Pure.

A global job is kept as its spec (an ``AppRecord`` with ``global_job``); its replicas are
ordinary container records ``JOB.NODE``, each pinned to its node (a ``node.id`` constraint) and
labelled with the job (``JOB_LABEL``). Whenever the nodes change (a join, a removal, labels,
availability) the leader asks ``plan_replicas`` which replicas to make and which to remove:

- a node takes a replica when placement's static checks pass there: ready and active, the
  platform, the networks its runtime can join, the constraints (resources are placement's
  own: a replica that does not fit waits, pending, with the reason, as Swarm's);
- a replica is removed once its node is gone, drained, or no longer meets the platform,
  network and constraints (its labels changed); a node that is down or paused keeps its
  replica (the reconciler handles a lost node's containers; the replica comes back with it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import msgspec

from protocol.observed import NodeInfo
from protocol.specs import JOB_LABEL, ContainerSpec
from scheduler.placement import ClusterSnapshot, build_pipeline, compile_spec
from scheduler.placement.filters import PlacementCycle

__all__ = ["JOB_LABEL", "ReplicaPlan", "plan_replicas", "replica_id", "replica_spec"]


def replica_id(job: str, node_id: str) -> str:
    return f"{job}.{node_id}"


def replica_spec(job: str, spec: ContainerSpec, node_id: str) -> ContainerSpec:
    """The job's spec as its replica on ``node_id`` runs it: pinned there, labelled."""
    return msgspec.structs.replace(
        spec, name=replica_id(job, node_id), constraints=[*spec.constraints,
                                                          f"node.id=={node_id}"],
        labels={**spec.labels, JOB_LABEL: job})


@dataclass(frozen=True, slots=True)
class ReplicaPlan:
    create: list[str]  # node ids that take a new replica
    remove: list[str]  # replica ids whose node no longer takes it


def plan_replicas(job: str, spec: ContainerSpec, nodes: Iterable[NodeInfo],
                  replicas: Mapping[str, str]) -> ReplicaPlan:
    """``replicas``: the job's live replicas, id → node id."""
    infos = list(nodes)
    cluster = ClusterSnapshot.build(infos)
    request = compile_spec(spec, lenient=True)
    cycle = PlacementCycle(cluster)
    static = build_pipeline().static
    takes: set[str] = set()
    keeps: set[str] = set()
    for node in cluster.nodes:
        refusals = [f.name for f in static if f.relevant(request)
                    and f.check(request, node, cycle) is not None]
        if not refusals:
            takes.add(node.id)
        held = node.availability != "drain"
        if held and all(name == "availability" for name in refusals):
            keeps.add(node.id)
    placed = set(replicas.values())
    return ReplicaPlan(
        create=sorted(node_id for node_id in takes if node_id not in placed),
        remove=sorted(cid for cid, node_id in replicas.items() if node_id not in keeps))
