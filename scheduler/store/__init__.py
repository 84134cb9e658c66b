"""Cluster state in etcd: the only code in shoal that talks to etcd.

Records (protocol types in MessagePack) live under one versioned prefix, ``/shoal/v1/``; the key
layout is in LAYOUT.md beside this file. Modules, one job each:

- ``endpoints``: parse ``--etcd https://a:2379,https://b:2379``.
- ``tls``: the CA and client certificate a client uses (``--etcd-cacert/-cert/-key``), checked.
- ``connection``: gRPC channels to the members, failover (``EtcdClient``, ``EtcdStream``).
- ``backoff`` (pure): the pauses between retries while etcd is out of reach.
- ``records`` / ``keys``: record types, collections (``Kind``), the key layout.
- ``kv``: typed reads (get, paged list, count) and compare-and-set writes (``Store``).
- ``plan`` (pure) / ``commit``: plans of thousands of changes as transactions of ≤128 ops.
- ``watch``: resumable watches of a collection, typed events, ``Compacted`` when too late.
- ``lease`` / ``election``: leases with our own keepalive; leader election with fencing.
- ``embedded``: a private etcd process for one host, never orphaned, clients by certificate
  only; ``certificates``: its private CA, server and client certificates.
- ``errors``: the store's error branch; grpc errors are translated here and never leak.

The names below are loaded on first use, from the module that defines them: code that wants only
record types or keys (the reconciler, placement views) does not import aetcd and grpc with them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol.lazyface import lazy_face

if TYPE_CHECKING:
    from scheduler.store.commit import commit_plan as commit_plan
    from scheduler.store.connection import EtcdClient as EtcdClient
    from scheduler.store.election import Election as Election
    from scheduler.store.election import Leadership as Leadership
    from scheduler.store.embedded import EmbeddedEtcd as EmbeddedEtcd
    from scheduler.store.embedded import MemberConfig as MemberConfig
    from scheduler.store.embedded import find_etcd as find_etcd
    from scheduler.store.embedded import local_cluster as local_cluster
    from scheduler.store.endpoints import Endpoint as Endpoint
    from scheduler.store.endpoints import parse_endpoints as parse_endpoints
    from scheduler.store.errors import Compacted as Compacted
    from scheduler.store.errors import EtcdMissing as EtcdMissing
    from scheduler.store.errors import EtcdStartFailed as EtcdStartFailed
    from scheduler.store.errors import LeaseExpired as LeaseExpired
    from scheduler.store.errors import NotLeader as NotLeader
    from scheduler.store.keys import DEFAULT_ROOT as DEFAULT_ROOT
    from scheduler.store.keys import Layout as Layout
    from scheduler.store.kv import Page as Page
    from scheduler.store.kv import Store as Store
    from scheduler.store.lease import Lease as Lease
    from scheduler.store.plan import Change as Change
    from scheduler.store.plan import CommitOutcome as CommitOutcome
    from scheduler.store.plan import Create as Create
    from scheduler.store.plan import Delete as Delete
    from scheduler.store.plan import Guard as Guard
    from scheduler.store.plan import PlanResult as PlanResult
    from scheduler.store.plan import RecordResult as RecordResult
    from scheduler.store.plan import Update as Update
    from scheduler.store.records import ADDRESSES as ADDRESSES
    from scheduler.store.records import APPS as APPS
    from scheduler.store.records import CONTAINERS as CONTAINERS
    from scheduler.store.records import LEADERS as LEADERS
    from scheduler.store.records import NETWORKS as NETWORKS
    from scheduler.store.records import NODES as NODES
    from scheduler.store.records import VNIS as VNIS
    from scheduler.store.records import AddressRecord as AddressRecord
    from scheduler.store.records import AppRecord as AppRecord
    from scheduler.store.records import ContainerRecord as ContainerRecord
    from scheduler.store.records import Kind as Kind
    from scheduler.store.records import LeaderRecord as LeaderRecord
    from scheduler.store.records import NodeRecord as NodeRecord
    from scheduler.store.records import Versioned as Versioned
    from scheduler.store.records import VniRecord as VniRecord
    from scheduler.store.tls import EtcdTLS as EtcdTLS
    from scheduler.store.tls import load_tls as load_tls
    from scheduler.store.watch import RecordEvent as RecordEvent
    from scheduler.store.watch import watch_records as watch_records

# Submodule -> the public names it defines.
_NAMES: dict[str, tuple[str, ...]] = {
    "commit": ("commit_plan",),
    "connection": ("EtcdClient",),
    "election": ("Election", "Leadership"),
    "embedded": ("EmbeddedEtcd", "MemberConfig", "find_etcd", "local_cluster"),
    "endpoints": ("Endpoint", "parse_endpoints"),
    "errors": ("Compacted", "EtcdMissing", "EtcdStartFailed", "LeaseExpired", "NotLeader"),
    "keys": ("DEFAULT_ROOT", "Layout"),
    "kv": ("Page", "Store"),
    "lease": ("Lease",),
    "plan": (
        "Change", "Create", "Delete", "Guard", "CommitOutcome", "PlanResult", "RecordResult",
        "Update",
    ),
    "records": (
        "ADDRESSES", "APPS", "AddressRecord", "VNIS", "VniRecord", "AppRecord",
        "CONTAINERS", "ContainerRecord", "Kind", "LEADERS", "LeaderRecord",
        "NETWORKS", "NODES", "NodeRecord", "Versioned",
    ),
    "tls": ("EtcdTLS", "load_tls"),
    "watch": ("RecordEvent", "watch_records"),
}
_WHERE = {name: module for module, names in _NAMES.items() for name in names}

__getattr__, __dir__, __all__ = lazy_face(__name__, _WHERE)
