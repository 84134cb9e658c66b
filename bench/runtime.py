"""``python -m bench runtime``: create+start+wait+delete of /bin/true, shoal vs runc vs crun.

All paths run the same busybox bundle in the same run: shoal's in-process API (the asyncio
``RuntimeHelper`` the worker uses, talking to the runtime helper process), the library forking
directly in this single-threaded process (for reference), the ``shoal runtime run`` command
(the ``shoal`` console script), ``shoal-runtime run`` (the runtime's own start-up script that
deploy/setup.sh installs, what a runc drop-in runs), ``runc run`` and ``crun run`` (crun
inside a private mount namespace without the cgroup2 mount, which crun 1.8 refuses on hybrid
hosts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench._report import print_table, write_results

_CRUN_LOOP = """
import json, subprocess, sys, time
bundle, root, n, prefix = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
out = []
for i in range(n):
    t = time.perf_counter()
    subprocess.run(["crun", "--root", root, "run", "-b", bundle, f"{prefix}{i}"], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    out.append((time.perf_counter() - t) * 1000)
print(json.dumps(out))
"""


# runc or crun: run a sleeping container detached, time `exec true` in it, delete it.
_EXEC_LOOP = """
import json, subprocess, sys, time
tool, bundle, root, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def call(*args):
    subprocess.run([tool, "--root", root, *args], check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
call("run", "-d", "-b", bundle, "x")
out = []
try:
    for i in range(n):
        t = time.perf_counter()
        call("exec", "x", "/bin/true")
        out.append((time.perf_counter() - t) * 1000)
finally:
    call("delete", "-f", "x")
print(json.dumps(out))
"""


def _crun(code: str, *args: str) -> list[float]:
    """A timing loop run where crun 1.8 accepts this host's hybrid cgroups: in a private mount
    namespace without the cgroup2 mount."""
    raw = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$0" -c "$@"',
         sys.executable, code, *args],
        check=True, capture_output=True, text=True).stdout
    times: list[float] = json.loads(raw)
    return times


def _bundle(base: Path, netns: bool, args: list[str] | None = None) -> Path:
    b = base / ("net" if netns else "nonet")
    rootfs = b / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    for d in ("proc", "dev", "sys", "tmp"):
        (rootfs / d).mkdir()
    shutil.copy2("/bin/busybox", rootfs / "bin" / "busybox")
    (rootfs / "bin" / "true").symlink_to("busybox")
    (rootfs / "bin" / "sleep").symlink_to("busybox")
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if netns:
        namespaces.append({"type": "network"})
    config = {
        "ociVersion": "1.0.2",
        "process": {"args": args or ["/bin/true"], "cwd": "/", "env": ["PATH=/bin"],
                    "user": {"uid": 0, "gid": 0}},
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "bench",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "mode=755"]},
        ],
        "linux": {"namespaces": namespaces},
    }
    (b / "config.json").write_text(json.dumps(config))
    return b


ROUNDS = 4


def _rounds(batches: dict[str, Callable[[int, int], list[float]]], n: int,
            rounds: int) -> dict[str, list[float]]:
    """About ``n`` samples of each method, taken in ``rounds`` batches per method; each round
    runs the methods in turn, starting one further along each time."""
    names = list(batches)
    samples: dict[str, list[float]] = {name: [] for name in names}
    per = max(1, n // rounds)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            samples[name] += batches[name](per, r)
    return samples


def _children_cpu_ms() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (used.ru_utime + used.ru_stime) * 1000


def _counting_cpu(fn: Callable[[], None], into: list[float]) -> Callable[[], None]:
    """``fn`` (which runs a command), appending the command's CPU (user + sys, with the
    processes it waited for: its container's too) to ``into``: unlike wall time, CPU does not
    grow with the other processes on a shared host."""
    def counted() -> None:
        before = _children_cpu_ms()
        fn()
        into.append(_children_cpu_ms() - before)
    return counted


def _time(fn: object, n: int) -> list[float]:
    assert callable(fn)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def _seccomp_figures(base: Path, devnull: int, n: int, rounds: int) -> dict[str, float]:
    """create+start+wait+delete with Docker's default seccomp profile and without, shoal's
    library path (the filter compiled once, then taken from the cache) beside crun doing the
    same; ``seccomp_create_ms`` is what the profile adds per container. And the worker's path
    (the helper) with the profile beside crun with it: ``inprocess_vs_crun_seccomp``."""
    from worker.runtime import Runtime
    from worker.runtime.docker_seccomp import default_profile

    plain = _bundle(base / "seccomp-off", False)
    confined = _bundle(base / "seccomp-on", False)
    config = json.loads((confined / "config.json").read_text())
    config["linux"]["seccomp"] = default_profile([])
    (confined / "config.json").write_text(json.dumps(config))
    rt = Runtime(base / "seccomp-state")
    counter = iter(range(10**6))

    def library(bundle: Path) -> Callable[[int, int], list[float]]:
        def one() -> None:
            cid = f"s{next(counter)}"
            rt.create(cid, str(bundle), stdio=(devnull, devnull, devnull))
            rt.start(cid)
            rt.wait(cid)
            rt.delete(cid)
        return lambda k, _r: _time(one, k)

    def crun(bundle: Path, tag: str) -> Callable[[int, int], list[float]]:
        return lambda k, r: _crun(_CRUN_LOOP, str(bundle), str(base / "crun"), str(k),
                                  f"{tag}{r}.")

    samples = _rounds({"on": library(confined), "off": library(plain),
                       "crun_on": crun(confined, "son"), "crun_off": crun(plain, "soff"),
                       "inproc_on": lambda k, _r: asyncio.run(
                           _helper_times(base / "seccomp-hstate", confined, k))},
                      n, rounds)
    on, off, crun_on, crun_off, inproc_on = (
        statistics.median(samples[k]) for k in ("on", "off", "crun_on", "crun_off", "inproc_on"))
    return {"inprocess_seccomp_ms": round(inproc_on, 2),
            "inprocess_vs_crun_seccomp": round(inproc_on / crun_on, 3),
            "seccomp_library_ms": round(on, 2), "library_ms_no_seccomp": round(off, 2),
            "seccomp_create_ms": round(on - off, 2),
            "crun_seccomp_ms": round(crun_on, 2), "crun_ms_no_seccomp": round(crun_off, 2),
            "crun_seccomp_create_ms": round(crun_on - crun_off, 2)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench runtime")
    parser.add_argument("--quick", action="store_true", help="few runs, same keys")
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args(argv)
    n = 5 if args.quick else args.runs
    rounds = 1 if args.quick else ROUNDS
    if os.geteuid() != 0:
        print("bench runtime needs root", file=sys.stderr)
        return 2
    from worker.runtime import Runtime
    from worker.runtime import syscalls as sc

    sc.set_child_subreaper()
    # The `shoal` console script beside this interpreter (what users and tools run), and the
    # runtime's start-up script deploy/setup.sh writes beside it.
    script = Path(sys.executable).parent / "shoal"
    shoal = [str(script)] if script.exists() else [sys.executable, "-m", "cli"]
    launcher = Path(sys.executable).parent / "shoal-runtime"
    if not launcher.exists():
        print(f"bench runtime: {launcher} is missing: run deploy/setup.sh", file=sys.stderr)
        return 2
    # Bytecode caches written as a user's would be: with PYTHONDONTWRITEBYTECODE (set on these
    # machines) a module changed since the last compileall is compiled at every start.
    command_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    base = Path(tempfile.mkdtemp(prefix="shoal-bench-"))
    devnull = os.open(os.devnull, os.O_RDWR)
    figures: dict[str, object] = {"runs": n, "rounds": rounds}
    rows = []
    try:
        for netns in (False, True):
            bundle = _bundle(base, netns)
            rt = Runtime(base / "state")
            counter = iter(range(10**6))

            def inprocess(rt: Runtime = rt, bundle: Path = bundle,
                          counter: object = counter) -> None:
                assert isinstance(counter, type(iter(range(1))))
                cid = f"c{next(counter)}"
                rt.create(cid, str(bundle), stdio=(devnull, devnull, devnull))
                rt.start(cid)
                rt.wait(cid)
                rt.delete(cid)

            def command(bundle: Path = bundle, counter: object = counter) -> None:
                assert isinstance(counter, type(iter(range(1))))
                subprocess.run([*shoal, "runtime", "--root", str(base / "state"), "run",
                                "--bundle", str(bundle), f"k{next(counter)}"],
                               check=True, stdin=devnull, stdout=devnull, env=command_env)

            def started(bundle: Path = bundle, counter: object = counter) -> None:
                assert isinstance(counter, type(iter(range(1))))
                subprocess.run([str(launcher), "--root", str(base / "state"), "run",
                                "--bundle", str(bundle), f"l{next(counter)}"],
                               check=True, stdin=devnull, stdout=devnull, env=command_env)

            def runc(bundle: Path = bundle, counter: object = counter) -> None:
                assert isinstance(counter, type(iter(range(1))))
                subprocess.run(["runc", "--root", str(base / "runc"), "run", "-b", str(bundle),
                                f"r{next(counter)}"], check=True, stdin=devnull, stdout=devnull)

            cpu: dict[str, list[float]] = {"command": [], "launcher": [], "runc": []}
            command_cpu = _counting_cpu(command, cpu["command"])
            started_cpu = _counting_cpu(started, cpu["launcher"])
            runc_cpu = _counting_cpu(runc, cpu["runc"])
            # Rounds, each method's batch in turn and the order rotated: on a shared host the
            # noise drifts, and a batch also pays for the kernel's deferred teardown of the
            # batch before it; so every method gets its share of both.
            # (The batches run right here, inside this iteration of the loop.)
            batches: dict[str, Callable[[int, int], list[float]]] = {
                "inproc": lambda k, _r: asyncio.run(
                    _helper_times(base / "hstate", bundle, k)),  # noqa: B023
                "crun": lambda k, r: _crun(_CRUN_LOOP, str(bundle),  # noqa: B023
                                           str(base / "crun"), str(k), f"b{r}."),
                "library": lambda k, _r: _time(inprocess, k),
                "runc": lambda k, _r: _time(runc_cpu, k),  # noqa: B023
                "command": lambda k, _r: _time(command_cpu, max(1, k // 2)),  # noqa: B023
                "launcher": lambda k, _r: _time(started_cpu, max(1, k // 2)),  # noqa: B023
            }
            samples = _rounds(batches, n, rounds)
            inproc, crun_ms, library, runc_ms, cmd, started_ms = (
                statistics.median(samples[k])
                for k in ("inproc", "crun", "library", "runc", "command", "launcher"))
            suffix = "_netns" if netns else ""
            figures.update({f"inprocess_ms{suffix}": round(inproc, 2),
                            f"library_ms{suffix}": round(library, 2),
                            f"command_ms{suffix}": round(cmd, 2),
                            f"launcher_ms{suffix}": round(started_ms, 2),
                            f"runc_ms{suffix}": round(runc_ms, 2),
                            f"crun_ms{suffix}": round(crun_ms, 2),
                            f"inprocess_vs_crun{suffix}": round(inproc / crun_ms, 3),
                            f"command_vs_runc{suffix}": round(cmd / runc_ms, 3),
                            f"launcher_vs_runc{suffix}": round(started_ms / runc_ms, 3)})
            command_cpu_ms, launcher_cpu_ms, runc_cpu_ms = (
                statistics.median(cpu[k]) for k in ("command", "launcher", "runc"))
            figures.update({f"command_cpu_ms{suffix}": round(command_cpu_ms, 2),
                            f"launcher_cpu_ms{suffix}": round(launcher_cpu_ms, 2),
                            f"runc_cpu_ms{suffix}": round(runc_cpu_ms, 2),
                            f"command_cpu_vs_runc{suffix}": round(command_cpu_ms / runc_cpu_ms, 3),
                            f"launcher_cpu_vs_runc{suffix}":
                                round(launcher_cpu_ms / runc_cpu_ms, 3)})
            rows.append(["netns" if netns else "no netns", inproc, library, cmd, started_ms,
                         runc_ms, crun_ms, inproc / crun_ms])
        figures.update(_seccomp_figures(base, devnull, n, rounds))
        sleeper = _bundle(base / "exec", False, ["/bin/sleep", "1000"])

        def runc_exec(k: int, _r: int) -> list[float]:
            out = subprocess.run([sys.executable, "-c", _EXEC_LOOP, "runc", str(sleeper),
                                  str(base / "runc"), str(k)],
                                 check=True, capture_output=True, text=True).stdout
            times: list[float] = json.loads(out)
            return times

        samples = _rounds({
            "shoal": lambda k, _r: asyncio.run(_exec_times(base / "hstate", sleeper, k)),
            "crun": lambda k, _r: _crun(_EXEC_LOOP, "crun", str(sleeper), str(base / "crun"),
                                        str(k)),
            "runc": runc_exec}, n, rounds)
        exec_ms, crun_exec_ms, runc_exec_ms = (
            statistics.median(samples[k]) for k in ("shoal", "crun", "runc"))
        figures.update({"exec_ms": round(exec_ms, 2), "runc_exec_ms": round(runc_exec_ms, 2),
                        "crun_exec_ms": round(crun_exec_ms, 2),
                        "exec_vs_crun": round(exec_ms / crun_exec_ms, 3)})
        per_container, footprint = asyncio.run(_overhead(base / "hstate", base))
        figures["overhead_kib_per_container"] = per_container
        figures.update({f"{name}_pss_kib": kib for name, kib in footprint.items()})
    finally:
        os.close(devnull)
        shutil.rmtree(base, ignore_errors=True)
    print_table("create+start+wait+delete of /bin/true, median ms",
                ["case", "shoal in-process (helper)", "library, direct fork",
                 "shoal runtime", "shoal-runtime", "runc", "crun (reference)",
                 "in-process / crun"], rows)
    print_table("CPU of the command (user + sys, its container's included), median ms",
                ["case", "shoal runtime", "shoal-runtime", "runc", "shoal runtime / runc",
                 "shoal-runtime / runc"],
                [[case, figures[f"command_cpu_ms{sfx}"], figures[f"launcher_cpu_ms{sfx}"],
                  figures[f"runc_cpu_ms{sfx}"], figures[f"command_cpu_vs_runc{sfx}"],
                  figures[f"launcher_cpu_vs_runc{sfx}"]]
                 for case, sfx in (("no netns", ""), ("netns", "_netns"))])
    print_table("exec of /bin/true in a running container, median ms",
                ["shoal in-process (helper)", "runc", "crun (reference)", "shoal / crun"],
                [[figures["exec_ms"], figures["runc_exec_ms"], figures["crun_exec_ms"],
                  figures["exec_vs_crun"]]])
    print_table("Docker's default seccomp profile: create+start+wait+delete, median ms",
                ["shoal in-process (helper), seccomp", "/ crun", "shoal library, seccomp",
                 "without", "added", "crun, seccomp", "without", "added"],
                [[figures[k] for k in ("inprocess_seccomp_ms", "inprocess_vs_crun_seccomp",
                                       "seccomp_library_ms", "library_ms_no_seccomp",
                                       "seccomp_create_ms", "crun_seccomp_ms",
                                       "crun_ms_no_seccomp", "crun_seccomp_create_ms")]])
    print(f"host memory per running container attributable to shoal: "
          f"{figures['overhead_kib_per_container']} KiB")
    print(f"once per host (proportional set size): helper {figures['helper_pss_kib']} KiB, "
          f"zygote {figures['zygote_pss_kib']} KiB, spare init {figures['spare_pss_kib']} KiB")
    path = write_results("runtime", figures, quick=args.quick)
    print(f"wrote {path}")
    return 0


async def _exec_times(root: Path, bundle: Path, n: int) -> list[float]:
    """exec of /bin/true in a running container, through the worker's API, until it exits."""
    from worker.runtime.client import RuntimeHelper

    rt = await RuntimeHelper.spawn(root, log_level="warning")
    out = []
    try:
        await rt.create("x", bundle)
        await rt.start("x")
        for i in range(n + 3):
            t = time.perf_counter()
            proc = await rt.exec("x", ["/bin/true"])
            await rt.wait_exec("x", proc.pid)
            if i >= 3:
                out.append((time.perf_counter() - t) * 1000)
        await rt.delete("x", force=True)
    finally:
        await rt.shutdown()
    return out


async def _helper_times(root: Path, bundle: Path, n: int) -> list[float]:
    """create+start+wait+delete through the worker's API: the asyncio client and the helper."""
    from worker.runtime.client import RuntimeHelper

    rt = await RuntimeHelper.spawn(root, log_level="warning")
    out = []
    try:
        for i in range(n + 3):
            t = time.perf_counter()
            cid = f"h{i}"
            await rt.create(cid, bundle)
            await rt.start(cid)
            await rt.wait(cid)
            await rt.delete(cid)
            if i >= 3:  # the first runs warm the helper up (imports, caches)
                out.append((time.perf_counter() - t) * 1000)
    finally:
        await rt.shutdown()
    return out


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _pss_kib(pid: int) -> int:
    """Proportional set size: pages shared with other processes (the zygote's with its spare)
    count once in all, not once per process."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def _per_host(helper: int) -> dict[str, list[int]]:
    """The helper's own processes: itself, its zygote, the zygote's spare init."""
    own_ns = os.readlink(f"/proc/{helper}/ns/pid")
    found: dict[str, list[int]] = {"helper": [helper], "zygote": [], "spare": []}
    for pid in _children(helper):
        try:
            if b"worker.runtime.zygote" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue
            same_ns = os.readlink(f"/proc/{pid}/ns/pid") == own_ns
        except OSError:
            continue
        found["zygote" if same_ns else "spare"].append(pid)
    return found


async def _overhead(root: Path, base: Path) -> tuple[float, dict[str, int]]:
    """Host memory per running container that is shoal's: the growth of the helper and its
    zygote (proportional set size) while they run k containers, plus any other process that is
    not a container's; and the per-host footprint (helper, zygote, spare), reported apart."""
    from worker.runtime.client import RuntimeHelper

    bundle = base / "nonet"
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"]["args"] = ["/bin/sleep", "1000"]
    (bundle / "config.json").write_text(json.dumps(cfg))
    rt = await RuntimeHelper.spawn(root, log_level="warning")
    k = 20
    ids = [f"m{i}" for i in range(k)]
    try:
        # Containers first, so the one-off growth (imports, buffers) is not counted.
        for cid in ("warm1", "warm2"):
            await rt.create(cid, bundle)
            await rt.delete(cid, force=True)
        helper = rt.helper_pid
        hosts = _per_host(helper)
        before = sum(_pss_kib(p) for p in hosts["helper"] + hosts["zygote"])
        for cid in ids:
            await rt.create(cid, bundle)
            await rt.start(cid)
        container_pids = {pid for cid in ids for pid in await rt.ps(cid)}
        hosts = _per_host(helper)
        ours = {p for pids in hosts.values() for p in pids}
        extra = sum(_pss_kib(p) for p in _children(helper)
                    if p not in container_pids and p not in ours)
        after = sum(_pss_kib(p) for p in hosts["helper"] + hosts["zygote"])
        footprint = {name: sum(_pss_kib(p) for p in pids) for name, pids in hosts.items()}
    finally:
        for cid in ids:
            await rt.delete(cid, force=True)
        await rt.shutdown()
    return round(max(0, after - before + extra) / k, 1), footprint
