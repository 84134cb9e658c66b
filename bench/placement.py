"""Placement at scale: ``python -m bench placement [--quick] [--seed N] [--no-plot]``.

Workloads shaped like published anchors (Nomad C1M and C100K, Kubernetes scheduler_perf), plus
affinity-heavy, port-heavy and a mix with unschedulable specs, each run by the engine beside a
naive reference scheduler (every task scans every node) in the same process. Every result goes
through the independent checker. Quality: binpack nodes against the lower bound, spread CV,
stranded capacity, and what candidate sampling costs. Writes bench/results/placement.json and,
with matplotlib, bench/results/placement.png (placements/s against cluster size).

The engine runs as installed: compiled with mypyc when deploy/setup.sh built it for these
sources (scheduler/placement/native.py), which the table and ``placement_engine`` say. The
sweep with rules is measured again in a child process with the interpreted engine
(``SHOAL_PLACEMENT_COMPILED=0``), whose answers must be the same to the digest.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import subprocess
import sys
from dataclasses import dataclass

import msgspec

from bench._placement_runs import (
    Run,
    count_cv,
    load_cv,
    nodes_used,
    run_engine,
    run_naive,
    stranded,
)
from bench._report import RESULTS_DIR, print_table, write_results
from bench._synthetic_cluster import (
    ClusterShape,
    GiB,
    MiB,
    existing_containers,
    generate_cluster,
    job_spec,
)
from protocol.observed import NodeInfo
from protocol.specs import ContainerSpec, Platform, PortMapping, Resources
from scheduler.placement import EngineOptions, Task, native


@dataclass(frozen=True, slots=True)
class Scale:
    c1m_nodes: int
    c1m_jobs: int
    c1m_tasks: int
    c100k_nodes: int
    c100k_jobs: int
    perf_nodes: int
    perf_existing: int
    perf_new: int
    naive_tasks: int
    mid_nodes: int  # affinity, ports, mixed
    quality_nodes: int
    plot_sizes: tuple[int, ...]
    plot_tasks: int
    plot_naive_tasks: int


FULL = Scale(5000, 1000, 1000, 500, 100, 5000, 5000, 10_000, 300, 1000, 200,
             (500, 1000, 2000, 5000, 10_000, 20_000), 20_000, 40)
QUICK = Scale(1000, 40, 250, 200, 20, 1000, 1000, 2000, 60, 300, 60,
              (500, 1000, 2000), 5000, 15)

COLUMNS = ["workload", "sched", "nodes", "tasks", "refused", "placed/s", "p50 µs", "p99 µs",
           "per", "bad"]


def jobs_of(specs: list[ContainerSpec], per_job: int, prefix: str) -> list[list[Task]]:
    return [[Task(f"{prefix}{j}.{i}", spec) for i in range(per_job)]
            for j, spec in enumerate(specs)]


def c1m(scale: Scale, seed: int) -> tuple[Run, Run]:
    nodes = generate_cluster(ClusterShape(scale.c1m_nodes), seed)
    rng = random.Random(seed + 1)
    jobs = jobs_of([job_spec(rng, j) for j in range(scale.c1m_jobs)], scale.c1m_tasks, "c1m-")
    engine = run_engine("C1M", nodes, jobs)
    # The naive scheduler on the same cluster and the same first tasks, cut down: at 5,000
    # nodes it needs milliseconds per task, so the full million would take hours.
    cut = [t for job in jobs for t in job][: scale.naive_tasks]
    naive = run_naive("C1M cut", nodes, cut)
    return engine, naive


def c100k(scale: Scale, seed: int) -> Run:
    nodes = generate_cluster(ClusterShape(scale.c100k_nodes), seed + 2)
    rng = random.Random(seed + 3)
    return run_engine("C100K", nodes,
                      jobs_of([job_spec(rng, j) for j in range(scale.c100k_jobs)], 1000, "k-"))


def scheduler_perf(scale: Scale, seed: int) -> tuple[Run, Run]:
    """scheduler_perf's SchedulingBasic: existing pods, then new pods one decision at a time."""
    nodes = generate_cluster(ClusterShape(scale.perf_nodes, windows_share=0.0), seed + 4)
    existing = existing_containers(nodes, scale.perf_existing, seed + 5)
    pod = ContainerSpec(image="registry.k8s.io/pause:3.9", labels={"app": "perf"},
                        resources=Resources(millicpus=100, memory=64 * MiB))
    tasks = [Task(f"pod-{i}", pod) for i in range(scale.perf_new)]
    engine = run_engine("k8s perf", nodes, [[t] for t in tasks],
                        existing=existing, per="task")
    naive = run_naive("k8s perf cut", nodes,
                      tasks[: scale.naive_tasks], existing=existing)
    return engine, naive


