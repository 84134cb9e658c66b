"""Cluster-wide address management for overlay networks, in etcd.

Every address taken is a key of its own (``addresses/<network>:<ip>``), created only if absent
(a compare on its create revision), so two placements — of one leader or of two that overlap
during a handover — never take one address, whatever their caches say. A VNI is taken the same
way (``vnis/<vni>``), and an overlay's default subnet is derived from its VNI, so two networks
created at once never get one subnet either.

Default overlay subnets are /24s of 10.0.0.0/8 (Docker swarm's pool), apart from the bridge
networks' 172.17-31.0.0/16 and 192.168.0.0/16.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

import structlog

from protocol.errors import Conflict, InvalidArgument
from protocol.specs import NetworkSpec
from scheduler.store import ADDRESSES, VNIS, AddressRecord, Store, VniRecord
from scheduler.store.plan import Fence

log = structlog.get_logger("shoal.scheduler.overlay")

FIRST_VNI = 4096  # Docker's first overlay VNI
LAST_VNI = (1 << 24) - 1
OVERLAY_POOL = ipaddress.IPv4Network("10.0.0.0/8")
POOL_PREFIX = 24


def address_key(network: str, ip: str) -> str:
    return f"{network}:{ip}"


def default_subnet(vni: int, taken: Iterable[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    """The /24 the VNI's index names in the pool (10.0.0.0/24 for the first), or, when a
    network made with ``--subnet`` overlaps it, the first /24 of the pool that overlaps none."""
    used = list(taken)
    count = 1 << (POOL_PREFIX - OVERLAY_POOL.prefixlen)
    index = (vni - FIRST_VNI) % count
    base = int(OVERLAY_POOL.network_address)
    span = 1 << (32 - POOL_PREFIX)
    for step in range(count):
        candidate = ipaddress.IPv4Network((base + ((index + step) % count) * span,
                                           POOL_PREFIX))
        if not any(candidate.overlaps(u) for u in used):
            return candidate
    raise Conflict(f"no free /{POOL_PREFIX} left in the overlay pool {OVERLAY_POOL}: give one "
                   "with --subnet")


def candidates(spec: NetworkSpec, taken: set[str]) -> Iterable[str]:
    """The subnet's host addresses nobody holds, lowest first (the gateway aside)."""
    subnet = ipaddress.IPv4Network(spec.subnet)
    for address in subnet.hosts():
        text = str(address)
        if text != spec.gateway and text not in taken:
            yield text


class OverlayAddresses:
    """The leader's allocator: a cache of the addresses taken (loaded when it takes over),
    corrected by etcd whenever a create finds its key taken."""

    def __init__(self, store: Store, fence: Fence | None = None) -> None:
        self.store = store
        self.fence = fence
        self.taken: dict[str, set[str]] = {}  # network → addresses

    async def load(self) -> dict[str, str]:
        """Read every address taken; ``container id → key`` of each."""
        self.taken.clear()
        holders: dict[str, str] = {}
        async for got in self.store.list(ADDRESSES, page_size=5000):
            network, _, ip = got.id.rpartition(":")
            self.taken.setdefault(network, set()).add(ip)
            holders[got.id] = got.value.container_id
        return holders

    async def allocate(self, spec: NetworkSpec, container_id: str, wanted: str = "") -> str:
        """An address of ``spec``'s subnet for the container, taken in etcd: ``wanted`` if
        free (else Conflict), or the lowest free one."""
        held = self.taken.setdefault(spec.name, set())
        if wanted:
            subnet = ipaddress.IPv4Network(spec.subnet)
            address = ipaddress.IPv4Address(wanted)
            if address not in subnet or wanted == spec.gateway or address in (
                    subnet.network_address, subnet.broadcast_address):
                raise InvalidArgument(f"--ip {wanted} is not a free host address of {subnet}")
            order: Iterable[str] = [wanted]
        else:
            order = candidates(spec, held)
        record = AddressRecord(network=spec.name, container_id=container_id)
        for ip in order:
            try:
                await self.store.create(ADDRESSES, address_key(spec.name, ip), record,
                                        fence=self.fence)
            except Conflict:
                held.add(ip)  # taken behind our cache's back: try the next
                continue
            held.add(ip)
            return ip
        if wanted:
            raise Conflict(f"address {wanted} is already in use on {spec.name}",
                           details={"ip": wanted})
        raise Conflict(f"no free address left on overlay network {spec.name} ({spec.subnet})",
                       details={"network": spec.name})

    async def release(self, network: str, ip: str, container_id: str) -> None:
        """Give the address back, if the container still holds it."""
        key = address_key(network, ip)
        got = await self.store.get(ADDRESSES, key)
        if got is not None and got.value.container_id == container_id:
            try:
                await self.store.delete(ADDRESSES, key, got.mod_revision, fence=self.fence)
            except Conflict:
                return  # taken again meanwhile: not ours any more
        self.taken.get(network, set()).discard(ip)


async def take_vni(store: Store, network: str, fence: Fence | None = None) -> int:
    """The lowest free VNI from ``FIRST_VNI``, taken for ``network``."""
    used = {int(got.id) async for got in store.list(VNIS) if got.id.isdigit()}
    for vni in range(FIRST_VNI, LAST_VNI + 1):
        if vni in used:
            continue
        try:
            await store.create(VNIS, str(vni), VniRecord(network=network), fence=fence)
        except Conflict:
            continue
        return vni
    raise Conflict("no free VXLAN network identifier left")


async def give_back_vni(store: Store, vni: int, network: str,
                        fence: Fence | None = None) -> None:
    got = await store.get(VNIS, str(vni))
    if got is not None and got.value.network == network:
        try:
            await store.delete(VNIS, str(vni), got.mod_revision, fence=fence)
        except Conflict:
            log.warning("a VNI changed while being given back", vni=vni, network=network)
