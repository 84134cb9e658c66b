"""The cluster's networks on a scheduler (simulated agents, real etcd): create, ls, inspect,
rm refused while used (naming who), and a submitted container's network looked up and carried
in its spec to its node."""

from __future__ import annotations

import pytest

from protocol.errors import Conflict, NotFound
from protocol.messages import (
    CreateNetwork,
    InspectNetwork,
    ListNetworks,
    NetworkCreated,
    NetworkInspected,
    NetworkList,
    Ok,
    RemoveContainer,
    RemoveNetwork,
    SubmitJob,
    Submitted,
)
from protocol.specs import ContainerSpec, NetworkSpec
from scheduler.store import CONTAINERS, NETWORKS, EmbeddedEtcd, EtcdClient, Layout, Store
from tests.helpers.in_process_cluster import agents, ask, scheduler
from tests.helpers.store_fixtures import Runner


def test_network_verbs_and_submissions(run: Runner[None], etcd: EmbeddedEtcd,
                                       layout: Layout) -> None:
    async def body() -> None:
        async with scheduler(etcd, layout) as s:
            await s.leading.wait()
            async with agents([s.address], ["a"]):
                spec = NetworkSpec(name="back", internal=True, subnet="10.44.0.0/24",
                                   labels={"tier": "db"})
                created = await ask(s.address, lambda r: CreateNetwork(spec=spec, reply=r))
                assert isinstance(created, NetworkCreated)
                with pytest.raises(Conflict, match="already exists"):
                    await ask(s.address, lambda r: CreateNetwork(spec=spec, reply=r))
                with pytest.raises(Conflict, match="predefined"):
                    await ask(s.address, lambda r: CreateNetwork(
                        spec=NetworkSpec(name="bridge"), reply=r))
                listing = await ask(s.address, lambda r: ListNetworks(reply=r))
                assert isinstance(listing, NetworkList)
                assert [n.spec.name for n in listing.networks] == ["bridge", "back"]
                inspected = await ask(s.address, lambda r: InspectNetwork(
                    name=created.id[:10], reply=r))
                assert isinstance(inspected, NetworkInspected)
                assert inspected.info.spec == spec and inspected.info.subnet == "10.44.0.0/24"

                with pytest.raises(NotFound, match="network front not found"):
                    await ask(s.address, lambda r: SubmitJob(spec=ContainerSpec(
                        image="busybox", name="web", network="front"), reply=r))
                submitted = await ask(s.address, lambda r: SubmitJob(spec=ContainerSpec(
                    image="busybox", name="db", network="back"), replicas=2, reply=r))
                assert isinstance(submitted, Submitted) and len(submitted.ids) == 2
                async with EtcdClient([etcd.endpoint]) as client:
                    store = Store(client, layout)
                    records = [r.value async for r in store.list(CONTAINERS)]
                    assert [r.spec.network_spec for r in records] == [spec, spec]
                    with pytest.raises(Conflict, match=r"in use by db\.1, db\.2"):
                        await ask(s.address, lambda r: RemoveNetwork(name="back", reply=r))
                    for cid in submitted.ids:
                        await ask(s.address, lambda r, c=cid: RemoveContainer(  # type: ignore[misc]
                            id=c, force=True, reply=r))
                    assert isinstance(await ask(s.address, lambda r: RemoveNetwork(
                        name="back", reply=r)), Ok)
                    assert [r async for r in store.list(NETWORKS)] == []

    run(body)
