"""Names and published ports, measured on one host (root, the native runtime):

- ``dns_lookup_us``: p50/p99 of an A question for a container's name, asked of the embedded
  resolver (127.0.0.11) from inside another container's network namespace, one at a time;
  beside it ``dns_forward_us``, a name the resolver forwards to an upstream in a namespace of
  the benchmark's own (its latency is the relay's plus that server's).
- ``ports_conn_per_s``: TCP connections per second (connect, one byte, the client resets, one
  at a time) to a container's port: directly at its address (the reference), through its published
  port at a host address (nftables DNAT) and at 127.0.0.1 (the userland proxy).

The clients are separate processes (``nsenter --net`` into the container's namespace for DNS),
so the worker's event loop serves as it would for a real container. The port's server is an
accept-and-close loop in the container's network namespace: only the network path differs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import uvloop

from protocol.specs import ContainerSpec, NetworkSpec
from worker.engine.engine import Engine
from worker.engine.native_driver import NativeDriver, NativeImages
from worker.images.testimage import import_test_image
from worker.teardown import tear_down_worker

# Asks one name ``count`` times from the namespace it runs in; prints the latencies (µs).
_DNS_CLIENT = """
import json, socket, sys, time
import dns.message
name, count = sys.argv[1], int(sys.argv[2])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(3)
sock.connect(("127.0.0.11", 53))
out = []
for i in range(count):
    wire = dns.message.make_query(name, "A").to_wire()
    start = time.perf_counter()
    sock.send(wire)
    reply = sock.recv(4096)
    out.append((time.perf_counter() - start) * 1e6)
    assert dns.message.from_wire(reply).answer, "no answer"
print(json.dumps(out))
"""

# Connects to host:port one connection at a time for ``seconds``; prints connections/s.
_CONN_CLIENT = """
import socket, struct, sys, time
host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
done = 0
end = time.perf_counter() + seconds
while time.perf_counter() < end:
    with socket.create_connection((host, port), timeout=3) as conn:
        assert conn.recv(16) == b"x"
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    done += 1
print(done / seconds)
"""

# Accepts, sends one byte, closes after the client; in the container's namespace. The client
# closes by reset (linger 0): no TIME_WAIT piles up from one client address over the rounds.
# With an orderly close, the client's ports come round again within seconds at these rates,
# and a SYN that meets its tuple's old connection still in conntrack's TIME_WAIT waits for a
# retransmission (1 s) on the DNAT path: that measures port reuse, not the path.
_CONN_SERVER = """
import socket
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", 8000))
server.listen(512)
print("ready", flush=True)
while True:
    conn, _ = server.accept()
    try:
        conn.sendall(b"x")
        conn.recv(16)  # until the client's reset
    except OSError:
        pass
    conn.close()
"""

_UPSTREAM = """
import socket, sys
import dns.message, dns.rrset
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((sys.argv[1], 53))
print("ready", flush=True)
while True:
    data, peer = sock.recvfrom(4096)
    query = dns.message.from_wire(data)
    reply = dns.message.make_response(query)
    reply.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A",
                                            "192.0.2.1"))
    sock.sendto(reply.to_wire(), peer)
