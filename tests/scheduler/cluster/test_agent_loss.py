"""kill -9 of an agent process: its restart-policy containers run again elsewhere; when it
comes back with what it held, the stale copies are revoked — no container runs twice."""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
from collections import Counter
from pathlib import Path

from bench._simagent import SimAgent, sim_node
from protocol.messages import SubmitJob, Submitted
from protocol.specs import ContainerSpec, RestartPolicy
from scheduler.cluster.leader import Leader
from scheduler.store import EmbeddedEtcd, Layout
from tests.helpers.in_process_cluster import CHANNELS, agents, ask, scheduler
from tests.helpers.repo_process import process
from tests.helpers.store_fixtures import Runner


def states(leader: Leader) -> dict[str, tuple[str, str, int]]:
    return {cid: (e.record.schedule_state, e.record.node_id, e.record.generation)
            for cid, e in leader.containers.items()}


def test_kill_9_agent_reschedules_then_revokes_stale_copies(run: Runner[None],
                                                             etcd: EmbeddedEtcd,
                                                             layout: Layout) -> None:
    async def body() -> None:
        with tempfile.TemporaryDirectory(prefix="shoal-agent-") as tmp:
            state_dir = Path(tmp)
            async with scheduler(etcd, layout) as s:
                await s.leading.wait()
                leader = s.api.leader
                assert leader is not None
                with process("-m", "bench._simagent", "--join", s.address,
                             "--name", "a", "--state-dir", str(state_dir),
                             "--channel-heartbeat", "0.2", "--channel-timeout", "1.0") as proc:
                    await leader.until(lambda ld: "a" in ld.sessions)
                    async with agents([s.address], ["b", "c"]) as pool:
                        always = ContainerSpec(image="busybox", name="svc",
                                               restart=RestartPolicy(name="always"))
                        once = ContainerSpec(image="busybox", name="once")
                        for spec in (always, once):
                            reply = await ask(s.address, lambda r, sp=spec: SubmitJob(  # type: ignore[misc]
                                spec=sp, replicas=6, reply=r))
                            assert isinstance(reply, Submitted) and len(reply.ids) == 6
                        await leader.until(lambda ld: len(ld.containers) == 12 and all(
                            st == "running" for st, _, _ in states(ld).values()))
                        on_a = {cid for cid, (_, node, _) in states(leader).items()
                                if node == "a"}
                        assert {c.split(".")[0] for c in on_a} == {"svc", "once"}

                        os.kill(proc.pid, signal.SIGKILL)
                        proc.wait(timeout=10)
                        moved = {cid for cid in on_a if cid.startswith("svc.")}
                        await leader.until(lambda ld: all(
                            states(ld)[cid][0] == "running" and states(ld)[cid][1] != "a"
                            for cid in moved))
                        after = states(leader)
                        for cid in on_a - moved:
                            assert after[cid][0] == "orphaned"  # restart "no": visibly lost
                        for cid in moved:
                            _, node, generation = after[cid]
                            assert pool[node].running()[cid] == generation > 1
                        assert leader.nodes["a"].record.info.status == "down"

                        # The worker comes back with what it held (its state file).
                        back = SimAgent(sim_node("a"), [s.address], options=CHANNELS,
                                        state_file=state_dir / "a.json")
                        assert set(back.running()) == on_a
                        task = asyncio.create_task(back.run())
                        try:
                            await back.until(lambda a: not (set(a.running()) & moved))
                            await leader.until(lambda ld: ld.nodes["a"].record.info.status
                                               == "ready")
                            everyone = [back, *pool.values()]
                            copies = Counter(cid for a in everyone for cid in a.running())
                            assert all(copies[cid] == 1 for cid in moved)
                            assert set(back.running()) == on_a - moved  # orphans stay put
                            assert back.epoch == 2
                        finally:
                            task.cancel()

    run(body, 60.0)
