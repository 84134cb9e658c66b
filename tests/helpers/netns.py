"""A network namespace of a test's own, joined to the host by a veth pair on a /30 that
overlaps nothing on the host: a client "elsewhere" that reaches the host at ``host_ip``."""

from __future__ import annotations

import ipaddress
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Client:
    name: str
    host_ip: str  # the host's end of the pair
    client_ip: str

    def run(self, *argv: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["nsenter", f"--net=/run/netns/{self.name}", *argv],
                              capture_output=True, text=True, timeout=timeout, check=False)


def _taken() -> list[ipaddress.IPv4Network]:
    out = subprocess.run(["ip", "-4", "-o", "route", "show", "table", "all"],
                         capture_output=True, text=True, check=True).stdout
    nets = []
    for line in out.splitlines():
        word = line.split()[0] if line.split() else ""
        if word.startswith(("local", "broadcast")):
            word = line.split()[1]
        if word != "default" and word[:1].isdigit():
            nets.append(ipaddress.IPv4Network(word, strict=False))
    return nets


@contextmanager
def client_namespace() -> Iterator[Client]:
    tag = os.urandom(3).hex()
    name, host_end = f"shoaltest{tag}", f"vt{tag}"
    taken = _taken()
    # The benchmark range (RFC 2544), never routed: /30s until one is free.
    subnet = next(s for s in ipaddress.IPv4Network("198.18.0.0/15").subnets(new_prefix=30)
                  if not any(s.overlaps(t) for t in taken))
    host_ip, client_ip = (str(a) for a in subnet.hosts())
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "link", "add", host_end, "type", "veth", "peer", "name", "eth0",
                        "netns", name], check=True)
        subprocess.run(["ip", "addr", "add", f"{host_ip}/30", "dev", host_end], check=True)
        subprocess.run(["ip", "link", "set", host_end, "up"], check=True)
        client = Client(name, host_ip, client_ip)
        for argv in (["ip", "addr", "add", f"{client_ip}/30", "dev", "eth0"],
                     ["ip", "link", "set", "eth0", "up"], ["ip", "link", "set", "lo", "up"],
                     ["ip", "route", "add", "default", "via", host_ip]):
            done = client.run(*argv)
            assert done.returncode == 0, done.stderr
        yield client
    finally:
        subprocess.run(["ip", "link", "del", host_end], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", name], check=False)
