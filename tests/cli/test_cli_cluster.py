"""The cluster CLI against a real scheduler and simulated agents: nodes, node label/drain/
activate/inspect, and run/create with placement flags and --replicas."""

from __future__ import annotations

import asyncio
import json

import click
from click.testing import CliRunner, Result

from cli.cluster import CLUSTER_COMMANDS, human_bytes, node, nodes
from cli.running import create
from cli.running import run as run_command
from protocol.messages import ContainerInspected, InspectContainer
from scheduler.store import EmbeddedEtcd, Layout
from tests.helpers.in_process_cluster import agents, ask, scheduler
from tests.helpers.store_fixtures import Runner


async def shoal(command: click.Command, *args: str) -> Result:
    """Invoke a CLI command in a thread (it runs its own event loop) against the scheduler."""
    return await asyncio.to_thread(CliRunner().invoke, command, list(args))


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (0, 512, 1536, 8 << 30, 3 << 19)] == [
        "0B", "512B", "1.5KiB", "8GiB", "1.5MiB"]
    assert {c.name for c in CLUSTER_COMMANDS} == {"nodes", "node"}


def test_cluster_cli(run: Runner[None],
                     etcd: EmbeddedEtcd, layout: Layout) -> None:
    async def body() -> None:
        async with scheduler(etcd, layout) as s:
            await s.leading.wait()
            host = ["-H", s.address]
            async with agents([s.address], ["a", "b"], labels={"a": {"zone": "x"}}) as pool:
                listed = await shoal(nodes, *host)
                assert listed.exit_code == 0, listed.output
                lines = listed.stdout.splitlines()
                # The in-process agents run --insecure (no key): said on stderr, not in the table.
                assert "WARNING: a, b run(s) --insecure" in listed.stderr
                assert lines[0].split() == ["NAME", "STATUS", "AVAILABILITY", "PLATFORM", "CPU",
                                            "MEMORY", "CONTAINERS", "LABELS"]
                assert lines[1].split() == ["a", "ready", "active", "linux/amd64", "0/4",
                                            "0B/8GiB", "0", "zone=x"]

                labelled = await shoal(node, "label", *host, "b", "gpu=yes", "tier=1")
                assert labelled.exit_code == 0, labelled.output
                assert labelled.output.strip() == "gpu=yes,tier=1"
                removed = await shoal(node, "label", *host, "--rm", "tier", "b")
                assert removed.output.strip() == "gpu=yes"

                job = await shoal(run_command, *host, "--replicas", "2", "-c",
                                  "node.labels.gpu==yes", "--platform", "linux/amd64",
                                  "--cpus", "0.5", "--name", "web",
                                  "busybox", "true")
                assert job.exit_code == 0, job.output
                assert job.output.split() == ["web.1", "web.2"]
                await pool["b"].until(lambda a: set(a.running()) == {"web.1", "web.2"})

                as_json = await shoal(nodes, *host, "--format", "json")
                rows = {row["node"]["id"]: row for row in json.loads(as_json.output)}
                assert rows["b"]["usage"] == {"containers": 2, "millicpus": 1000}
                table = await shoal(nodes, *host, "-f", "label=gpu")
                assert [line.split()[0] for line in table.stdout.splitlines()[1:]] == ["b"]
                assert "1/4" in table.output

                inspected = await shoal(node, "inspect", *host, "b")
                assert json.loads(inspected.output)["containers"] == ["web.1", "web.2"]
                missing = await shoal(node, "inspect", *host, "zz")
                assert missing.exit_code == 1 and "NotFound" in missing.output

                drained = await shoal(node, "drain", *host, "b")
                assert drained.exit_code == 0 and drained.output.strip() == "b"
                refused = await shoal(run_command, *host, "--replicas", "1", "-c",
                                      "node.labels.gpu==yes", "--name", "more", "busybox")
                assert refused.exit_code == 1 and "not placed" in refused.output
                await shoal(node, "activate", *host, "b")
                wrong = await shoal(run_command, *host, "--replicas", "1", "--platform",
                                    "windows/amd64", "--name", "win", "busybox")
                assert wrong.exit_code == 1 and "windows" in wrong.output
                # An OS alone means any architecture (the nodes are linux/amd64 only).
                any_arch = await shoal(run_command, *host, "--replicas", "1", "--platform",
                                       "windows", "--name", "win2", "busybox")
                assert any_arch.exit_code == 1 and "windows/*" in any_arch.output
                # Repeated: any one of them will do (none is here, and the refusal names both).
                either = await shoal(run_command, *host, "--replicas", "1", "--platform",
                                     "windows", "--platform", "linux/arm64", "--name", "win3",
                                     "busybox")
                assert either.exit_code == 1 and "windows/* or linux/arm64" in either.output
                bad = await shoal(run_command, *host, "--platform", "linux/amd64/v1/x",
                                  "busybox")
                assert bad.exit_code == 2 and "OS[/ARCH[/VARIANT]]" in bad.output

                created = await shoal(create, *host, "--name", "solo", "-c",
                                      "node.labels.zone==x", "--affinity", "~image==busybox",
                                      "busybox", "true")
                assert created.exit_code == 0, created.output
                info = await ask(s.address, lambda r: InspectContainer(id="solo", reply=r))
                assert isinstance(info, ContainerInspected)
                assert info.info.spec.constraints == ["node.labels.zone==x"]
                assert info.info.spec.affinities == ["~image==busybox"]
                assert info.info.node_id == "a"

                joined = await shoal(node, "rm", *host, "a")
                assert joined.exit_code == 1 and "--force" in joined.output
                forced = await shoal(node, "rm", *host, "--force", "a")
                assert forced.exit_code == 0 and forced.output.strip() == "a"
                # Its session was ended; its worker, still running, joins as a new node.
                await pool["a"].until(lambda ag: ag.joins >= 2 and ag.joined.is_set())
                assert pool["a"].epoch == 1

    run(body)
