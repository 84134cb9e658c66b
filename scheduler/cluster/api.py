"""The verbs a scheduler serves: container verbs for the whole cluster, plus cluster verbs.

Reads (list, inspect, nodes) come from etcd, so any scheduler answers them. Writes (join,
submit, create, start, stop, remove, node availability) are served by the leader only; a
standby refuses them with ``Unavailable`` whose details name the leader (``leader``: its
address, ``leader_id``), so a client or worker reconnects there. Forwarding would hide the
leader's address from workers, which must hold their session with the leader anyway.
"""

from __future__ import annotations

import platform

import structlog

from channels import Sender
from protocol.errors import InvalidArgument, NotFound, Unavailable, Unsupported
from protocol.limits import MAX_LIST_ITEMS
from protocol.messages import (
    ContainerInspected,
    ContainerList,
    CreateContainer,
    GetVersion,
    InspectContainer,
    Join,
    KillContainer,
    ListContainers,
    ListNodes,
    Message,
    NodeList,
    RemoveContainer,
    StartContainer,
    StopContainer,
    SubmitJob,
    UpdateNode,
    VersionInfo,
)
from protocol.version import PROTOCOL_VERSION, package_version
from scheduler.cluster import views
from scheduler.cluster.cycle import Work
from scheduler.cluster.leader import Leader
from scheduler.cluster.work import JoinNode, Remove, SetAvailability, Start, Stop, Submit
from scheduler.store import CONTAINERS, NODES, LeaderRecord, Store
from scheduler.store.keys import check_id

log = structlog.get_logger("shoal.scheduler")


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


class ClusterApi:
    """Answers one request; ``leader`` is set while this scheduler leads."""

    def __init__(self, store: Store, name: str) -> None:
        self.store = store
        self.name = name
        self.leader: Leader | None = None
        self.leader_record: LeaderRecord | None = None  # who leads, as last observed

    async def handle(self, message: Message) -> Message | None:
        if isinstance(message, ListContainers):
            return await self._list(message)
        if isinstance(message, InspectContainer):
            return await self._inspect(message.id)
        if isinstance(message, ListNodes):
            return await self._nodes(message)
        if isinstance(message, GetVersion):
            return VersionInfo(version=package_version(), protocol=PROTOCOL_VERSION,
                               component="scheduler", os="linux", arch=_arch())
        work = self._work(message)
        return await self._lead().submit(work)

    def _work(self, message: Message) -> Work:
        if isinstance(message, Join):
            return self._join(message)
        if isinstance(message, SubmitJob):
            return Submit(views.job_ids(message.spec, message.replicas), message.spec,
                          start=True, job=True)
        if isinstance(message, CreateContainer):
            return Submit([views.container_id(message.spec)], message.spec, start=False,
                          job=False)
        if isinstance(message, StartContainer):
            return Start(_checked(message.id))
        if isinstance(message, StopContainer | KillContainer):
            return Stop(_checked(message.id))
        if isinstance(message, RemoveContainer):
            return Remove(_checked(message.id), message.force)
        if isinstance(message, UpdateNode):
            return SetAvailability(_checked(message.node_id), message.availability)
        raise Unsupported(f"the scheduler does not serve {type(message).__name__}",
                          details={"type": type(message).__name__})

    def _lead(self) -> Leader:
        leader = self.leader
        if leader is not None:
            return leader
        known = self.leader_record
        if known is None or known.id == self.name:
            raise Unavailable(f"scheduler {self.name} is a standby and no leader is elected "
                              "yet; try again shortly", details={"leader": ""})
        raise Unavailable(f"scheduler {self.name} is a standby; the leader is {known.id} at "
                          f"{known.address}",
                          details={"leader": known.address, "leader_id": known.id})

    def _join(self, message: Join) -> Work:
        leader = self._lead()
        commands = message.commands
        if not isinstance(commands, Sender):
            raise InvalidArgument("join: commands must be a Sender")
        return JoinNode(message.node, commands, list(message.held), leader.is_live,
                        leader.open_session, leader.options.heartbeat_interval)

    async def _list(self, message: ListContainers) -> Message:
        rows = []
        async for record in self.store.list(CONTAINERS, page_size=5000):
            value = record.value
            if value.desired == "removed":
                continue
            if views.matches(value, record.id, message.filters, message.all):
                rows.append(views.summary(record.id, value))
                if len(rows) >= MAX_LIST_ITEMS:
                    break
        return ContainerList(containers=rows)

    async def _inspect(self, cid: str) -> Message:
        record = await self.store.get(CONTAINERS, _checked(cid))
        if record is None or record.value.desired == "removed":
            raise NotFound(f"no container {cid} in the cluster", details={"id": cid})
        node = None
        if record.value.node_id:
            got = await self.store.get(NODES, record.value.node_id)
            node = got.value if got is not None else None
        return ContainerInspected(info=views.info(cid, record.value, node))

    async def _nodes(self, message: ListNodes) -> Message:
        nodes = []
        async for record in self.store.list(NODES):
            info = record.value.info
            wanted = message.filters
            if "status" in wanted and info.status != wanted["status"]:
                continue
            if "availability" in wanted and info.availability != wanted["availability"]:
                continue
            if "label" in wanted:
                key, _, value = wanted["label"].partition("=")
                if key not in info.labels or (value and info.labels[key] != value):
                    continue
            nodes.append(info)
        return NodeList(nodes=nodes)


def _checked(record_id: str) -> str:
    check_id(record_id)
    return record_id
