"""``shoal runtime``'s verbs about a live container's resources, with runc's flags and output:
``update`` (limits changed in place) and ``events`` (stats and OOM events)."""

from __future__ import annotations

import sys

import click

from worker.runtime.cli_base import RuncCommand, runtime_of
from worker.runtime.errors import OperationFailed, WrongState

_LIVE = ("created", "running", "paused")


def _duration(value: str) -> float:
    """Go's time.ParseDuration for the units runc's --interval is given in."""
    units = (("ms", 0.001), ("us", 1e-6), ("ns", 1e-9), ("s", 1.0), ("m", 60.0), ("h", 3600.0))
    for suffix, scale in units:
        if value.endswith(suffix):
            try:
                seconds = float(value[: -len(suffix)]) * scale
            except ValueError:
                break
            if seconds > 0:
                return seconds
            break
    raise click.BadParameter(f"{value!r} is not a positive duration such as 5s or 100ms")


@click.command(cls=RuncCommand)
@click.option("--interval", default="5s", show_default=True, help="Time between stats.")
@click.option("--stats", "once", is_flag=True, help="Print the stats once and exit.")
@click.argument("container_id")
@click.pass_context
def events(ctx: click.Context, interval: str, once: bool, container_id: str) -> None:
    """Print the container's stats (JSON lines) every --interval, and its OOM events, until
    it exits."""
    from worker.runtime import events as ev

    period = _duration(interval)
    rt = runtime_of(ctx)
    record = rt.record(container_id)
    status = rt.state(container_id).status
    if status not in _LIVE:
        raise WrongState(f"container {container_id!r} is {status}")
    if once:
        click.echo(ev.event("stats", container_id, ev.stats(record.cgroup_dirs)))
        return

    def emit(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    ev.stream(container_id, record.cgroup_dirs, record.pid, period, emit)


_UPDATE_FLAGS: dict[str, tuple[str, str, str]] = {
    # option: (resources section, field, how the value is read)
    "blkio_weight": ("block_IO", "weight", "int"),
    "cpu_period": ("cpu", "period", "int"),
    "cpu_quota": ("cpu", "quota", "int"),
    "cpu_share": ("cpu", "shares", "int"),
    "cpu_rt_period": ("cpu", "realtime_period", "int"),
    "cpu_rt_runtime": ("cpu", "realtime_runtime", "int"),
    "cpuset_cpus": ("cpu", "cpus", "str"),
    "cpuset_mems": ("cpu", "mems", "str"),
    "memory": ("memory", "limit", "bytes"),
    "memory_reservation": ("memory", "reservation", "bytes"),
    "memory_swap": ("memory", "swap", "bytes"),
    "kernel_memory": ("memory", "kernel", "bytes"),
    "kernel_memory_tcp": ("memory", "kernel_TCP", "bytes"),
    "pids_limit": ("pids", "limit", "int"),
}


@click.command(cls=RuncCommand)
@click.option("--resources", "-r", "resources_file", default=None, metavar="FILE",
              help="runtime-spec linux.resources JSON ('-' reads stdin); flags override it.")
@click.option("--blkio-weight", default=None, help="Block IO weight, 10 to 1000.")
@click.option("--cpu-period", default=None, help="CPU CFS period (microseconds).")
@click.option("--cpu-quota", default=None, help="CPU CFS quota (microseconds).")
@click.option("--cpu-share", default=None, help="CPU shares (relative weight).")
@click.option("--cpu-rt-period", default=None, help="Realtime period (microseconds).")
@click.option("--cpu-rt-runtime", default=None, help="Realtime runtime (microseconds).")
@click.option("--cpuset-cpus", default=None, help="CPUs allowed, e.g. 0-3 or 0,1.")
@click.option("--cpuset-mems", default=None, help="Memory nodes allowed.")
@click.option("--memory", default=None, help="Memory limit (e.g. 50M; -1 for none).")
@click.option("--memory-reservation", default=None, help="Memory soft limit.")
@click.option("--memory-swap", default=None, help="Memory plus swap limit (-1 for none).")
@click.option("--kernel-memory", default=None, help="Refused: kernel memory limits.")
@click.option("--kernel-memory-tcp", default=None, help="Refused: kernel TCP memory limits.")
@click.option("--pids-limit", default=None, help="Maximum number of processes (-1: none).")
@click.argument("container_id")
@click.pass_context
def update(ctx: click.Context, /, resources_file: str | None, container_id: str,
           **flags: str | None) -> None:
    """Change the resource limits of a live container."""
    from worker.runtime import resources_update
    from worker.runtime.records import camel_key, decode_into, loads, to_builtins
    from worker.runtime.spec import Resources

    rt = runtime_of(ctx)
    record = rt.record(container_id)
    status = rt.state(container_id).status
    if status not in _LIVE:
        raise WrongState(f"container {container_id!r} is {status}")
    doc: dict[str, dict[str, object]] = {}
    if resources_file is not None:
        if resources_file == "-":
            raw = sys.stdin.buffer.read()
        else:
            with open(resources_file, "rb") as f:
                raw = f.read()
        try:
            # Field names as Go's encoding/json (runc's) matches them: "CPU" is cpu.
            doc = to_builtins(decode_into(Resources, loads(raw)))
        except ValueError as exc:
            raise OperationFailed(f"invalid resources: {exc}") from exc
    for option, value in flags.items():
        if value is None:
            continue
        section, field, kind = _UPDATE_FLAGS[option]
        try:
            parsed: object = (resources_update.parse_bytes(value) if kind == "bytes"
                              else int(value) if kind == "int" else value)
        except ValueError as exc:
            raise OperationFailed(f"--{option.replace('_', '-')}: {exc}") from exc
        doc.setdefault(camel_key(section), {})[camel_key(field)] = parsed
    memory = doc.get("memory", {})
    if memory.get("limit") == -1 and "swap" not in memory:
        memory["swap"] = -1  # as runc: no memory limit leaves no memory+swap limit either
    res = decode_into(Resources, doc)
    resources_update.apply(record.cgroup_dirs, res)


VERBS = [events, update]
