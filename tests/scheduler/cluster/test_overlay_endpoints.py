"""The leader's overlay directory (pure): which nodes hear their endpoint list again, and what
it holds; a record's endpoint; the Assign carrying the address; VTEP and MAC derivations."""

from __future__ import annotations

import msgspec
import pytest

from protocol.observed import ContainerState, NodeInfo
from protocol.specs import ContainerSpec, NetworkAttachment, NetworkSpec
from scheduler.cluster.overlay_endpoints import (
    OverlayDirectory,
    assignment,
    endpoints_of,
    vtep_of,
)
from scheduler.store import ContainerRecord, NodeRecord

OV = NetworkSpec(name="ov", driver="overlay", subnet="10.0.0.0/24", gateway="10.0.0.1",
                 vni=4096)
NODES = {n: NodeRecord(info=NodeInfo(id=n, address=f"tcp://192.0.2.{i}:7376"))
         for i, n in enumerate(("a", "b", "c"), start=1)}


def record(node: str, ip: str, network: NetworkSpec = OV) -> ContainerRecord:
    spec = ContainerSpec(image="busybox", name="web", network=network.name,
                         network_spec=network)
    return ContainerRecord(spec=spec, schedule_state="running", node_id=node,
                           addresses={network.name: ip} if ip else {}, generation=3)


def put(directory: OverlayDirectory, cid: str, rec: ContainerRecord | None) -> None:
    node = rec.node_id if rec is not None else ""
    directory.put(cid, endpoints_of(cid, rec, NODES.get(node)), node)


@pytest.mark.parametrize(("address", "vtep"), [
    ("tcp://10.1.2.3:7376", "10.1.2.3"), ("tcp://[::1]:7376", ""), ("ipc:///run/x", ""),
    ("tcp://host.example:7376", "")])
def test_vtep_of(address: str, vtep: str) -> None:
    assert vtep_of(address) == vtep


def test_endpoint_and_assignment() -> None:
    rec = record("a", "10.0.0.7")
    [endpoint] = endpoints_of("web.1", rec, NODES["a"])
    assert (endpoint.name, endpoint.job, endpoint.mac, endpoint.vtep) == (
        "web.1", "web", "02:42:0a:00:00:07", "192.0.2.1")
    assert assignment("web.1", rec).spec.ip == "10.0.0.7"
    assert endpoints_of("web.1", record("a", ""), NODES["a"]) == []
    bridge = NetworkSpec(name="br")
    assert endpoints_of("x", record("a", "10.0.0.8", bridge), NODES["a"]) == []


@pytest.mark.parametrize(("observed", "desired", "running"), [
    (None, "running", False), ("created", "running", False), ("running", "running", True),
    ("exited", "running", False), ("running", "stopped", False)])
def test_an_endpoint_is_named_only_while_it_runs(observed: str | None, desired: str,
                                                 running: bool) -> None:
    rec = msgspec.structs.replace(
        record("a", "10.0.0.7"), desired=desired,
        observed=None if observed is None else ContainerState(status=observed))
    [endpoint] = endpoints_of("web.1", rec, NODES["a"])
    assert endpoint.running is running


def test_nodes_hear_changes_of_their_networks_only() -> None:
    directory = OverlayDirectory()
    put(directory, "web.1", record("a", "10.0.0.2"))
    put(directory, "web.2", record("b", "10.0.0.3"))
    other = NetworkSpec(name="ov2", driver="overlay", subnet="10.0.1.0/24", vni=4097)
    put(directory, "db.1", record("c", "10.0.1.2", other))
    assert directory.take_changed() == {"a", "b", "c"}
    assert [e.container_id for e in directory.snapshot("a")] == ["web.1", "web.2"]
    assert [e.container_id for e in directory.snapshot("c")] == ["db.1"]

    put(directory, "web.2", record("b", "10.0.0.3"))  # the same: nobody hears
    assert directory.take_changed() == set()
    put(directory, "web.3", record("a", "10.0.0.4"))
    assert directory.take_changed() == {"a", "b"}  # c has no container on ov
    put(directory, "web.2", None)  # b's last one on ov: b hears (an empty list), and a
    assert directory.take_changed() == {"a", "b"}
    assert directory.snapshot("b") == []
    put(directory, "web.1", record("c", "10.0.0.9"))  # moved to c with a new address
    assert directory.take_changed() == {"a", "c"}
    assert [(e.container_id, e.ip) for e in directory.snapshot("c")] == [
        ("web.1", "10.0.0.9"), ("web.3", "10.0.0.4"), ("db.1", "10.0.1.2")]


