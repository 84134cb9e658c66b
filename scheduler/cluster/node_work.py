"""The requests about nodes the leader serves, as work items staged in a commit cycle: a
worker joining, availability, labels, a node's images and volumes, and a node's removal (its
containers handled as on its loss). The container and app items are ``work``'s."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import msgspec
import structlog

from channels import Sender
from protocol.addresses import check_reachable
from protocol.errors import Conflict, InvalidArgument, NotFound
from protocol.limits import MAX_MANAGERS
from protocol.messages import (
    ContainerReport,
    Joined,
    Message,
    Ok,
)
from protocol.observed import NodeAvailability, NodeInfo
from protocol.specs import VolumeInfo
from scheduler.cluster.cycle import LeaderCycle, Work
from scheduler.cluster.work import stage_node_loss
from scheduler.reconcile import LIVE, node_lost
from scheduler.store import NodeRecord
from scheduler.store.keys import check_id

log = structlog.get_logger("shoal.scheduler")

replace = msgspec.structs.replace

OpenSession = Callable[[str, int, Sender, list[ContainerReport]], Sender]
IsLive = Callable[[str], bool]


class SetAvailability(Work):
    """Drain, pause or activate a node: placement only uses active nodes."""

    def __init__(self, node_id: str, availability: NodeAvailability) -> None:
        super().__init__()
        self.node_id = node_id
        self.availability = availability

    def stage(self, cycle: LeaderCycle) -> None:
        record = cycle.nodes.get(self.node_id)
        if record is None:
            raise NotFound(f"no node {self.node_id} in the cluster",
                           details={"node_id": self.node_id})
        if record.info.availability != self.availability:
            cycle.put_node(self.node_id, replace(
                record, info=replace(record.info, availability=self.availability)))

    def finish(self, cycle: LeaderCycle) -> Message | None:
        error = cycle.error(("nodes", self.node_id))
        if error is not None:
            raise error
        return Ok()


class RemoveNodeWork(Work):
    """``shoal node rm``: forget a departed node. Its live containers are handled as on the
    node's loss (rescheduled, or orphaned). A node whose worker is joined is refused unless
    ``force``; then its session is ended too, and the worker, should it try again, joins as a
    new node."""

    def __init__(self, node_id: str, force: bool, is_live: IsLive,
                 end_session: Callable[[str, str], None]) -> None:
        super().__init__()
        self.node_id = node_id
        self.force = force
        self.is_live = is_live
        self.end_session = end_session

    def stage(self, cycle: LeaderCycle) -> None:
        record = cycle.nodes.get(self.node_id)
        if record is None:
            raise NotFound(f"no node {self.node_id} in the cluster",
                           details={"node_id": self.node_id})
        joined = self.is_live(self.node_id) or record.info.status != "down"
        if joined and not self.force:
            raise Conflict(f"node {self.node_id} is {record.info.status}: its worker is still "
                           "joined (or has not yet been declared down); stop the worker and "
                           "wait for the node to go down, or remove it anyway with --force",
                           details={"node_id": self.node_id, "status": record.info.status})
        for cid in list(cycle.containers.ids()):
            container = cycle.containers.get(cid)
            if (container is not None and container.node_id == self.node_id
                    and container.schedule_state in LIVE):
                stage_node_loss(cycle, node_lost(cid, container, "was removed"),
                                "was removed")
        cycle.delete_node(self.node_id)

    def finish(self, cycle: LeaderCycle) -> Message | None:
        error = cycle.error(("nodes", self.node_id))
        if error is not None:
            raise error
        self.end_session(self.node_id, "the node was removed from the cluster")
        return Ok()


def effective_labels(own: Mapping[str, str], labels_set: Mapping[str, str],
                     labels_removed: Sequence[str]) -> dict[str, str]:
    """A node's labels: the worker's own, minus what an operator removed, plus what it set."""
    gone = set(labels_removed)
    return {**{k: v for k, v in own.items() if k not in gone}, **labels_set}


class SetLabels(Work):
    """``shoal node label``: operator labels, kept across the node's joins."""

    def __init__(self, node_id: str, add: Mapping[str, str], remove: Sequence[str],
                 answer: Callable[[NodeRecord], Message]) -> None:
        super().__init__()
        self.node_id = node_id
        self.add = dict(add)
        self.remove = list(remove)
        self.answer = answer
        self.record: NodeRecord | None = None

    def stage(self, cycle: LeaderCycle) -> None:
        record = cycle.nodes.get(self.node_id)
        if record is None:
            raise NotFound(f"no node {self.node_id} in the cluster",
                           details={"node_id": self.node_id})
        for key in [*self.add, *self.remove]:
            if not key or "=" in key:
                raise InvalidArgument(f"bad label key {key!r}", details={"label": key})
        labels_set = {k: v for k, v in record.labels_set.items() if k not in self.remove}
        labels_set.update(self.add)
        removed = sorted((set(record.labels_removed) - set(self.add)) | set(self.remove))
        info = record.info
        labels = {k: v for k, v in info.labels.items() if k not in self.remove}
        labels.update(self.add)
        self.record = replace(record, labels_set=labels_set, labels_removed=removed,
                              info=replace(info, labels=labels))
        if self.record != record:
            cycle.put_node(self.node_id, self.record)

    def finish(self, cycle: LeaderCycle) -> Message | None:
        error = cycle.error(("nodes", self.node_id))
        if error is not None:
            raise error
        assert self.record is not None
        return self.answer(self.record)


