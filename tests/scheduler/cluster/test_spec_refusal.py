"""A bad spec submitted to the scheduler (no CLI check on the way) is refused at submit with
``InvalidSpec`` naming the field, and nothing is stored or placed for it."""

from __future__ import annotations

import pytest

from protocol.errors import InvalidSpec
from protocol.messages import (
    ContainerList,
    CreateContainer,
    ListContainers,
    SubmitApp,
    SubmitJob,
    Submitted,
)
from protocol.specs import AppSpec, ContainerSpec, Resources
from scheduler.store import EmbeddedEtcd, Layout
from tests.helpers.in_process_cluster import agents, ask, scheduler
from tests.helpers.store_fixtures import Runner


def test_bad_specs_are_refused_at_submit_and_nothing_is_stored(
        run: Runner[None], etcd: EmbeddedEtcd, layout: Layout) -> None:
    bad = ContainerSpec(image="busybox", name="bad", env=["NOEQUALS"])
    tiny = ContainerSpec(image="busybox", name="tiny", resources=Resources(memory=1024))

    async def body() -> None:
        async with scheduler(etcd, layout) as s:
            await s.leading.wait()
            async with agents([s.address], ["a"]) as pool:
                with pytest.raises(InvalidSpec) as caught:
                    await ask(s.address, lambda r: SubmitJob(spec=bad, replicas=3, reply=r))
                assert caught.value.field == "env[0]"
                with pytest.raises(InvalidSpec) as caught:
                    await ask(s.address, lambda r: CreateContainer(spec=tiny, reply=r))
                assert caught.value.field == "resources.memory"
                app = AppSpec(name="app", containers=[ContainerSpec(image="busybox", name="ok"),
                                                      bad])
                with pytest.raises(InvalidSpec) as caught:
                    await ask(s.address, lambda r: SubmitApp(app=app, reply=r))
                assert caught.value.field == "containers[1].env[0]"
                listed = await ask(s.address, lambda r: ListContainers(all=True, reply=r))
                assert isinstance(listed, ContainerList) and listed.containers == []
                good = ContainerSpec(image="busybox", name="good")
                done = await ask(s.address, lambda r: SubmitJob(spec=good, reply=r))
                assert isinstance(done, Submitted) and done.ids
                await pool["a"].until(lambda a: "good.1" in a.running())
                assert list(pool["a"].running()) == ["good.1"]

    run(body)
