"""A process that holds a lease (or leadership) until it is killed: run by the tests by path.

usage: holder.py ENDPOINT ROOT lease|leader TTL [CACERT CERT KEY]
Prints "ready REVISION" once it holds a lease-bound key (or leads), then waits forever.
"""

from __future__ import annotations

import asyncio
import sys

import structlog
import uvloop

from protocol.specs import ContainerSpec
from scheduler.store import (
    CONTAINERS,
    ContainerRecord,
    Election,
    EtcdClient,
    Layout,
    LeaderRecord,
    Lease,
    Store,
    load_tls,
    parse_endpoints,
)


async def main(endpoint: str, root: str, mode: str, ttl: int, tls: list[str]) -> None:
    client = EtcdClient(parse_endpoints(endpoint, load_tls(*tls) if tls else None))
    layout = Layout(root)
    if mode == "lease":
        lease = await Lease.grant(client, ttl)
        rev = await Store(client, layout).create(
            CONTAINERS, "held", ContainerRecord(spec=ContainerSpec(image="x")), lease=lease.id)
    else:
        leadership = await Election(client, layout, LeaderRecord(id="holder"),
                                    ttl=ttl).campaign()
        rev = leadership.create_revision
    print(f"ready {rev}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    # stdout carries the "ready" line; logs go to stderr.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    uvloop.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:8]))
