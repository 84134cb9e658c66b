"""The worker's own nftables table: masquerade for its non-internal bridge networks, DNAT for
published ports (but for loopback and hairpin, which ``proxy`` serves), and a forward filter
that keeps internal networks in and overlays apart. Only this table is ever touched: it is
rebuilt whole from the state, in one ``nft -f`` transaction (add, delete, define: the old rules
and the new never mix), and deleted whole when the worker is torn down.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable
from typing import Any

from protocol.errors import Unsupported
from worker.network.state import EndpointRecord, NetworkRecord

NFT_TIMEOUT = 15.0


def table_name(scope: str) -> str:
    return f"shoal_{scope}"


def render(table: str, networks: Iterable[NetworkRecord],
           endpoints: Iterable[EndpointRecord]) -> str:
    """The script that replaces ``table`` with the rules these networks and endpoints need."""
    nets = {n.spec.name: n for n in networks}
    masquerade = [f'ip saddr {n.subnet} oifname != "{n.bridge}" masquerade'
                  for n in nets.values() if not n.spec.internal]
    isolate = [rule for n in nets.values() if n.spec.internal
               for rule in (f'iifname "{n.bridge}" oifname != "{n.bridge}" drop',
                            f'oifname "{n.bridge}" iifname != "{n.bridge}" drop')]
    # An overlay network is kept apart from the host's other networks (routed through the
    # gateways every one of them has here), as Docker keeps its networks apart.
    for n in nets.values():
        others = sorted(f'"{o.bridge}"' for o in nets.values() if o.bridge != n.bridge)
        if n.vxlan and others:
            isolate.append(f'iifname "{n.bridge}" oifname {{ {", ".join(others)} }} drop')
            isolate.append(f'oifname "{n.bridge}" iifname {{ {", ".join(others)} }} drop')
    published = []
    for ep in sorted(endpoints, key=lambda e: e.container_id):
        # From the container's own bridge (hairpin) the userland proxy answers: DNAT there
        # would send the container's replies to itself, not back through the host.
        bridge = nets[ep.network].bridge if ep.network in nets else ""
        for port in ep.ports:
            match = f"ip daddr {port.host_ip} " if port.host_ip else ""
            if bridge:
                match = f'iifname != "{bridge}" {match}'
            published.append(f"{match}{port.protocol} dport {port.host_port} dnat to "
                             f'{ep.ip}:{port.container_port} comment "{ep.container_id[:12]}"')
    body = "\n".join([
        f"add table ip {table}",
        f"delete table ip {table}",
        f"table ip {table} {{",
        "  chain published {",
        *(f"    {rule}" for rule in published),
        "  }",
        "  chain prerouting {",
        "    type nat hook prerouting priority dstnat; policy accept;",
        "    fib daddr type local jump published",
        "  }",
        "  chain output {",
        "    type nat hook output priority -100; policy accept;",
        "    ip daddr != 127.0.0.0/8 fib daddr type local jump published",
        "  }",
        "  chain postrouting {",
        "    type nat hook postrouting priority srcnat; policy accept;",
        *(f"    {rule}" for rule in masquerade),
        "  }",
        "  chain forward {",
        "    type filter hook forward priority filter; policy accept;",
        *(f"    {rule}" for rule in isolate),
        "  }",
        "}",
    ])
    return body + "\n"


RESOLVER_TABLE = "shoal_dns"


def resolver_redirect(address: str, udp_port: int, tcp_port: int) -> str:
    """The script, for a container's own namespace, that sends its questions to
    ``address``:53 on to the ports the worker's sockets hold (Docker's way: port 53 stays
    free for a DNS server of the container's own; conntrack restores the source port on the
    way back)."""
    return "\n".join([
        f"add table ip {RESOLVER_TABLE}",
        f"delete table ip {RESOLVER_TABLE}",
        f"table ip {RESOLVER_TABLE} {{",
        "  chain output {",
        "    type nat hook output priority -100; policy accept;",
        f"    ip daddr {address} udp dport 53 dnat to {address}:{udp_port}",
        f"    ip daddr {address} tcp dport 53 dnat to {address}:{tcp_port}",
        "  }",
        "}",
    ]) + "\n"


def _nft(*args: str, script: str | None = None) -> str:
    binary = shutil.which("nft")
    if binary is None:
        raise Unsupported("bridge networks need nftables (Debian package nftables)")
    done = subprocess.run([binary, *args], input=script, capture_output=True, text=True,
                          timeout=NFT_TIMEOUT, check=False)
    if done.returncode != 0:
        raise OSError(f"nft {' '.join(args)} failed: {done.stderr.strip()[:500]}")
    return done.stdout


def apply(script: str) -> None:
    _nft("-f", "-", script=script)


def delete_table(table: str) -> None:
    _nft("-f", "-", script=f"add table ip {table}\ndelete table ip {table}\n")


def rules(table: str) -> list[dict[str, Any]]:
    """The table's rules as ``nft -j`` reads them back ([] when there is no table, or no
    nft to have made one)."""
    try:
        listing = json.loads(_nft("-j", "list", "table", "ip", table))
    except (OSError, Unsupported):
        return []
    return [item["rule"] for item in listing.get("nftables", []) if "rule" in item]
