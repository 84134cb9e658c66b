"""The verbs a scheduler serves: container verbs for the whole cluster, plus cluster verbs.

Reads (list, inspect, nodes) come from etcd, so any scheduler answers them. Writes (join,
submit, create, start, stop, remove; node availability, labels, removal) are served by the
leader only; a standby refuses them with ``Unavailable`` whose details name the leader
(``leader``: its address, ``leader_id``), so a client or worker reconnects there. Forwarding
would hide the leader's address from workers, which must hold their session with the leader
anyway.

Verbs that only the container's worker can answer (logs, exec, attach, wait, top, restart,
pause, unpause, stats) are forwarded to it by any scheduler (``forward``); an update goes to
the worker of a live container, then into its record. A cluster container cannot be renamed:
its name is its id. ``network connect``/``disconnect`` change the container's record, then its
node (``connections``). ``events.watch`` streams the cluster events of
the leader's commits; a standby has none to tell and refuses it like a write.

Who asks matters (``handle_client``, ``handle_worker``, ``handle_enroll``: the listener routes
each CURVE role to its own): a worker's key may join as its own node and fetch images, a
token's key may only enroll a key, a client's key may do everything but join (a worker may
also have the cluster's store pull an image for its platform when it cannot reach the registry
itself); root's local
socket and an --insecure listener reach ``handle``, everything. Keys and tokens are ``auth``'s.

Images (``image.*``) live in the leader's own store (``images``): the leader is the one every
worker holds a session with, so it serves their blob fetches; a standby refuses image verbs
like a write, naming the leader. What the leader's imports and removals change is published as
``image`` events; standbys with a store follow them to keep a copy (``imagesync``). The registry
access a run or job brings is kept in memory (``pull_access``) and rides with its assignments.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec
import structlog

import channels
from channels import Sender, key_text
from channels._curve import ENROLL_PREFIX
from protocol.errors import (
    Conflict,
    Forbidden,
    InvalidArgument,
    NotFound,
    ShoalError,
    Unavailable,
    Unsupported,
)
from protocol.eventfeed import EventFeed
from protocol.limits import MAX_LIST_ITEMS
from protocol.messages import (
    NETWORK_REQUESTS,
    VOLUME_REQUESTS,
    BuildImage,
    BuildResult,
    ConnectNetwork,
    ContainerInspected,
    ContainerList,
    CreateContainer,
    CreateContainers,
    DisconnectNetwork,
    Enroll,
    Enrolled,
    FetchBlob,
    GetDiskUsage,
    GetJoinToken,
    GetVersion,
    InspectContainer,
    InspectNode,
    Join,
    JoinToken,
    KeyList,
    KillContainer,
    LabelNode,
    ListContainers,
    ListKeys,
    ListNodes,
    Message,
    NodeInspected,
    NodeList,
    Ok,
    PullImage,
    RegistryOptions,
    RemoveContainer,
    RemoveNode,
    RenameContainer,
    ResolveImage,
    RevokeKey,
    StartContainer,
    StopContainer,
    SubmitApp,
    SubmitJob,
    UpdateContainer,
    UpdateNode,
    VersionInfo,
    WatchEvents,
)
from protocol.observed import EndpointSettings, Event, NodeUsage
from protocol.platforms import host_platform
from protocol.updates import updated_spec
from protocol.validation import check_spec, check_specs
from protocol.version import PROTOCOL_VERSION, package_version
from scheduler.cluster import views
from scheduler.cluster.auth import ClusterAuth
from scheduler.cluster.builds import build_in_cluster, choose_builder
from scheduler.cluster.connections import ClusterConnections
from scheduler.cluster.cycle import Work, occupies_node
from scheduler.cluster.disk_usage import cluster_disk_usage
from scheduler.cluster.forward import FORWARDED, Forwarder, Route
from scheduler.cluster.global_work import SubmitGlobal
from scheduler.cluster.images import CLUSTER_IMAGE_REQUESTS, ClusterImages
from scheduler.cluster.leader import Leader
from scheduler.cluster.networks import ClusterNetworks
from scheduler.cluster.node_work import JoinNode, RemoveNodeWork, SetAvailability, SetLabels
from scheduler.cluster.pull_access import PullAccess
from scheduler.cluster.volumes import ClusterVolumes
from scheduler.cluster.work import (
    CreateTogether,
    Remove,
    Start,
    Stop,
    Submit,
    SubmitAppWork,
    UpdateSpec,
)
from scheduler.reconcile import LIVE
from scheduler.store import (
    CONTAINERS,
    NODES,
    ContainerRecord,
    LeaderRecord,
    NodeRecord,
    Store,
)
from scheduler.store.keys import check_id
from worker.image_events import image_events

log = structlog.get_logger("shoal.scheduler")
# How long inspect waits for a container's node to say its endpoints before showing what the
# record knows.
ENDPOINTS_TIMEOUT = 5.0


class ClusterApi:
    """Answers one request; ``leader`` is set while this scheduler leads."""

    def __init__(self, store: Store, name: str,
                 worker_options: channels.ChannelOptions | None = None,
                 images: ClusterImages | None = None, auth: ClusterAuth | None = None,
                 managers: Callable[[], list[str]] = list) -> None:
        self.store = store
        self.name = name
        self.images = images
        self.auth = auth
        self.managers = managers  # every live scheduler's address
        self.leader: Leader | None = None
        self.leader_record: LeaderRecord | None = None  # who leads, as last observed
        self.events = EventFeed()
        # registry access runs brought, for the workers
        self.pull_access = PullAccess(global_job_of=self._global_job_of)
        self.forwarder = Forwarder(worker_options or channels.ChannelOptions(name=name),
                                   lambda: auth.keypair if auth is not None else None)
        self.networks = ClusterNetworks(store, self._lead)
        self.connections = ClusterConnections(store, self._lead, self.networks.find,
                                              self.node_route, self.forwarder)
        self.volumes = ClusterVolumes(store, self.node_route, self.forwarder)
        self.events.listeners.append(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.type == "node" and event.action in ("down", "remove"):
            self.forwarder.drop(event.id)  # a node that comes back is connected to afresh

    # --- by role: who may ask what -----------------------------------------------------------
    async def handle_client(self, request: channels.FromPeer) -> Message | None:
        """An enrolled client: every verb but those of workers and of enrollment."""
        message = request.message
        if isinstance(message, Join | Enroll):
            raise Forbidden(f"a client key cannot {type(message).__name__.lower()}: that "
                            "takes a worker's key (shoal worker --join ... --token)")
        return await self.handle(message)

    async def handle_worker(self, request: channels.FromPeer) -> Message | None:
        """An enrolled worker: it joins as the node it enrolled as, fetches images and asks
        the version; it never submits work or reads other nodes' containers."""
        message = request.message
        if isinstance(message, Join):
            enrolled = self.auth.name_of(request.peer) if self.auth is not None else None
            if enrolled != message.node.id:
                raise Forbidden(f"this key is enrolled as node {enrolled!r}, not "
                                f"{message.node.id!r}")
            node = msgspec.structs.replace(message.node, key=request.peer)
            return await self._lead().submit(self._join(
                msgspec.structs.replace(message, node=node)))
        if isinstance(message, FetchBlob | ResolveImage | GetVersion):
            return await self.handle(message)
        if isinstance(message, PullImage):
            return await self._pull_for_node(message)
        raise Forbidden(f"a worker's key cannot ask for {type(message).__name__}")

    async def _pull_for_node(self, message: PullImage) -> Message:
        """A worker that cannot reach a registry has the cluster's store pull for it."""
        self._lead()
        if self.images is None:
            raise Unsupported(f"scheduler {self.name} keeps no images (it runs without a "
                              "state dir)")
        answer = await self.images.pull_for_node(message)
        self.events.publish(*image_events(message, answer, time.time()))
        return answer

    async def handle_enroll(self, request: channels.FromPeer) -> Message | None:
        """A join token's holder: it may enroll its own key, nothing else."""
        message = request.message
        if not isinstance(message, Enroll):
            raise Forbidden("a join token's key may only enroll a key (Enroll)")
        if self.auth is None:
            raise Unsupported("this scheduler runs without CURVE: nothing to enroll")
        role = request.role.removeprefix(ENROLL_PREFIX)
        record = await self.auth.enroll(role, message.key, message.name)
        return Enrolled(role=role, name=record.name,  # type: ignore[arg-type]
                        cluster_key=key_text(self.auth.cluster.public),
                        managers=self.managers())

    async def _auth_verb(self, message: Message) -> Message:
        auth = self.auth
        if auth is None:
            raise Unsupported(f"scheduler {self.name} runs --insecure: it has no keys or "
                              "tokens")
        if isinstance(message, GetJoinToken):
            return JoinToken(role=message.role,  # type: ignore[arg-type]
                             token=await auth.token(message.role, message.rotate))
        if isinstance(message, ListKeys):
            return KeyList(keys=auth.keys())
        if isinstance(message, RevokeKey):
            await auth.revoke(message.key)
            return Ok()
        raise Forbidden(f"{type(message).__name__} takes a join token's key")

    async def handle(self, message: Message) -> Message | None:
        if isinstance(message, GetJoinToken | ListKeys | RevokeKey | Enroll):
            return await self._auth_verb(message)
        if isinstance(message, RemoveNode) and self.auth is not None:
            answer = await self._lead().submit(self._work(message))
            await self.auth.revoke_node(message.node_id)  # its key goes with it
            return answer
        if isinstance(message, FORWARDED):
            await self.forwarder.forward(message, await self._route(message.id))
            return None  # the worker answered the caller through the relay
        if isinstance(message, UpdateContainer):
            return await self._update(message)
        if isinstance(message, RenameContainer):
            raise Unsupported("a cluster container's name is its id (its key in the cluster's "
                              "store, and the worker's container id): it cannot be renamed; "
                              "create it again under the new name",
                              details={"id": message.id})
        if isinstance(message, ListContainers):
            return await self._list(message)
        if isinstance(message, InspectContainer):
            return await self._inspect(message.id)
        if isinstance(message, ListNodes):
            return await self._nodes(message)
        if isinstance(message, GetDiskUsage):
            return await cluster_disk_usage(self.store, self.images, self.forwarder,
                                            self.node_route)
        if isinstance(message, InspectNode):
            return await self._inspect_node(message.node_id)
        if isinstance(message, WatchEvents):
            self._lead()
            reply = message.reply
            if not isinstance(reply, Sender):
                raise InvalidArgument("events.watch: reply must be a Sender")
            await channels.stream_events(self.events, reply, message.since, message.filters)
            return None
        if isinstance(message, CLUSTER_IMAGE_REQUESTS):
            self._lead()
            if self.images is None:
                raise Unsupported(f"scheduler {self.name} keeps no images (it runs without a "
                                  "state dir)")
            answer = await self.images.handle(message)
            if answer is not None:
                self.events.publish(*image_events(message, answer, time.time()))
            return answer
        if isinstance(message, BuildImage):
            await self._build(message)
            return None  # answered on the request's reply: output, then image.built
        if isinstance(message, GetVersion):
            return VersionInfo(version=package_version(), protocol=PROTOCOL_VERSION,
                               component="scheduler", os=host_platform().os,
                               arch=host_platform().arch)
        if isinstance(message, ConnectNetwork):  # scheduler/cluster/connections.py
            return await self.connections.connect(message)
        if isinstance(message, DisconnectNetwork):
            return await self.connections.disconnect(message)
        if isinstance(message, NETWORK_REQUESTS):  # networks: scheduler/cluster/networks.py
            return await self.networks.handle(message)
        if isinstance(message, VOLUME_REQUESTS):  # volumes: scheduler/cluster/volumes.py
            self._lead()
            return await self.volumes.handle(message)
        message = await self.networks.resolve(message)  # a container's network looked up
        work = self._work(message)
        if isinstance(message, SubmitJob) and isinstance(work, SubmitGlobal):
            return await self._submit_global(work, message.registry)
        if isinstance(message, CreateContainer | SubmitJob) and isinstance(work, Submit) \
                and message.registry is not None and not message.registry.empty:
            return await self._submit_with_access(work, [(work.ids, message.registry)])
        if isinstance(message, CreateContainers) and isinstance(work, CreateTogether):
            access = [([cid], registry) for cid, registry in zip(work.ids, message.registries,
                                                                  strict=False)
                      if registry is not None and not registry.empty]
            if access:
                return await self._submit_with_access(work, access)
        answer = await self._lead().submit(work)
        if isinstance(message, RemoveContainer):
            self.pull_access.forget(message.id)
        return answer

    async def _submit_with_access(self, work: Submit | CreateTogether,
                                  access: list[tuple[list[str], RegistryOptions]]
                                  ) -> Message | None:
        """A run that brings registry access: kept for its containers' assignments."""
        undos = [self.pull_access.remember(ids, registry) for ids, registry in access]
        try:
            answer = await self._lead().submit(work)
        except BaseException:
            for undo in reversed(undos):
                undo()
            raise
        for cid in work.refused_ids:
            self.pull_access.forget(cid)
        return answer

    async def _submit_global(self, work: SubmitGlobal,
                             registry: RegistryOptions | None) -> Message | None:
        """A global job: the access it brings (or none) is its replicas' from now on, those
        made as nodes join included."""
        undo = self.pull_access.remember_global_job(
            work.job, None if registry is None or registry.empty else registry)
        try:
            return await self._lead().submit(work)
        except BaseException:
            undo()
            raise

    def _global_job_of(self, container_id: str) -> str | None:
        """The global job whose replica ``container_id`` is, in the leader's records."""
        leader = self.leader
        held = None if leader is None else leader.containers.get(container_id)
        job = None if held is None else held.record.app
        app = None if job is None or leader is None else leader.apps.get(job)
        return job if app is not None and app.record.global_job else None

    def _work(self, message: Message) -> Work:
        if isinstance(message, Join):
            return self._join(message)
        if isinstance(message, SubmitJob) and message.mode == "global":
            check_spec(message.spec)
            if message.replicas != 1:
                raise InvalidArgument("replicas: a global job runs one replica on every "
                                      "eligible node", details={"field": "replicas"})
            return SubmitGlobal(views.job_name(message.spec), message.spec)
        if isinstance(message, SubmitJob):
            check_spec(message.spec)
            return Submit(views.job_ids(message.spec, message.replicas), message.spec,
                          start=True, job=True)
        if isinstance(message, CreateContainer):
            check_spec(message.spec)
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
        if isinstance(message, LabelNode):
            return SetLabels(_checked(message.node_id), message.add, message.remove,
                             lambda record: NodeInspected(info=record.info))
        if isinstance(message, RemoveNode):
            leader = self._lead()
            return RemoveNodeWork(_checked(message.node_id), message.force, leader.is_live,
                                  leader.end_session)
        if isinstance(message, SubmitApp):
            check_specs(message.app.containers)
            return SubmitAppWork(message.app)
        if isinstance(message, CreateContainers):
            check_specs(message.specs)
            if len(message.registries) > len(message.specs):
                raise InvalidArgument("registries: one per spec at most",
                                      details={"field": "registries"})
            return CreateTogether([views.container_id(spec) for spec in message.specs],
                                  list(message.specs))
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
                        leader.open_session, leader.options.heartbeat_interval,
                        lambda: leader.managers, leader.fence_after)

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
        info = views.info(cid, record.value, node)
        return ContainerInspected(info=msgspec.structs.replace(
            info, networks=await self._endpoints(cid, record.value)))

    async def _endpoints(self, cid: str, record: ContainerRecord) -> list[EndpointSettings]:
        """The container's endpoints as its node made them (addresses, MACs, gateways of its
        bridge networks are the node's); the overlay addresses its record holds when the
        node cannot say (not made there yet, or unreachable)."""
        if record.node_id and record.schedule_state not in ("pending", "rejected"):
            try:
                route = await self.node_route(record.node_id, f"container {cid} is on node "
                                              f"{record.node_id}", {"id": cid})
                answer = await self.forwarder.ask(route, lambda r: InspectContainer(
                    id=cid, reply=r), timeout=ENDPOINTS_TIMEOUT)
                if isinstance(answer, ContainerInspected):
                    return list(answer.info.networks)
            except ShoalError as exc:
                log.debug("the container's node did not say its endpoints",
                          container_id=cid, error=str(exc))
        return views.record_endpoints(cid, record)

    async def _update(self, message: UpdateContainer) -> Message | None:
        """On the container's worker first when it runs there (its cgroups may refuse the
        limits), then in its record."""
        leader = self._lead()
        record = await self.store.get(CONTAINERS, _checked(message.id))
        if record is None or record.value.desired == "removed":
            raise NotFound(f"no container {message.id} in the cluster",
                           details={"id": message.id})
        updated_spec(record.value.spec, message)  # refused here before a worker changes it
        if record.value.node_id and record.value.schedule_state in LIVE:
            await self.forwarder.ask(await self._route(message.id),
                                     lambda r: msgspec.structs.replace(message, reply=r))
        return await leader.submit(UpdateSpec(message))

    async def _build(self, message: BuildImage) -> None:
        """A build on a worker of the target platform; the image lands in the cluster's store
        (scheduler/cluster/builds.py)."""
        try:
            self._lead()
            if self.images is None:
                raise Unsupported(f"scheduler {self.name} keeps no images (it runs without a "
                                  "state dir): it cannot store a build")
            nodes = [record.value.info async for record in self.store.list(NODES)]
            node = choose_builder(nodes, message.platform)
        except BaseException:
            if isinstance(message.context, channels.ByteReader):
                message.context.close()  # the client's writer stops at once
            raise
        imported = await build_in_cluster(message, node, self.forwarder, self.images)
        for image in imported.images:
            self.events.publish(*image_events(message, BuildResult(image=image), time.time()))

    async def _route(self, cid: str) -> Route:
        """The node that runs ``cid`` and where it serves its verbs."""
        record = await self.store.get(CONTAINERS, _checked(cid))
        if record is None or record.value.desired == "removed":
            raise NotFound(f"no container {cid} in the cluster", details={"id": cid})
        node_id = record.value.node_id
        # An exited container stays on its worker (logs, wait, inspect) until removed.
        if not node_id or record.value.schedule_state in ("pending", "rejected"):
            raise Conflict(f"container {cid} is not on any node "
                           f"({record.value.schedule_state})", details={"id": cid})
        return await self.node_route(node_id, f"container {cid} is on node {node_id}",
                                     {"id": cid})

    async def node_route(self, node_id: str, what: str,
                         details: dict[str, str] | None = None) -> Route:
        """Where node ``node_id`` serves its verbs; Unavailable (``what``, which is …) when
        it is not ready or registered no address."""
        details = {**(details or {}), "node_id": node_id}
        node = await self.store.get(NODES, node_id)
        if node is None or node.value.info.status != "ready":
            status = node.value.info.status if node is not None else "gone"
            raise Unavailable(f"{what}, which is {status}", details=details)
        address = node.value.info.address
        if not address:
            raise Unavailable(f"node {node_id} serves no container verbs (it registered no "
                              "address)", details=details)
        return Route(node_id, address, node.value.info.key)

    async def _usage(self) -> dict[str, tuple[NodeUsage, list[str]]]:
        """What every node holds: reservations summed over its live containers."""
        usage: dict[str, tuple[NodeUsage, list[str]]] = {}
        async for record in self.store.list(CONTAINERS, page_size=5000):
            value = record.value
            if not occupies_node(value):
                continue
            held, ids = usage.get(value.node_id, (NodeUsage(), []))
            resources = value.spec.resources
            ids.append(record.id)
            usage[value.node_id] = (NodeUsage(
                millicpus=held.millicpus + resources.placed_millicpus,
                memory=held.memory + resources.placed_memory,
                containers=held.containers + 1), ids)
        return usage

    async def _inspect_node(self, node_id: str) -> Message:
        record: NodeRecord | None = None
        got = await self.store.get(NODES, _checked(node_id))
        if got is None:
            raise NotFound(f"no node {node_id} in the cluster", details={"node_id": node_id})
        record = got.value
        usage, ids = (await self._usage()).get(node_id, (NodeUsage(), []))
        return NodeInspected(info=record.info, usage=usage,
                             containers=sorted(ids)[:MAX_LIST_ITEMS])

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
        usage = await self._usage()
        return NodeList(nodes=nodes, usage={n.id: usage[n.id][0] for n in nodes
                                            if n.id in usage})


def _checked(record_id: str) -> str:
    check_id(record_id)
    return record_id
