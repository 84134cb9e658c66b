"""A container's resource usage as runc's ``events`` reports it: a stats document read from
its cgroups, and the stream of stats and OOM events until the container is gone."""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import select
import time
from collections.abc import Callable

from worker.runtime.resources_update import dirs_by_hierarchy

_NS_PER_TICK = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _number(path: str) -> int:
    text = _read(path)
    if text is None or text == "max":
        return 0
    return int(text.split()[0])


def _keyed(path: str) -> dict[str, int]:
    text = _read(path) or ""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            out[key] = int(value)
    return out


def stats(cgroup_dirs: list[str]) -> dict[str, object]:
    """runc's types.Stats (the fields cgroups give) of the container's cgroups."""
    dirs = dirs_by_hierarchy(cgroup_dirs)
    if dirs and dirs[0][0].unified:
        return _v2_stats(dirs[0][1])
    return _v1_stats({c: d for h, d in dirs for c in h.controllers})


def _v1_stats(by_ctrl: dict[str, str]) -> dict[str, object]:
    data: dict[str, object] = {}
    acct = by_ctrl.get("cpuacct")
    if acct is not None:
        ticks = _keyed(posixpath.join(acct, "cpuacct.stat"))
        percpu = (_read(posixpath.join(acct, "cpuacct.usage_percpu")) or "").split()
        cpu = by_ctrl.get("cpu", acct)
        throttled = _keyed(posixpath.join(cpu, "cpu.stat"))
        data["cpu"] = {
            "usage": {"total": _number(posixpath.join(acct, "cpuacct.usage")),
                      "percpu": [int(x) for x in percpu],
                      "kernel": ticks.get("system", 0) * _NS_PER_TICK,
                      "user": ticks.get("user", 0) * _NS_PER_TICK},
            "throttling": {"periods": throttled.get("nr_periods", 0),
                           "throttled_periods": throttled.get("nr_throttled", 0),
                           "throttled_time": throttled.get("throttled_time", 0)}}
    mem = by_ctrl.get("memory")
    if mem is not None:
        def usage(prefix: str) -> dict[str, int]:
            return {"limit": _number(posixpath.join(mem, f"{prefix}.limit_in_bytes")),
                    "usage": _number(posixpath.join(mem, f"{prefix}.usage_in_bytes")),
                    "max": _number(posixpath.join(mem, f"{prefix}.max_usage_in_bytes")),
                    "failcnt": _number(posixpath.join(mem, f"{prefix}.failcnt"))}
        raw = _keyed(posixpath.join(mem, "memory.stat"))
        data["memory"] = {"cache": raw.get("cache", 0), "usage": usage("memory"),
                          "swap": usage("memory.memsw"), "kernel": usage("memory.kmem"),
                          "raw": raw}
    pids = by_ctrl.get("pids")
    if pids is not None:
        data["pids"] = {"current": _number(posixpath.join(pids, "pids.current")),
                        "limit": _number(posixpath.join(pids, "pids.max"))}
    return data


def _v2_stats(d: str) -> dict[str, object]:
    cpu = _keyed(posixpath.join(d, "cpu.stat"))
    raw = _keyed(posixpath.join(d, "memory.stat"))
    return {
        "cpu": {"usage": {"total": cpu.get("usage_usec", 0) * 1000,
                          "kernel": cpu.get("system_usec", 0) * 1000,
                          "user": cpu.get("user_usec", 0) * 1000},
                "throttling": {"periods": cpu.get("nr_periods", 0),
                               "throttled_periods": cpu.get("nr_throttled", 0),
                               "throttled_time": cpu.get("throttled_usec", 0) * 1000}},
        "memory": {"cache": raw.get("file", 0),
                   "usage": {"limit": _number(posixpath.join(d, "memory.max")),
                             "usage": _number(posixpath.join(d, "memory.current"))},
                   "swap": {"limit": _number(posixpath.join(d, "memory.swap.max")),
                            "usage": _number(posixpath.join(d, "memory.swap.current"))},
                   "raw": raw},
        "pids": {"current": _number(posixpath.join(d, "pids.current")),
                 "limit": _number(posixpath.join(d, "pids.max"))},
    }


def event(kind: str, container_id: str, data: object | None = None) -> str:
    """One line of runc's events stream."""
    doc: dict[str, object] = {"type": kind, "id": container_id}
    if data is not None:
        doc["data"] = data
    return json.dumps(doc, separators=(",", ":"))


def _oom_counter(cgroup_dirs: list[str]) -> Callable[[], int] | None:
    """How many times the container's memory cgroup met its limit so far (v1 oom_control's
    oom_kill, v2 memory.events' oom), or None without a memory cgroup."""
    for h, d in dirs_by_hierarchy(cgroup_dirs):
        if h.unified:
            return lambda: _keyed(posixpath.join(d, "memory.events")).get("oom", 0)
        if "memory" in h.controllers:
            return lambda: _keyed(posixpath.join(d, "memory.oom_control")).get("oom_kill", 0)
    return None


def stream(container_id: str, cgroup_dirs: list[str], init_pid: int, interval: float,
           emit: Callable[[str], None]) -> None:
    """Stats every ``interval`` seconds and an event per OOM until the init exits (watched
    through a pidfd). OOMs are noticed within a tenth of a second, the counter read between."""
    try:
        pidfd = os.pidfd_open(init_pid)
    except ProcessLookupError:
        return
    ooms = _oom_counter(cgroup_dirs)
    seen = ooms() if ooms is not None else 0
    next_stats = time.monotonic() + interval
    try:
        while True:
            now = time.monotonic()
            wait = max(0.0, min(next_stats - now, 0.1 if ooms is not None else interval))
            ready, _, _ = select.select([pidfd], [], [], wait)
            if ready:
                return
            if ooms is not None:
                count = ooms()
                for _ in range(count - seen):
                    emit(event("oom", container_id))
                seen = max(seen, count)
            if time.monotonic() >= next_stats:
                emit(event("stats", container_id, stats(cgroup_dirs)))
                next_stats += interval
    finally:
        os.close(pidfd)