"""


ROUNDS = 3


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _in_namespace(pid: int, script: str, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "nsenter", f"--net=/proc/{pid}/ns/net", sys.executable, "-c", script, *args,
        stdout=subprocess.PIPE)
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"client in namespace {pid} failed ({proc.returncode})")
    return out.decode()


async def _conn_rate(host: str, port: int, seconds: float) -> float:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CONN_CLIENT, host, str(port), str(seconds),
        stdout=subprocess.PIPE)
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"connection client to {host}:{port} failed")
    return float(out)


def _upstream_namespace(tag: str) -> tuple[str, str, str]:
    """A namespace with a resolver on a /30 of the benchmark range: (netns, host end, ip)."""
    netns, host_end = f"shoalbench{tag}", f"vb{tag}"
    taken = [ipaddress.IPv4Network(f"{a['local']}/{a['prefixlen']}", strict=False)
             for link in json.loads(subprocess.run(["ip", "-4", "-j", "addr"], check=True,
                                                   capture_output=True, text=True).stdout)
             for a in link.get("addr_info", [])]
    # From the top of the benchmark range (RFC 2544) down: the tests take it from the bottom.
    subnet = next(s for s in reversed(list(
        ipaddress.IPv4Network("198.19.0.0/16").subnets(new_prefix=30)))
        if not any(s.overlaps(t) for t in taken))
    host_ip, client_ip = (str(a) for a in subnet.hosts())
    steps = [["ip", "netns", "add", netns],
             ["ip", "link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns",
              netns],
             ["ip", "addr", "add", f"{host_ip}/30", "dev", host_end],
             ["ip", "link", "set", host_end, "up"],
             ["nsenter", f"--net=/run/netns/{netns}", "ip", "addr", "add", f"{client_ip}/30",
              "dev", "eth0"],
             ["nsenter", f"--net=/run/netns/{netns}", "ip", "link", "set", "eth0", "up"]]
    for step in steps:
        subprocess.run(step, check=True, capture_output=True)
    return netns, host_end, client_ip


def _remove_namespace(netns: str, host_end: str) -> None:
    subprocess.run(["ip", "link", "del", host_end], check=False, capture_output=True)
    subprocess.run(["ip", "netns", "del", netns], check=False, capture_output=True)


async def _measure(state: Path, resolv_conf: Path, lookups: int, seconds: float
                   ) -> dict[str, object]:
    driver = await NativeDriver.open(state, resolv_conf=resolv_conf)
    await asyncio.to_thread(import_test_image, driver.store)
    engine = Engine(state, driver, images=NativeImages(driver.store))
    await engine.open()
    servers: list[asyncio.subprocess.Process] = []
    try:
        network = await driver.networks.create(NetworkSpec(name="bench"))
        target = await engine.create(ContainerSpec(image="busybox", name="target",
                                                   command=["sleep", "3600"], network="bench",
                                                   expose=["8000"], publish_all=True))
        asker = await engine.create(ContainerSpec(image="busybox", name="asker",
                                                  command=["sleep", "3600"], network="bench"))
        for record in (target, asker):
            await engine.start(record.id)
        asker_pid = engine.inspect(asker.id).state.pid
        target_pid = engine.inspect(target.id).state.pid
        await _in_namespace(asker_pid, _DNS_CLIENT, "target", "50")  # warm up
        local = json.loads(await _in_namespace(asker_pid, _DNS_CLIENT, "target", str(lookups)))
        forwarded = json.loads(await _in_namespace(asker_pid, _DNS_CLIENT,
                                                   "example.bench", str(lookups // 4)))
        server = await asyncio.create_subprocess_exec(
            "nsenter", f"--net=/proc/{target_pid}/ns/net", sys.executable, "-c", _CONN_SERVER,
            stdout=subprocess.PIPE)
        servers.append(server)
        assert server.stdout is not None
        await server.stdout.readline()
        [port] = [p for p in driver.published_ports(target) if p.container_port == 8000]
        address = engine.inspect(target.id).details["ip_address"]
        # Rounds in turn, medians: a shared machine's load drifts over seconds.
        rates: dict[str, list[float]] = {"direct": [], "dnat": [], "proxy": []}
        for _ in range(ROUNDS):
            rates["direct"].append(await _conn_rate(address, 8000, seconds))
            rates["dnat"].append(await _conn_rate(network.gateway, port.host_port, seconds))
            rates["proxy"].append(await _conn_rate("127.0.0.1", port.host_port, seconds))
        direct, dnat, proxied = (statistics.median(rates[k]) for k in ("direct", "dnat",
                                                                        "proxy"))
        return {
            "dns_lookup_us": {"p50": _percentile(local, 0.5), "p99": _percentile(local, 0.99),
                              "count": len(local)},
            "dns_forward_us": {"p50": _percentile(forwarded, 0.5),
                               "p99": _percentile(forwarded, 0.99),
                               "count": len(forwarded)},
            "ports_conn_per_s": {"direct": direct, "published_dnat": dnat,
                                 "published_loopback_proxy": proxied,
                                 "dnat_vs_direct": dnat / direct,
                                 "proxy_vs_direct": proxied / direct,
                                 "rounds": rates},
        }
    finally:
        for server in servers:
            server.kill()
            await server.wait()
        for record in list(engine.records.values()):
            await engine.remove(record.id, force=True)
        await engine.close()
        await tear_down_worker(state)


def measure(*, quick: bool = False) -> dict[str, object]:
    """The figures above, on a worker of the benchmark's own (torn down after)."""
    root = Path(tempfile.mkdtemp(prefix="shoal-bench-names-"))
    tag = os.urandom(3).hex()
    netns, host_end, upstream_ip = _upstream_namespace(tag)
    upstream = subprocess.Popen(["nsenter", f"--net=/run/netns/{netns}", sys.executable, "-c",
                                 _UPSTREAM, upstream_ip], stdout=subprocess.PIPE, text=True)
    try:
        assert upstream.stdout is not None and upstream.stdout.readline().strip() == "ready"
        resolv_conf = root / "resolv.conf"
        resolv_conf.write_text(f"nameserver {upstream_ip}\n")
        return uvloop.run(_measure(root / "state", resolv_conf, 400 if quick else 4000,
                                   1.0 if quick else 4.0))
    finally:
        upstream.kill()
        upstream.wait()
        _remove_namespace(netns, host_end)
        shutil.rmtree(root, ignore_errors=True)


def summary_rows(figures: dict[str, object]) -> list[list[object]]:
    dns_local = figures["dns_lookup_us"]
    dns_forward = figures["dns_forward_us"]
    ports = figures["ports_conn_per_s"]
    assert isinstance(dns_local, dict) and isinstance(dns_forward, dict)
    assert isinstance(ports, dict)
    return [
        ["dns_lookup_us p50 / p99", f"{dns_local['p50']:.0f} / {dns_local['p99']:.0f}",
         "a container's name, from another container"],
        ["dns_forward_us p50 / p99", f"{dns_forward['p50']:.0f} / {dns_forward['p99']:.0f}",
         "forwarded to an upstream in a namespace"],
        ["ports_conn_per_s direct", f"{ports['direct']:.0f}", "reference: container address"],
        ["ports_conn_per_s DNAT", f"{ports['published_dnat']:.0f}",
         f"{ports['dnat_vs_direct']:.2f} of direct"],
        ["ports_conn_per_s 127.0.0.1 proxy", f"{ports['published_loopback_proxy']:.0f}",
         f"{ports['proxy_vs_direct']:.2f} of direct"],
    ]
