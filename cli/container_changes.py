"""The CLI's commands that change a container in place or read its use: ``pause``,
``unpause``, ``rename``, ``update`` and ``stats``, docker's names and flags, against a worker
or a scheduler."""

from __future__ import annotations

import sys

import click

from cli.arguments import parse_memory
from cli.client import ShoalCommand, connect, host_option
from cli.containers import _each
from protocol.messages import (
    ContainerStats,
    Ok,
    PauseContainer,
    RenameContainer,
    StatsContainer,
    UnpauseContainer,
    UpdateContainer,
)
from protocol.observed import ResourceSample
from protocol.specs import RestartPolicy
from protocol.validation import millicpus


@click.command(cls=ShoalCommand)
@host_option
@click.argument("containers", nargs=-1, required=True)
def pause(host: str | None, containers: tuple[str, ...]) -> None:
    """Freeze every process of running containers."""
    _each(host, containers, lambda ref, r: PauseContainer(id=ref, reply=r))


@click.command(cls=ShoalCommand)
@host_option
@click.argument("containers", nargs=-1, required=True)
def unpause(host: str | None, containers: tuple[str, ...]) -> None:
    """Let the processes of paused containers run again."""
    _each(host, containers, lambda ref, r: UnpauseContainer(id=ref, reply=r))


@click.command(cls=ShoalCommand)
@host_option
@click.argument("container")
@click.argument("new_name")
def rename(host: str | None, container: str, new_name: str) -> None:
    """Give a container a new name."""
    with connect(host) as client:
        client.ask(lambda r: RenameContainer(id=container, name=new_name, reply=r), Ok)


@click.command(cls=ShoalCommand)
@host_option
@click.option("-m", "--memory", default=None, help="Memory limit (e.g. 512m).")
@click.option("--memory-swap", default=None, help="Memory plus swap (-1: unlimited swap).")
@click.option("--cpus", type=click.FloatRange(0, 1024), default=None, help="CPUs (0: none).")
@click.option("--cpu-shares", type=click.IntRange(0, 262144), default=None,
              help="Relative CPU weight.")
@click.option("--pids-limit", type=click.IntRange(-1), default=None,
              help="Maximum processes (0 or -1: no limit).")
@click.option("--restart", default=None, help="no | on-failure[:N] | always | unless-stopped")
@click.argument("containers", nargs=-1, required=True)
def update(host: str | None, memory: str | None, memory_swap: str | None, cpus: float | None,
           cpu_shares: int | None, pids_limit: int | None, restart: str | None,
           containers: tuple[str, ...]) -> None:
    """Change the limits and restart policy of containers (running ones at once)."""
    try:
        policy = RestartPolicy.parse(restart) if restart is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--restart") from None
    swap = None if memory_swap is None else \
        -1 if memory_swap.strip() == "-1" else parse_memory(memory_swap)
    if (memory, memory_swap, cpus, cpu_shares, pids_limit, restart) == (None,) * 6:
        raise click.UsageError("give at least one of --memory, --memory-swap, --cpus, "
                               "--cpu-shares, --pids-limit, --restart")
    _each(host, containers, lambda ref, r: UpdateContainer(
        id=ref, memory=parse_memory(memory) if memory is not None else None, memory_swap=swap,
        millicpus=millicpus(cpus) if cpus is not None else None, cpu_shares=cpu_shares,
        pids=max(pids_limit, 0) if pids_limit is not None else None, restart=policy,
        reply=r))


@click.command(cls=ShoalCommand)
@host_option
@click.option("--no-stream", is_flag=True, help="One line per container, then exit.")
@click.argument("containers", nargs=-1, required=True)
def stats(host: str | None, no_stream: bool, containers: tuple[str, ...]) -> None:
    """Show containers' CPU, memory, network, block I/O and process use (every second)."""
    with connect(host) as client:
        streams = [iter(client.messages(lambda r, ref=ref: StatsContainer(  # type: ignore[misc]
            id=ref, stream=True, reply=r))) for ref in containers]
        last: dict[str, ResourceSample] = {}
        rounds = 0
        while streams:
            rows = []
            for stream in list(streams):
                sample = next((m for m in stream if isinstance(m, ContainerStats)), None)
                if sample is None:
                    streams.remove(stream)
                    continue
                rows.append(stats_row(sample, last.get(sample.id)))
                last[sample.id] = sample.sample
            rounds += 1
            if no_stream and rounds < 2:
                continue  # the first round only gives the CPU time to measure from
            click.echo(stats_table(rows))
            sys.stdout.flush()
            if no_stream:
                return


STATS_HEADERS = ("CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %",
                 "NET I/O", "BLOCK I/O", "PIDS")


def stats_row(now: ContainerStats, before: ResourceSample | None) -> list[str]:
    """docker stats' columns: CPU as a share of one CPU over the last interval, memory without
    the page cache it could drop, network and block totals."""
    s = now.sample
    cpu = 0.0
    if before is not None and s.system_cpu > before.system_cpu:
        cpu = (s.cpu_total - before.cpu_total) / (s.system_cpu - before.system_cpu) \
            * (s.online_cpus or 1) * 100
    memory = s.memory_usage - min(s.memory_stats.get("total_inactive_file", 0), s.memory_usage)
    percent = memory / s.memory_limit * 100 if s.memory_limit else 0.0
    rx = sum(n.rx_bytes for n in s.networks.values())
    tx = sum(n.tx_bytes for n in s.networks.values())
    blocks = s.blkio.get("io_service_bytes_recursive", [])
    read = sum(e.value for e in blocks if e.op.lower() == "read")
    written = sum(e.value for e in blocks if e.op.lower() == "write")
    return [now.id[:12], now.name, f"{max(cpu, 0.0):.2f}%",
            f"{human(memory)} / {human(s.memory_limit)}", f"{percent:.2f}%",
            f"{human(rx, 1000)} / {human(tx, 1000)}",
            f"{human(read, 1000)} / {human(written, 1000)}", str(s.pids_current)]


def stats_table(rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(STATS_HEADERS)]
    return "\n".join("   ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))
                     .rstrip() for line in [list(STATS_HEADERS), *rows])


def human(size: float, base: int = 1024) -> str:
    """docker's sizes: binary units (KiB, MiB) for memory, decimal (kB, MB) for traffic."""
    units = ["B", "KiB", "MiB", "GiB", "TiB"] if base == 1024 else \
        ["B", "kB", "MB", "GB", "TB"]
    for unit in units[:-1]:
        if size < base:
            return f"{size:.4g}{unit}"
        size /= base
    return f"{size:.4g}{units[-1]}"


COMMANDS = [pause, unpause, rename, update, stats]
