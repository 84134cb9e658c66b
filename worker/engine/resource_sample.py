"""One sample of a running container's resource use, read where Docker reads it: its cgroups
(cpuacct, memory, pids, blkio; the runtime's ``events`` reads the first three), the host's CPU
time in /proc/stat, and the interface counters of its network namespace (/proc/PID/net/dev).
Blocking reads of small kernel files: call it in a thread."""

from __future__ import annotations

import contextlib
import os
import posixpath
import time
from typing import Any

from protocol.observed import BlockIoEntry, InterfaceCounters, ResourceSample
from worker.runtime import events
from worker.runtime.resources_update import dirs_by_hierarchy

NS_PER_TICK = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
# Docker's two lists from the blkio cgroup, each from the proportional-weight file when the
# I/O scheduler keeps one, else from the throttle layer's (which every scheduler feeds).
BLKIO_LISTS = {
    "io_service_bytes_recursive": ("blkio.io_service_bytes_recursive",
                                   "blkio.throttle.io_service_bytes_recursive",
                                   "blkio.throttle.io_service_bytes"),
    "io_serviced_recursive": ("blkio.io_serviced_recursive",
                              "blkio.throttle.io_serviced_recursive",
                              "blkio.throttle.io_serviced"),
}
NET_DEV_FIELDS = ("rx_bytes", "rx_packets", "rx_errors", "rx_dropped")  # then 4 more rx
NET_DEV_TX = ("tx_bytes", "tx_packets", "tx_errors", "tx_dropped")


def machine_memory() -> int:
    """The host's memory in bytes: the limit shown for a container that has none (Docker's)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def read_sample(cgroup_dirs: list[str], pid: int, *, own_network: bool) -> ResourceSample:
    """The container's use now; ``pid`` is a process in it (its init), whose network
    namespace's interfaces are counted when it has one of its own (``own_network``)."""
    now = time.time()
    raw: dict[str, Any] = events.stats(cgroup_dirs)
    cpu = raw.get("cpu", {})
    usage = cpu.get("usage", {})
    throttling = cpu.get("throttling", {})
    memory = raw.get("memory", {})
    memory_usage = memory.get("usage", {})
    pids = raw.get("pids", {})
    host_memory = machine_memory()
    limit = int(memory_usage.get("limit", 0))
    percpu = [int(n) for n in usage.get("percpu", [])]
    return ResourceSample(
        time=now, cpu_total=int(usage.get("total", 0)), cpu_percpu=percpu,
        cpu_user=int(usage.get("user", 0)), cpu_kernel=int(usage.get("kernel", 0)),
        system_cpu=host_cpu_time(), online_cpus=os.cpu_count() or len(percpu),
        throttling_periods=int(throttling.get("periods", 0)),
        throttled_periods=int(throttling.get("throttled_periods", 0)),
        throttled_time=int(throttling.get("throttled_time", 0)),
        memory_usage=int(memory_usage.get("usage", 0)),
        memory_max_usage=int(memory_usage.get("max", 0)),
        memory_limit=host_memory if limit <= 0 or limit > host_memory else limit,
        memory_failcnt=int(memory_usage.get("failcnt", 0)),
        memory_stats={k: v for k, v in memory.get("raw", {}).items() if v >= 0},
        pids_current=int(pids.get("current", 0)), pids_limit=int(pids.get("limit", 0)),
        blkio=block_io(cgroup_dirs), networks=interfaces(pid) if own_network else {})


def host_cpu_time() -> int:
    """Nanoseconds of CPU time the host has spent, all CPUs together (Docker's
    system_cpu_usage: user, nice, system, idle, iowait, irq and softirq of /proc/stat)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                return sum(int(n) for n in line.split()[1:8]) * NS_PER_TICK
    return 0


def block_io(cgroup_dirs: list[str]) -> dict[str, list[BlockIoEntry]]:
    """Docker's blkio lists from the v1 blkio cgroup ({} without one)."""
    directory = next((d for h, d in dirs_by_hierarchy(cgroup_dirs)
                      if "blkio" in h.controllers), None)
    if directory is None:
        return {}
    found: dict[str, list[BlockIoEntry]] = {}
    for name, files in BLKIO_LISTS.items():
        for file in files:
            entries = _blkio_entries(posixpath.join(directory, file))
            if entries:
                found[name] = entries
                break
    return found


def _blkio_entries(path: str) -> list[BlockIoEntry]:
    """"8:0 Read 4096" lines (the closing "Total N" names no device and is left out)."""
    entries = []
    with contextlib.suppress(OSError), open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) != 3 or ":" not in parts[0]:
                continue
            major, _, minor = parts[0].partition(":")
            with contextlib.suppress(ValueError):
                entries.append(BlockIoEntry(major=int(major), minor=int(minor), op=parts[1],
                                            value=int(parts[2])))
    return entries


def interfaces(pid: int) -> dict[str, InterfaceCounters]:
    """Counters of every interface but loopback in the network namespace of ``pid``."""
    found: dict[str, InterfaceCounters] = {}
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.readlines()[2:]
    except OSError:
        return found
    for line in lines:
        name, sep, numbers = line.partition(":")
        name = name.strip()
        fields = numbers.split()
        if not sep or name == "lo" or len(fields) < 12:
            continue
        values = [int(n) for n in fields]
        found[name] = InterfaceCounters(**dict(zip(NET_DEV_FIELDS, values[0:4], strict=True)),
                                        **dict(zip(NET_DEV_TX, values[8:12], strict=True)))
    return found
