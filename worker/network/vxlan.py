"""The kernel's side of overlay networks, through pyroute2 (blocking: run in a thread).

Per overlay network and host: a VXLAN device (the network's VNI, UDP port 4789 set explicitly —
the kernel's default is 8472 —, local address = this worker's advertised one, learning off,
ARP proxy on) enslaved to the network's bridge. Where a remote container lives is programmed,
never learned: a forwarding entry on the VXLAN device (its MAC → its node's address) and a
neighbour entry (its IP → its MAC) from which the device answers the local containers' ARP
requests. Forwarding entries must carry ``NTF_SELF`` and a permanent state: without them
pyroute2's request lands in the bridge's own table and nothing reaches the other host.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.ndmsg import NTF_SELF, NUD_PERMANENT

VXLAN_PORT = 4789  # IANA's; the kernel's default (8472) is Linux's historical one
OVERLAY_MTU = 1450  # 1500 less VXLAN's 50 bytes of outer headers
ENOENT_ERRNOS = (2, 19)


@dataclass(frozen=True, slots=True)
class Peer:
    """A remote container as this host programs it: its address, MAC and node."""

    ip: str
    mac: str
    vtep: str


def _index(ipr: IPRoute, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def ensure_vxlan(name: str, vni: int, local: str, bridge: str) -> None:
    """The VXLAN device ``name`` for ``vni``, in ``bridge``, up (made if missing)."""
    with IPRoute() as ipr:
        bridge_index = _index(ipr, bridge)
        if bridge_index is None:
            raise FileNotFoundError(f"bridge {bridge} is missing")
        index = _index(ipr, name)
        if index is None:
            ipr.link("add", ifname=name, kind="vxlan", vxlan_id=vni, vxlan_local=local,
                     vxlan_port=VXLAN_PORT, vxlan_learning=0, vxlan_proxy=1,
                     mtu=OVERLAY_MTU)
            index = _index(ipr, name)
            assert index is not None
        ipr.link("set", index=index, master=bridge_index, state="up")


def programmed(name: str) -> set[Peer]:
    """The peers the device ``name`` has both entries for (its forwarding entries with a
    remote address, joined with its neighbour entries by MAC)."""
    with IPRoute() as ipr:
        index = _index(ipr, name)
        if index is None:
            return set()
        vteps = {}
        for entry in ipr.fdb("dump", ifindex=index):
            mac, dst = entry.get_attr("NDA_LLADDR"), entry.get_attr("NDA_DST")
            if entry["ifindex"] == index and mac and dst:
                vteps[mac] = dst
        peers = set()
        for entry in ipr.get_neighbours(ifindex=index, family=2):
            mac, ip = entry.get_attr("NDA_LLADDR"), entry.get_attr("NDA_DST")
            if mac in vteps and ip:
                peers.add(Peer(ip, mac, vteps[mac]))
        return peers


def counts(name: str) -> tuple[int, int]:
    """How many forwarding entries with a remote address and neighbour entries the device
    has (what the tests count)."""
    with IPRoute() as ipr:
        index = _index(ipr, name)
        if index is None:
            return 0, 0
        fdb = sum(1 for e in ipr.fdb("dump", ifindex=index)
                  if e["ifindex"] == index and e.get_attr("NDA_DST"))
        neigh = sum(1 for _ in ipr.get_neighbours(ifindex=index, family=2))
        return fdb, neigh


def program(name: str, wanted: set[Peer]) -> tuple[int, int]:
    """Make the device's peers exactly ``wanted``; (added, removed)."""
    have = programmed(name)
    add, remove = wanted - have, have - wanted
    with IPRoute() as ipr:
        index = _index(ipr, name)
        if index is None:
            return 0, 0
        for peer in remove:
            try:
                ipr.neigh("del", ifindex=index, dst=peer.ip, lladdr=peer.mac)
            except NetlinkError as exc:
                if exc.code not in ENOENT_ERRNOS:
                    raise
            try:
                ipr.fdb("del", ifindex=index, lladdr=peer.mac, dst=peer.vtep, flags=NTF_SELF)
            except NetlinkError as exc:
                if exc.code not in ENOENT_ERRNOS:
                    raise
        for peer in add:
            ipr.fdb("replace", ifindex=index, lladdr=peer.mac, dst=peer.vtep,
                    state=NUD_PERMANENT, flags=NTF_SELF)
            ipr.neigh("replace", ifindex=index, dst=peer.ip, lladdr=peer.mac,
                      state=NUD_PERMANENT)
    return len(add), len(remove)
