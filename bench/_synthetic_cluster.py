"""Seeded synthetic clusters and workloads, for the benchmark and the tests.

Heterogeneous node sizes, an os mix (80 % linux, 20 % windows by default), an arch mix, labels
(zone, rack, disk, gpu), a few nodes draining or down. Same seed, same cluster.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from protocol.observed import ContainerInfo, NodeAvailability, NodeInfo, NodeResources, NodeStatus
from protocol.specs import ContainerSpec, Platform, PortMapping, Resources

GiB = 1 << 30
MiB = 1 << 20
# (millicpus, memory) and how common each size is.
NODE_SIZES: tuple[tuple[int, int, int], ...] = (
    (4_000, 16 * GiB, 3),
    (8_000, 32 * GiB, 4),
    (16_000, 64 * GiB, 4),
    (32_000, 128 * GiB, 2),
    (64_000, 256 * GiB, 1),
)
ZONES = ("a", "b", "c")


@dataclass(frozen=True, slots=True)
class ClusterShape:
    nodes: int
    windows_share: float = 0.2
    arm_share: float = 0.15  # of the linux nodes
    draining_share: float = 0.02
    down_share: float = 0.01
    homogeneous: bool = False  # every node 16 cpus / 64 GiB, linux/amd64, all ready


def generate_cluster(shape: ClusterShape, seed: int = 0) -> list[NodeInfo]:
    rng = random.Random(seed)
    weights = [w for _, _, w in NODE_SIZES]
    out: list[NodeInfo] = []
    for i in range(shape.nodes):
        if shape.homogeneous:
            cpu, mem = 16_000, 64 * GiB
            os_name, arch = "linux", "amd64"
            status: NodeStatus = "ready"
            avail: NodeAvailability = "active"
        else:
            cpu, mem, _ = rng.choices(NODE_SIZES, weights)[0]
            os_name = "windows" if rng.random() < shape.windows_share else "linux"
            # Nodes report uname's names; placement folds them (x86_64 → amd64).
            arch = "aarch64" if os_name == "linux" and rng.random() < shape.arm_share \
                else "x86_64"
            roll = rng.random()
            status = "down" if roll < shape.down_share else "ready"
            avail = "drain" if shape.down_share <= roll < shape.down_share + \
                shape.draining_share else "active"
        labels = {
            "zone": ZONES[i % len(ZONES)],
            "rack": f"r{(i // 40) % 100:02d}",
            "disk": "ssd" if rng.random() < 0.5 else "hdd",
        }
        if not shape.homogeneous and rng.random() < 0.05:
            labels["gpu"] = "true"
        out.append(NodeInfo(
            id=f"node-{i:05d}", hostname=f"host-{i:05d}",
            platform=Platform(os=os_name, arch=arch),
            capacity=NodeResources(millicpus=cpu, memory=mem, pids=32_768),
            labels=labels, status=status, availability=avail,
        ))
    return out


def job_spec(rng: random.Random, index: int, *, small: bool = True) -> ContainerSpec:
    """A job's task template: tiny tasks (C1M-style) with a drawn set of constraints."""
    cpu = rng.choice((10, 20, 25, 50)) if small else rng.choice((250, 500, 1000, 2000))
    mem = rng.choice((16, 32, 48, 64)) * MiB if small else rng.choice((256, 512, 1024, 4096)) * MiB
    windows = rng.random() < 0.15
    constraints: list[str] = []
    roll = rng.random()
    if roll < 0.3:
        constraints.append(f"node.labels.zone=={rng.choice(ZONES)}")
    elif roll < 0.45:
        constraints.append("node.labels.disk==ssd")
    elif roll < 0.55:
        constraints.append("node.labels.rack==r1*")
    elif roll < 0.6:
        constraints.append("node.hostname!=/-0000[0-9]$/")
    if rng.random() < 0.2:
        constraints.append(f"~node.labels.zone=={rng.choice(ZONES)}")
    return ContainerSpec(
        image="mcr.microsoft.com/windows/nanoserver:ltsc2022" if windows
        else f"registry.local/app-{index % 50}:1.{index % 7}",
        name=f"job-{index}",
        labels={"job": f"job-{index}", "tier": rng.choice(("web", "api", "batch"))},
        resources=Resources(millicpus=cpu, memory=mem, pids=rng.choice((0, 16, 64))),
        platform=Platform(os="windows", arch="amd64") if windows else None,
        constraints=constraints,
    )


def existing_containers(nodes: list[NodeInfo], count: int, seed: int = 0) -> list[ContainerInfo]:
    """Containers already running (scheduler_perf's initial pods), on ready linux nodes."""
    rng = random.Random(seed)
    linux = [n for n in nodes if n.platform.os == "linux" and n.status == "ready"]
    spec = ContainerSpec(image="registry.local/base:1", labels={"tier": "base"},
                         resources=Resources(millicpus=100, memory=128 * MiB))
    return [ContainerInfo(id=f"pre-{i}", name=f"pre-{i}", spec=spec,
                          node_id=rng.choice(linux).id, schedule_state="running")
            for i in range(count)] if linux else []


def port_spec(index: int, port: int) -> ContainerSpec:
    return ContainerSpec(
        image=f"registry.local/edge-{index}:1", name=f"edge-{index}",
        resources=Resources(millicpus=100, memory=64 * MiB),
        ports=[PortMapping(container_port=8080, host_port=port)],
    )
