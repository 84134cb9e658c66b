"""An overlay's VXLAN device in a network namespace of the test's own: UDP port 4789 (not the
kernel's 8472), learning off, ARP proxy on, MTU 1450; peers programmed as forwarding entries in
the device's own table (``self``, permanent, with the remote address — not the bridge's) and
permanent neighbour entries, made exactly the wanted set and emptied again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.helpers.requirements import require_root

pytestmark = pytest.mark.root

SCRIPT = """
import json, sys
from worker.network import links, vxlan
links.ensure_bridge("bovx", "10.98.0.1", 24)
vxlan.ensure_vxlan("xovx", 4321, "127.0.0.1", "bovx")
vxlan.ensure_vxlan("xovx", 4321, "127.0.0.1", "bovx")  # idempotent
a = vxlan.Peer("10.98.0.5", "02:42:0a:62:00:05", "192.0.2.7")
b = vxlan.Peer("10.98.0.6", "02:42:0a:62:00:06", "192.0.2.8")
steps = [vxlan.program("xovx", {a, b}), vxlan.program("xovx", {a, b}),
         vxlan.counts("xovx"), sorted(p.ip for p in vxlan.programmed("xovx"))]
steps.append(vxlan.program("xovx", {b}))
steps.append(vxlan.counts("xovx"))
print(json.dumps(steps))
"""


@pytest.fixture
def netns() -> Iterator[str]:
    require_root()
    name = f"ovx{os.urandom(3).hex()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def in_ns(netns: str, *argv: str) -> str:
    return subprocess.run(["nsenter", f"--net=/run/netns/{netns}", *argv], capture_output=True,
                          text=True, check=True, timeout=60).stdout


def test_vxlan_device_and_its_peers(netns: str) -> None:
    steps = json.loads(in_ns(netns, sys.executable, "-c", SCRIPT))
    assert steps == [[2, 0], [0, 0], [2, 2], ["10.98.0.5", "10.98.0.6"], [0, 1], [1, 1]]
    (link,) = json.loads(in_ns(netns, "ip", "-j", "-d", "link", "show", "xovx"))
    data = link["linkinfo"]["info_data"]
    assert (data["id"], data["port"], data["learning"], data["proxy"], link["mtu"]) == (
        4321, 4789, False, True, 1450)
    assert link["master"] == "bovx"
    fdb = [e for e in json.loads(in_ns(netns, "bridge", "-j", "fdb", "show", "dev", "xovx"))
           if e.get("dst")]
    assert [(e["mac"], e["dst"], e["state"], "self" in e["flags"]) for e in fdb] == [
        ("02:42:0a:62:00:06", "192.0.2.8", "permanent", True)]
    neigh = json.loads(in_ns(netns, "ip", "-j", "neigh", "show", "dev", "xovx"))
    assert [(n["dst"], n["lladdr"], n["state"]) for n in neigh] == [
        ("10.98.0.6", "02:42:0a:62:00:06", ["PERMANENT"])]
