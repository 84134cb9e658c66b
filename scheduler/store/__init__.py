"""Cluster state in etcd: the only code in shoal that talks to etcd.

Records (protocol types in MessagePack) live under one versioned prefix, ``/shoal/v1/``; the key
layout is in LAYOUT.md beside this file. Modules, one job each:

- ``endpoints``: parse ``--etcd http://a:2379,http://b:2379``.
- ``connection``: gRPC channels to the members, failover (``EtcdClient``).
- ``records`` / ``keys``: record types, collections (``Kind``), the key layout.
- ``kv``: typed reads (get, paged list, count) and compare-and-set writes (``Store``).
- ``plan`` (pure) / ``commit``: plans of thousands of changes as transactions of ≤128 ops.
- ``watch``: resumable watches of a collection, typed events, ``Compacted`` when too late.
- ``lease`` / ``election``: leases with our own keepalive; leader election with fencing.
- ``embedded``: a private etcd process for one host, never orphaned.
- ``errors``: the store's error branch; grpc errors are translated here and never leak.
"""

from scheduler.store.commit import commit_plan
from scheduler.store.connection import EtcdClient
from scheduler.store.election import Election, Leadership
from scheduler.store.embedded import EmbeddedEtcd, MemberConfig, find_etcd, local_cluster
from scheduler.store.endpoints import Endpoint, parse_endpoints
from scheduler.store.errors import (
    Compacted,
    EtcdMissing,
    EtcdStartFailed,
    LeaseExpired,
    NotLeader,
)
from scheduler.store.keys import DEFAULT_ROOT, Layout
from scheduler.store.kv import Page, Store
from scheduler.store.lease import Lease
from scheduler.store.plan import (
    Change,
    CommitOutcome,
    Create,
    Delete,
    Guard,
    PlanResult,
    RecordResult,
    Update,
)
from scheduler.store.records import (
    APPS,
    CONTAINERS,
    LEADERS,
    NODES,
    AppRecord,
    ContainerRecord,
    Kind,
    LeaderRecord,
    NodeRecord,
    Versioned,
)
from scheduler.store.watch import RecordEvent, watch_records

__all__ = [
    "APPS",
    "CONTAINERS",
    "DEFAULT_ROOT",
    "LEADERS",
    "NODES",
    "AppRecord",
    "Change",
    "CommitOutcome",
    "Compacted",
    "ContainerRecord",
    "Create",
    "Delete",
    "Election",
    "EmbeddedEtcd",
    "Endpoint",
    "EtcdClient",
    "EtcdMissing",
    "EtcdStartFailed",
    "Guard",
    "Kind",
    "Layout",
    "LeaderRecord",
    "Leadership",
    "Lease",
    "LeaseExpired",
    "MemberConfig",
    "NodeRecord",
    "NotLeader",
    "Page",
    "PlanResult",
    "RecordEvent",
    "RecordResult",
    "Store",
    "Update",
    "Versioned",
    "commit_plan",
    "find_etcd",
    "local_cluster",
    "parse_endpoints",
    "watch_records",
]
