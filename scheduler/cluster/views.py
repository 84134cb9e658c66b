"""Records as the API shows them and as placement sees them. Pure.

Container ids are the names users give (a job's replicas are NAME.1 … NAME.N); an unnamed
container gets a generated one. Placement sees nodes whose status is ready and containers in a
live scheduler state.
"""

from __future__ import annotations

import secrets
import shlex
from collections.abc import Iterable, Mapping

from protocol.errors import InvalidArgument
from protocol.observed import (
    ContainerInfo,
    ContainerState,
    ContainerSummary,
    EndpointSettings,
    NodeInfo,
)
from protocol.specs import ContainerSpec
from protocol.subnets import endpoint_id, mac_of
from protocol.validation import own_network
from scheduler.placement import ClusterSnapshot
from scheduler.store import ContainerRecord, NodeRecord
from scheduler.store.keys import check_id

MAX_JOB_NAME = 200  # leaves room for ".NNNNN" within the 255-character id limit


def job_name(spec: ContainerSpec) -> str:
    """A job's name: its spec's, or a generated one; short enough for its replicas' ids."""
    name = spec.name or f"job-{secrets.token_hex(4)}"
    if len(name) > MAX_JOB_NAME:
        raise InvalidArgument(f"name: at most {MAX_JOB_NAME} characters for a job",
                              details={"field": "name"})
    check_id(name)
    return name


def job_ids(spec: ContainerSpec, replicas: int) -> list[str]:
    """NAME.1 … NAME.N; a job without a name gets a generated one."""
    name = job_name(spec)
    ids = [f"{name}.{i}" for i in range(1, replicas + 1)]
    check_id(ids[0])
    return ids


def container_id(spec: ContainerSpec) -> str:
    """A single container's id: its name, or a generated one."""
    cid = spec.name or f"c-{secrets.token_hex(6)}"
    check_id(cid)
    return cid


def observed(record: ContainerRecord) -> ContainerState:
    if record.observed is not None:
        return record.observed
    if record.schedule_state == "running":
        return ContainerState(status="running")
    return ContainerState(status="created")


def summary(cid: str, record: ContainerRecord) -> ContainerSummary:
    """A listing's row; its ports as its node bound them while it runs, else as asked."""
    spec = record.spec
    command = shlex.join([*(spec.entrypoint or []), *spec.command])
    state = observed(record)
    return ContainerSummary(
        id=cid, name=cid, image=spec.image, command=command[:4096],
        created_at=record.created_at, state=state, node_id=record.node_id,
        labels=spec.labels, ports=state.ports or spec.ports, networks=record_endpoints(cid, record))


def info(cid: str, record: ContainerRecord, node: NodeRecord | None) -> ContainerInfo:
    details = {"desired": record.desired, "restarts": str(record.restarts)}
    if node is not None:
        details["node_address"] = node.info.address
        details["node_status"] = node.info.status
    # Its overlay addresses, its own network's and those of networks connected later.
    details.update({f"address.{network}": ip for network, ip in record.addresses.items()})
    return ContainerInfo(
        id=cid, name=cid, spec=record.spec, state=observed(record),
        created_at=record.created_at, node_id=record.node_id,
        schedule_state=record.schedule_state, generation=record.generation,
        placement=record.placement,
        runtime=node.info.runtime if node is not None else "",
        storage_driver=node.info.storage_driver if node is not None else "",
        details=details)


def record_endpoints(cid: str, record: ContainerRecord) -> list[EndpointSettings]:
    """The endpoints a record knows of: each network it is on (its own first, then those
    connected), with the address the cluster took on an overlay, the network's prefix and
    gateway and the MAC made from the address (a bridge network's address is its node's)."""
    spec = record.spec
    networks = [(a.name, a.spec, list(a.aliases)) for a in spec.connected]
    if spec.network not in ("", "none", "host"):
        networks.insert(0, (own_network(spec), spec.network_spec, list(spec.network_aliases)))
    shown = []
    for name, network, aliases in networks:
        ip = record.addresses.get(name, "")
        subnet = network.subnet if network is not None and ip else ""
        shown.append(EndpointSettings(
            network=name, ip=ip, mac=mac_of(ip) if ip else "", aliases=aliases,
            endpoint_id=endpoint_id(cid, name),
            prefix_len=int(subnet.rpartition("/")[2]) if subnet else 0,
            gateway=network.gateway if subnet and network is not None
            and not network.internal else ""))
    return shown


def matches(record: ContainerRecord, cid: str, filters: Mapping[str, str], all_: bool) -> bool:
    """Docker's list filters that make sense cluster-wide: node, name, label=k=v, status."""
    if not all_ and record.schedule_state not in ("assigned", "accepted", "starting",
                                                  "running"):
        return False
    for key, value in filters.items():
        if key == "node" and record.node_id != value:
            return False
        if key == "name" and value not in cid:
            return False
        if key == "status" and observed(record).status != value:
            return False
        if key == "label":
            label, _, want = value.partition("=")
            have = record.spec.labels.get(label)
            if have is None or (want and have != want):
                return False
    return True


def snapshot(nodes: Iterable[tuple[str, NodeRecord]],
             containers: Iterable[tuple[str, ContainerRecord]]) -> ClusterSnapshot:
    """The placement engine's view: every node, and every container placed on one."""
    node_infos: list[NodeInfo] = [record.info for _, record in nodes]
    placed = [
        ContainerInfo(id=cid, spec=record.spec, node_id=record.node_id,
                      schedule_state=record.schedule_state)
        for cid, record in containers if record.node_id and record.desired != "removed"
    ]
    return ClusterSnapshot.build(node_infos, placed)
