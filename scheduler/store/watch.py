"""Watch a key range from a revision, resuming across dropped connections and etcd restarts.

``watch_raw`` yields etcd's events (protobuf) and owns the resume logic: it remembers the
revision after the last event delivered and re-creates the watch from there on any stream
failure, so no event is lost or repeated. When that revision was compacted it raises
``Compacted``; the caller re-lists and watches again from the listing's revision (the
informer pattern). ``watch_records`` decodes events into typed ``RecordEvent``s.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import structlog
from aetcd import rpc

from protocol.errors import Internal, InvalidArgument, Unavailable
from scheduler.store.backoff import Backoff
from scheduler.store.connection import EtcdClient
from scheduler.store.errors import Compacted
from scheduler.store.keys import Layout, prefix_end
from scheduler.store.kv import decode_kv
from scheduler.store.records import Kind

log = structlog.get_logger("shoal.store")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RecordEvent(Generic[T]):
    """A record was put (created or updated) or deleted at ``revision``."""

    type: Literal["put", "delete"]
    id: str
    value: T | None  # None for a delete
    revision: int
    create_revision: int  # 0 for a delete


async def watch_raw(client: EtcdClient, key: bytes, range_end: bytes, start_revision: int
                    ) -> AsyncGenerator[Any, None]:
    """etcd events on ``[key, range_end)`` from ``start_revision`` (0: from now), forever.

    Resumes on another member (or the same one once it is back) with a capped, jittered
    backoff whenever the stream breaks: a watch is meant to outlive members and restarts.
    Raises ``Compacted`` and etcd's other refusals, all store errors.
    """
    next_revision = start_revision
    pauses = Backoff()
    while True:
        stream = client.stream("watch", "Watch", what="watch")
        try:
            create = rpc.WatchCreateRequest(key=key, range_end=range_end,
                                            start_revision=next_revision,
                                            progress_notify=True)
            await stream.write(rpc.WatchRequest(create_request=create))
            while (resp := await stream.read()) is not None:
                if resp.compact_revision:
                    raise Compacted(f"watch from revision {next_revision}: compacted up to "
                                    f"{resp.compact_revision}",
                                    compact_revision=resp.compact_revision)
                if resp.canceled:
                    reason = resp.cancel_reason or "canceled by etcd"
                    if "future revision" in reason:
                        raise InvalidArgument(f"watch: {reason}")
                    raise Internal(f"watch: {reason}")
                pauses.reset()
                if resp.created and next_revision == 0:
                    # "From now" must mean the same thing after a reconnect.
                    next_revision = resp.header.revision + 1
                for event in resp.events:
                    yield event
                    next_revision = event.kv.mod_revision + 1
                if not resp.events and not resp.created:
                    # A progress notice: every event up to header.revision was sent already.
                    next_revision = max(next_revision, resp.header.revision + 1)
            log.warning("etcd closed the watch stream; resuming", revision=next_revision)
        except Unavailable as exc:
            # The stream broke (``EtcdStream`` moved the client to the next member): resume
            # there from the revision after the last event delivered.
            log.info("watch interrupted; resuming", revision=next_revision,
                     endpoint=stream.endpoint, error=str(exc))
        finally:
            stream.close()
        await asyncio.sleep(pauses.next())


async def watch_records(client: EtcdClient, layout: Layout, kind: Kind[T], *,
                        start_revision: int = 0) -> AsyncGenerator[RecordEvent[T], None]:
    """Typed events of one collection from ``start_revision``; undecodable records are skipped
    with a logged error naming the key, never stalling the watch."""
    prefix = layout.kind_prefix(kind.name)
    async for event in watch_raw(client, prefix, prefix_end(prefix), start_revision):
        kv = event.kv
        if event.type == rpc.Event.DELETE:
            parts = layout.split(kv.key)
            if parts is None or parts[0] != kind.name:
                log.error("skipping a key outside its collection",
                          key=kv.key.decode(errors="replace"), kind=kind.name)
                continue
            yield RecordEvent("delete", parts[1], None, kv.mod_revision, 0)
            continue
        record = decode_kv(kind, layout, kv.key, kv.value, kv.mod_revision, kv.create_revision)
        if record is not None:
            yield RecordEvent("put", record.id, record.value, record.mod_revision,
                              record.create_revision)