class SetNodeImages(Work):
    """A worker fetched an image: its record lists what it stores now (placement prefers a
    node that holds an image). Ignored for a node or an epoch that has changed since: that
    worker has joined again, and its join listed its images."""

    def __init__(self, node_id: str, epoch: int, images: Sequence[str]) -> None:
        super().__init__()
        self.node_id = node_id
        self.epoch = epoch
        self.images = list(images)

    def stage(self, cycle: LeaderCycle) -> None:
        record = cycle.nodes.get(self.node_id)
        if record is None or record.info.epoch != self.epoch:
            return
        if record.info.images != self.images:
            cycle.put_node(self.node_id,
                           replace(record, info=replace(record.info, images=self.images)))

    def finish(self, cycle: LeaderCycle) -> Message | None:
        error = cycle.error(("nodes", self.node_id))
        if error is not None:
            raise error
        return None


class SetNodeVolumes(Work):
    """A worker made or removed a named volume: its record lists its volumes now (placement
    puts a container that names one where it is). Ignored for a node or an epoch that has
    changed since, as ``SetNodeImages``."""

    def __init__(self, node_id: str, epoch: int, volumes: Sequence[VolumeInfo]) -> None:
        super().__init__()
        self.node_id = node_id
        self.epoch = epoch
        self.volumes = list(volumes)

    def stage(self, cycle: LeaderCycle) -> None:
        record = cycle.nodes.get(self.node_id)
        if record is None or record.info.epoch != self.epoch:
            return
        if record.info.volumes != self.volumes:
            cycle.put_node(self.node_id,
                           replace(record, info=replace(record.info, volumes=self.volumes)))

    def finish(self, cycle: LeaderCycle) -> Message | None:
        error = cycle.error(("nodes", self.node_id))
        if error is not None:
            raise error
        return None


class JoinNode(Work):
    """A worker joins: its node record is written ready under a new epoch, then a session
    opens, and the worker learns every live scheduler's address (``managers``). A node id
    held by another live session is refused (two workers claiming one id), and so is an
    address nobody could reach the node by (a wildcard, not ``tcp://HOST:PORT`` or
    ``ipc://PATH``); an empty address is a node that serves no verbs of its own."""

    def __init__(self, node: NodeInfo, commands: Sender, held: list[ContainerReport],
                 is_live: IsLive, open_session: OpenSession, heartbeat_interval: float,
                 managers: Callable[[], list[str]] = list, fence_after: float = 0.0) -> None:
        super().__init__()
        self.managers = managers
        self.heartbeat_interval = heartbeat_interval
        self.fence_after = fence_after
        self.node = node
        self.commands = commands
        self.held = held
        self.is_live = is_live
        self.open_session = open_session
        self.epoch = 0

    def stage(self, cycle: LeaderCycle) -> None:
        node_id = self.node.id
        check_id(node_id)
        if self.node.address:
            try:
                check_reachable(self.node.address)
            except InvalidArgument as exc:
                raise InvalidArgument(f"node {node_id} cannot be reached at its address: {exc}"
                                      "; a worker on a wildcard listens with --advertise",
                                      details={"node_id": node_id, "field": "address"}) from exc
        if self.is_live(node_id) or node_id in cycle.joined:
            log.warning("join refused: node id in use by a live session", node_id=node_id)
            raise Conflict(f"node id {node_id} is in use by a live worker session; a worker "
                           "that restarted may join again once that session has timed out",
                           details={"node_id": node_id})
        for report in self.held:
            if report.node_id != node_id:
                raise Conflict(f"held report for {report.container_id} names node "
                               f"{report.node_id}, not {node_id}", details={"node_id": node_id})
        previous = cycle.nodes.get(node_id)
        self.epoch = (previous.info.epoch if previous is not None else 0) + 1
        availability = previous.info.availability if previous is not None else "active"
        labels_set = previous.labels_set if previous is not None else {}
        labels_removed = previous.labels_removed if previous is not None else []
        info = replace(self.node, status="ready", epoch=self.epoch, availability=availability,
                       labels=effective_labels(self.node.labels, labels_set, labels_removed))
        cycle.put_node(node_id, NodeRecord(info=info, last_seen=cycle.now, labels_set=labels_set,
                                           labels_removed=labels_removed))
        cycle.joined.append(node_id)

    def finish(self, cycle: LeaderCycle) -> Message | None:
        error = cycle.error(("nodes", self.node.id))
        if error is not None:
            raise error
        reports = self.open_session(self.node.id, self.epoch, self.commands, self.held)
        return Joined(node_id=self.node.id, epoch=self.epoch,
                      heartbeat_interval=self.heartbeat_interval, reports=reports,
                      managers=self.managers()[:MAX_MANAGERS], fence_after=self.fence_after)