def test_containers_on_a_nodes_own_network_are_named_at_its_address_to_overlay_nodes() -> None:
    windows = NodeRecord(info=NodeInfo(id="w", address="tcp://192.0.2.9:7376",
                                       runtime="process"))
    running = ContainerState(status="running")
    on_default = ContainerRecord(spec=ContainerSpec(image="app", name="win", network="default"),
                                 schedule_state="running", node_id="w", observed=running)
    on_host = msgspec.structs.replace(
        on_default, node_id="a", spec=ContainerSpec(image="app", name="h", network="host"))
    [endpoint] = endpoints_of("win.1", on_default, windows)
    assert (endpoint.network, endpoint.ip, endpoint.job, endpoint.vtep, endpoint.running) == (
        "host", "192.0.2.9", "win", "", True)
    # On a native node the default is its bridge: no cluster-wide name.
    assert endpoints_of("win.1", on_default, NODES["a"]) == []
    directory = OverlayDirectory()
    directory.put("win.1", [endpoint], "w")
    directory.put("h", endpoints_of("h", on_host, NODES["a"]), "a")
    put(directory, "web.1", record("b", "10.0.0.2"))
    directory.take_changed()
    assert [(e.container_id, e.ip) for e in directory.snapshot("b")] == [
        ("h", "192.0.2.1"), ("win.1", "192.0.2.9"), ("web.1", "10.0.0.2")]
    assert directory.snapshot("w") == []  # no overlay there: nothing to program or name
    put(directory, "web.1", None)
    directory.put("win.1", [], "w")
    assert "b" in directory.take_changed()


def test_a_connected_overlay_is_one_more_endpoint_and_rides_in_the_assign() -> None:
    """A container connected to a second overlay: an endpoint on each (its aliases there),
    both addresses in its Assign; nodes with either network hear of it, and of its leaving
    the second one."""
    other = NetworkSpec(name="ov2", driver="overlay", subnet="10.0.1.0/24", vni=4097)
    base = record("a", "10.0.0.7")
    spec = msgspec.structs.replace(base.spec, connected=[
        NetworkAttachment(name="ov2", spec=other, aliases=["w2"]),
        NetworkAttachment(name="br", spec=NetworkSpec(name="br"))])
    rec = msgspec.structs.replace(base, spec=spec,
                                  addresses={"ov": "10.0.0.7", "ov2": "10.0.1.5"})
    assert [(e.network, e.ip, e.aliases, e.vtep) for e in endpoints_of("web.1", rec,
                                                                         NODES["a"])] == [
        ("ov", "10.0.0.7", [], "192.0.2.1"), ("ov2", "10.0.1.5", ["w2"], "192.0.2.1")]
    sent = assignment("web.1", rec).spec
    assert (sent.ip, [(a.name, a.ip) for a in sent.connected]) == (
        "10.0.0.7", [("ov2", "10.0.1.5"), ("br", "")])

    directory = OverlayDirectory()
    put(directory, "db.1", record("c", "10.0.1.2", other))
    put(directory, "web.2", record("b", "10.0.0.3"))
    directory.take_changed()
    put(directory, "web.1", rec)
    assert directory.take_changed() == {"a", "b", "c"}
    assert [(e.container_id, e.network) for e in directory.snapshot("c")] == [
        ("db.1", "ov2"), ("web.1", "ov2")]
    put(directory, "web.1", msgspec.structs.replace(rec, addresses={"ov": "10.0.0.7"}))
    assert directory.take_changed() == {"a", "c"}  # b has only ov, where nothing changed
    assert [e.container_id for e in directory.snapshot("c")] == ["db.1"]
    assert [e.network for e in directory.snapshot("a")] == ["ov", "ov"]
