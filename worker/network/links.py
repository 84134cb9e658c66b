"""The kernel's side of bridge networks, through pyroute2's synchronous ``IPRoute`` (blocking:
the manager runs these in a thread, never inside the event loop). Inside a container's
namespace the calling thread itself enters it (``setns`` is per thread) and comes back.

A container's veth pair is made with its peer created directly inside the container's network
namespace (``net_ns_pid``): one request, where create-then-move costs a second one and a
link's rename. The host end belongs to the bridge; the container end is ``eth0``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Iterable, Iterator

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from worker.runtime import syscalls

CLONE_NEWNET = 0x40000000
ENOENT_ERRNOS = (2, 19)  # ENOENT, ENODEV: the link is gone already
EEXIST = 17


def _index(ipr: IPRoute, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def host_subnets() -> list[ipaddress.IPv4Network]:
    """Every IPv4 subnet this host's namespace has an address on or a route to (the default
    route aside): a new bridge network must overlap none of them."""
    found: list[ipaddress.IPv4Network] = []
    with IPRoute() as ipr:
        for addr in ipr.get_addr(family=2):
            local = addr.get_attr("IFA_ADDRESS")
            if local:
                found.append(ipaddress.IPv4Network(f"{local}/{addr['prefixlen']}", strict=False))
        for route in ipr.get_routes(family=2, table=254):
            dst = route.get_attr("RTA_DST")
            if dst and route["dst_len"]:
                found.append(ipaddress.IPv4Network(f"{dst}/{route['dst_len']}", strict=False))
    return found


def ensure_bridge(name: str, gateway: str, prefixlen: int) -> None:
    """The bridge ``name``, up, with the gateway's address (made if missing)."""
    with IPRoute() as ipr:
        index = _index(ipr, name)
        if index is None:
            ipr.link("add", ifname=name, kind="bridge")
            index = _index(ipr, name)
            assert index is not None
        addresses = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=index, family=2)}
        if gateway not in addresses:
            ipr.addr("add", index=index, address=gateway, prefixlen=prefixlen)
        ipr.link("set", index=index, state="up")


def delete_link(name: str) -> bool:
    """Delete the link ``name`` (a bridge or a veth); False if there was none."""
    return bool(delete_links([name]))


def delete_links(names: Iterable[str]) -> list[str]:
    """Delete the links ``names`` (bridges or veths), one request each on one socket; the
    names of those there were."""
    deleted = []
    with IPRoute() as ipr:
        for name in names:
            try:
                ipr.link("del", ifname=name)
            except NetlinkError as exc:
                if exc.code in ENOENT_ERRNOS:
                    continue
                raise
            deleted.append(name)
    return deleted


def links_named(prefix: str) -> list[str]:
    """The names of this namespace's links that start with ``prefix``."""
    with IPRoute() as ipr:
        names = [link.get_attr("IFLA_IFNAME") for link in ipr.get_links()]
    return sorted(n for n in names if n and n.startswith(prefix))


def attach(pid: int, host_end: str, bridge: str, address: str, prefixlen: int,
           gateway: str | None, ifname: str = "eth0", *, mtu: int = 0,
           mac: str = "") -> None:
    """A veth pair from the bridge into the network namespace of process ``pid``: ``ifname``
    there, with ``address`` and (unless None) a default route via ``gateway``; ``mtu`` and
    ``mac`` (an overlay's) when given."""
    sized = {"mtu": mtu} if mtu else {}
    with IPRoute() as ipr:
        bridge_index = _index(ipr, bridge)
        if bridge_index is None:
            raise FileNotFoundError(f"bridge {bridge} is missing")
        peer: dict[str, object] = {"ifname": ifname, "net_ns_pid": pid, **sized}
        if mac:
            peer["address"] = mac
        # One request: the host end made on the bridge and up (IFLA_MASTER, IFF_UP).
        request = {"ifname": host_end, "kind": "veth", "peer": peer, "master": bridge_index,
                   "state": "up", **sized}
        try:
            ipr.link("add", **request)
        except NetlinkError as exc:
            if exc.code != EEXIST:
                raise
            ipr.link("del", ifname=host_end)  # a leftover of an earlier run of this container
            ipr.link("add", **request)
    with in_namespace(pid), IPRoute() as ns:
        index = _index(ns, ifname)
        assert index is not None
        ns.addr("add", index=index, address=address, prefixlen=prefixlen)
        ns.link("set", index=index, state="up")
        if gateway is not None:
            ns.route("add", dst="0.0.0.0/0", gateway=gateway)


@contextlib.contextmanager
def in_namespace(pid: int) -> Iterator[None]:
    """This thread in the network namespace of process ``pid`` for the block, and back.

    Not ``IPRoute(netns=...)``: pyroute2 forks a process for that, and a forked child of the
    worker shares its event loop's signal wake-up descriptor, so the child's end can reach the
    worker as a signal of its own (seen: a SIGTERM that stopped the worker)."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            syscalls.setns(target, CLONE_NEWNET)
        finally:
            os.close(target)
        try:
            yield
        finally:
            syscalls.setns(home, CLONE_NEWNET)  # an error here is fatal for the thread: raise
    finally:
        os.close(home)