def affinity_heavy(scale: Scale, seed: int) -> tuple[Run, Run]:
    """Caches first; services with one replica per node (anti-affinity to their own label),
    half of them next to a cache (affinity), a few away from a noisy image."""
    nodes = generate_cluster(ClusterShape(scale.mid_nodes), seed + 6)
    rng = random.Random(seed + 7)
    cache = ContainerSpec(image="redis:7", labels={"role": "cache"},
                          resources=Resources(millicpus=200, memory=256 * MiB))
    jobs: list[list[Task]] = [[Task(f"cache-{i}", cache) for i in range(scale.mid_nodes // 10)]]
    for s in range(scale.mid_nodes // 10):
        affinities = [f"label.svc!=svc-{s}"]
        if s % 2 == 0:
            affinities.append("container.image==redis")
        if s % 5 == 0:
            affinities.append("~image!=batch-*")
        spec = ContainerSpec(image=f"svc-{s}:1", labels={"svc": f"svc-{s}"},
                             resources=Resources(millicpus=rng.choice((100, 250)),
                                                 memory=rng.choice((128, 256)) * MiB),
                             affinities=affinities)
        jobs.append([Task(f"svc-{s}.{i}", spec) for i in range(rng.randint(5, 40))])
    engine = run_engine("affinity", nodes, jobs)
    naive = run_naive("affinity cut", nodes, [t for j in jobs for t in j][: scale.naive_tasks])
    return engine, naive


def port_heavy(scale: Scale, seed: int) -> tuple[Run, Run]:
    """Jobs publishing host ports from a small pool: at most one of each port per node."""
    nodes = generate_cluster(ClusterShape(scale.mid_nodes), seed + 8)
    rng = random.Random(seed + 9)
    ports = (80, 443, 8080, 8443, 9000, 9090, 53, 25)
    jobs = []
    for j in range(scale.mid_nodes // 20):
        port = rng.choice(ports)
        spec = ContainerSpec(image=f"edge-{j}:1", resources=Resources(millicpus=100,
                                                                       memory=64 * MiB),
                             ports=[PortMapping(container_port=8080, host_port=port,
                                                protocol="udp" if port == 53 else "tcp")])
        jobs.append([Task(f"edge-{j}.{i}", spec) for i in range(rng.randint(50, 200))])
    engine = run_engine("ports", nodes, jobs)
    naive = run_naive("ports cut", nodes, [t for j in jobs for t in j][: scale.naive_tasks])
    return engine, naive


IMPOSSIBLE = [
    ContainerSpec(image="huge", resources=Resources(memory=2048 * GiB)),
    ContainerSpec(image="win-gpu", platform=Platform(os="windows"),
                  constraints=["node.labels.gpu==true", "node.labels.zone==a"]),
    ContainerSpec(image="s390", platform=Platform(arch="s390x")),
    ContainerSpec(image="nowhere", constraints=["node.labels.zone==z"]),
]


def mixed(scale: Scale, seed: int) -> tuple[Run, str]:
    nodes = generate_cluster(ClusterShape(scale.mid_nodes), seed + 10)
    rng = random.Random(seed + 11)
    specs = [job_spec(rng, j, small=False) for j in range(40)]
    jobs = jobs_of(specs, 100, "mix-")
    for k, spec in enumerate(IMPOSSIBLE):
        jobs.insert(1 + 8 * k, [Task(f"bad-{k}.{i}", spec) for i in range(20)])
    run = run_engine("mixed", nodes, jobs)
    example = next((r.explanation.message for r in run.result.refusals), "")
    return run, example


def binpack_quality(scale: Scale, seed: int) -> dict[str, float]:
    """Homogeneous nodes, mixed task sizes; nodes used against ceil(total demand / node size)."""
    nodes = generate_cluster(ClusterShape(scale.quality_nodes, homogeneous=True), seed + 12)
    rng = random.Random(seed + 13)
    # Shapes near the nodes' own cpu:memory ratio (16 cpus : 64 GiB), some leaning either way.
    sizes = [(250, 1024), (500, 2048), (1000, 4096), (2000, 6144), (4000, 16384), (1500, 4096),
             (750, 4096), (3000, 8192)]
    demand_cpu = demand_mem = 0
    specs: list[tuple[ContainerSpec, int]] = []
    # About 60 % of the cluster's capacity, in jobs of identical tasks, arriving shuffled, so
    # everything fits and the lower bound compares like with like.
    cap_cpu, cap_mem = scale.quality_nodes * 16_000, scale.quality_nodes * 64 * GiB
    while demand_mem < 0.6 * cap_mem and demand_cpu < 0.6 * cap_cpu:
        cpu, mem = rng.choice(sizes)
        count = rng.randint(5, 40)
        specs.append((ContainerSpec(image=f"b{len(specs)}", resources=Resources(
            millicpus=cpu, memory=mem * MiB)), count))
        demand_cpu += cpu * count
        demand_mem += mem * MiB * count
    lower: int = max(math.ceil(demand_cpu / 16_000), math.ceil(demand_mem / (64 * GiB)))
    batch = [Task(f"b{j}.{i}", s) for j, (s, n) in enumerate(specs) for i in range(n)]
    out: dict[str, float] = {"binpack_lower_bound_nodes": float(lower)}
    for label, order in (("swarm", "arrival"), ("ffd", "largest-first")):
        options = EngineOptions(strategy="binpack", order=order)  # type: ignore[arg-type]
        run = run_engine(f"binpack {label}", nodes, [batch], options=options)
        used = nodes_used(run.snapshot) if run.snapshot else 0
        smallest = (min(c for c, _ in sizes), min(m for _, m in sizes) * MiB)
        lost_cpu, lost_mem = stranded(run.snapshot, *smallest) if run.snapshot else (0.0, 0.0)
        out[f"binpack_{label}_nodes"] = used
        out[f"binpack_{label}_vs_lower_bound"] = round(used / lower, 4)
        out[f"binpack_{label}_stranded_cpu"] = round(lost_cpu, 4)
        out[f"binpack_{label}_stranded_memory"] = round(lost_mem, 4)
        out[f"binpack_{label}_violations"] = run.violations
        out[f"binpack_{label}_placed"] = run.placed
        out["binpack_tasks"] = run.tasks
    return out


def spread_quality(scale: Scale, seed: int) -> tuple[dict[str, float], list[Run]]:
    """Homogeneous nodes; CV of per-node load for spread, exact and with candidate sampling."""
    nodes = generate_cluster(ClusterShape(scale.mid_nodes, homogeneous=True), seed + 14)
    rng = random.Random(seed + 15)
    specs = [ContainerSpec(image=f"s{j}", resources=Resources(
        millicpus=rng.choice((100, 250, 500)), memory=rng.choice((256, 512, 1024)) * MiB))
        for j in range(20)]
    jobs = jobs_of(specs, scale.mid_nodes // 2, "s")
    out: dict[str, float] = {}
    runs = []
    for key, options in (("spread", EngineOptions()),
                         ("spread_log2", EngineOptions(sample="log2")),
                         ("spread_10pct", EngineOptions(sample=0.1)),
                         ("random", EngineOptions(strategy="random"))):
        run = run_engine("spread q", nodes, jobs, options=options)
        out[f"{key}_cv"] = round(load_cv(run.snapshot), 4) if run.snapshot else 0.0
        out[f"{key}_placements_per_s"] = round(run.rate)
        runs.append(run)
    # Sidecars that reserve nothing leave every weight equal. Swarm classic sorts exactly equal
    # weights by container count (weighting="swarm"); shoal adds the count as a small term of
    # the weight (1e-4 per container), which also decides weights closer than that. Measured
    # alone (all weights tie exactly) and interleaved with the reserving jobs (weights differ,
    # near-ties possible): CV of containers per node, and of load for the mix.
    sidecar = ContainerSpec(image="sidecar:1")
    sidecars = jobs_of([sidecar] * 5, scale.mid_nodes, "z")
    mixed = [job for pair in zip(jobs, jobs_of([sidecar] * len(jobs), len(jobs[0]), "m"),
                                 strict=True) for job in pair]
    for key, weighting in (("swarm", "swarm"), ("shoal", "shoal")):
        options = EngineOptions(weighting=weighting)  # type: ignore[arg-type]
        run = run_engine("sidecars", nodes, sidecars, options=options)
        out[f"zero_reservation_{key}_count_cv"] = (
            round(count_cv(run.snapshot), 4) if run.snapshot else 0.0)
        runs.append(run)
        run = run_engine("sidecars mixed", nodes, mixed, options=options)
        out[f"mixed_sidecars_{key}_count_cv"] = (
            round(count_cv(run.snapshot), 4) if run.snapshot else 0.0)
        out[f"mixed_sidecars_{key}_load_cv"] = (
            round(load_cv(run.snapshot), 4) if run.snapshot else 0.0)
        runs.append(run)
    return out, runs


def scaling(scale: Scale, seed: int) -> list[tuple[int, float, float]]:
    """Placements/s against cluster size, engine and naive, the same job mix at every size."""
    points = []
    for size in scale.plot_sizes:
        nodes = generate_cluster(ClusterShape(size), seed + 16)
        rng = random.Random(seed + 17)
        specs = [job_spec(rng, j) for j in range(scale.plot_tasks // 1000 or 1)]
        per_job = min(1000, scale.plot_tasks)
        jobs = jobs_of(specs, per_job, "p")
        # Best of two: the first run at a size also pays for warming caches and the allocator.
        engine = max((run_engine("scaling", nodes, jobs, check=False) for _ in range(2)),
                     key=lambda r: r.rate)
        naive = run_naive("scaling", nodes, [t for j in jobs for t in j][: scale.plot_naive_tasks])
        points.append((size, engine.rate, naive.rate))
    return points


def sweep_workload(scale: Scale, seed: int) -> tuple[list[NodeInfo], list[list[Task]]]:
    """The C1M shape at the sweep's largest size (20,000 nodes in full) with the newer rules on:
    every third job spreads over zones (``spread=node.labels.zone``), every fifth caps its
    replicas per node, every seventh wants its image stored (``~image==``) and every eleventh
    binds a host port on 127.0.0.1."""
    size = scale.plot_sizes[-1]
    nodes = generate_cluster(ClusterShape(size), seed + 16)
    rng = random.Random(seed + 17)
    specs = []
    for j in range(scale.plot_tasks // 1000 or 1):
        spec = job_spec(rng, j)
        specs.append(msgspec.structs.replace(
            spec,
            preferences=["spread=node.labels.zone"] if j % 3 == 0 else [],
            max_per_node=4 if j % 5 == 0 else 0,
            affinities=[f"~image=={spec.image}"] if j % 7 == 0 else [],
            ports=[PortMapping(container_port=80, host_port=20_000 + j, host_ip="127.0.0.1")]
            if j % 11 == 0 else []))
    return nodes, jobs_of(specs, min(1000, scale.plot_tasks), "w")


def sweep_with_rules(scale: Scale, seed: int) -> Run:
    """``sweep_workload``, checked by the independent checker. Best of two runs."""
    nodes, jobs = sweep_workload(scale, seed)
    return max((run_engine("sweep, rules on", nodes, jobs) for _ in range(2)),
               key=lambda r: r.rate)


_INTERPRETED_SWEEP = """
import sys
from bench.placement import FULL, QUICK, sweep_with_rules
from scheduler.placement import native
run = sweep_with_rules(QUICK if sys.argv[1] == "quick" else FULL, int(sys.argv[2]))
print(native.in_use(), run.rate, run.digest, run.violations)
"""


def interpreted_sweep(quick: bool, seed: int) -> tuple[float, str, int]:
    """``sweep_with_rules`` in a child process that loads the interpreted engine: its rate,
    digest and violations."""
    env = {**os.environ, native.ENVIRONMENT: "0"}
    out = subprocess.run(
        [sys.executable, "-c", _INTERPRETED_SWEEP, "quick" if quick else "full", str(seed)],
        env=env, capture_output=True, text=True, check=True, timeout=600).stdout.split()
    if out[0] != "False":
        raise RuntimeError("the interpreted sweep's child loaded the compiled engine")
    return float(out[1]), out[2], int(out[3])


def plot(points: list[tuple[int, float, float]]) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    sizes = [p[0] for p in points]
    ax.loglog(sizes, [p[1] for p in points], "o-", label="engine (classes + heap)")
    ax.loglog(sizes, [p[2] for p in points], "s--", label="naive (every task scans every node)")
    ax.set_xlabel("nodes")
    ax.set_ylabel("placements / s (one core)")
    ax.set_title("shoal placement: throughput against cluster size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / "placement.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path.relative_to(RESULTS_DIR.parent.parent))  # as the repository names it


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench placement", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, same keys")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    scale = QUICK if args.quick else FULL
    seed: int = args.seed

    big, naive = c1m(scale, seed)
    runs: list[Run] = [big, naive, c100k(scale, seed)]
    perf, perf_naive = scheduler_perf(scale, seed)
    aff, aff_naive = affinity_heavy(scale, seed)
    ports, ports_naive = port_heavy(scale, seed)
    mix, example = mixed(scale, seed)
    runs += [perf, perf_naive, aff, aff_naive, ports, ports_naive, mix]
    spread, spread_runs = spread_quality(scale, seed)
    runs += spread_runs
    binpack = binpack_quality(scale, seed)
    print_table("placement: throughput, latency, checker", COLUMNS, [r.row() for r in runs])
    print(f"naive runs ('cut') place only the first {scale.naive_tasks} tasks of the same "
          "workload: at thousands of nodes the full size would take hours.")
    print(f"example refusal: {example}")
    print_table("placement: quality", ["figure", "value"],
                [[k, v] for k, v in {**binpack, **spread}.items()])

    points = [] if args.no_plot else scaling(scale, seed)
    sweep = sweep_with_rules(scale, seed)
    runs.append(sweep)
    engine_kind = native.description()
    print_table("placement: the sweep's largest size with preferences and newer rules on",
                COLUMNS, [sweep.row()])
    plain_rate, plain_digest, plain_violations = interpreted_sweep(args.quick, seed)
    same = plain_digest == sweep.digest
    print(f"placement engine: {engine_kind}; the same sweep, interpreted engine (child "
          f"process): {round(plain_rate):,}/s, {plain_violations} violations, answers "
          f"{'the same' if same else 'DIFFERENT'} (digest {plain_digest})")
    if points:
        print_table("placement: placements/s against cluster size",
                    ["nodes", "engine", "naive", "speedup"],
                    [[n, round(e), round(v), round(e / v) if v else 0] for n, e, v in points])
    png = plot(points) if points else ""

    violations = sum(r.violations for r in runs if r.violations > 0) + sum(
        int(v) for k, v in binpack.items() if k.endswith("_violations")) + max(
        plain_violations, 0) + (0 if same else 1)  # differing answers count as one
    figures: dict[str, object] = {
        "scale": "quick" if args.quick else "full",
        "c1m_nodes": big.nodes,
        "c1m_tasks": big.tasks,
        "c1m_placements_per_s": round(big.rate),
        "c1m_placed": big.placed,
        "c1m_decision_ms_p50": round(big.pct(0.5), 3),
        "c1m_decision_ms_p99": round(big.pct(0.99), 3),
        "c1m_task_us_amortized": round(1e6 / big.rate, 2) if big.rate else 0.0,
        "sweep_nodes": sweep.nodes,
        f"sweep_{sweep.nodes}_placements_per_s": round(sweep.rate),
        f"sweep_{sweep.nodes}_interpreted_placements_per_s": round(plain_rate),
        "sweep_interpreted_same_answers": same,
        "placement_engine": engine_kind,
        "sweep_placed": sweep.placed,
        "naive_placements_per_s": round(naive.rate, 1),
        "naive_tasks": naive.tasks,
        "speedup_vs_naive": round(big.rate / naive.rate, 1) if naive.rate else 0.0,
        "violations": violations,
        "binpack_nodes_vs_lower_bound": binpack["binpack_ffd_vs_lower_bound"],
        "spread_cv": spread["spread_cv"],
        "workloads": {r.name + " / " + r.scheduler: {
            "nodes": r.nodes, "tasks": r.tasks, "placed": r.placed, "refused": r.refused,
            "placements_per_s": round(r.rate, 1), "p50_ms": round(r.pct(0.5), 4),
            "p99_ms": round(r.pct(0.99), 4), "per": r.per, "violations": r.violations,
            "digest": r.digest,
        } for r in runs},
        "quality": {**binpack, **spread},
        "example_refusal": example,
        "scaling": [{"nodes": n, "engine_per_s": round(e), "naive_per_s": round(v, 1)}
                    for n, e, v in points],
        "plot": png,
    }
    path = write_results("placement", figures, quick=args.quick)
    print(f"wrote {path}" + (f" and {png}" if png else ""))
    return 0 if violations == 0 else 1
