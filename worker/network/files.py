"""The files Docker writes per container: /etc/hosts (localhost, the container's own name and
address, ``--add-host`` lines), /etc/hostname, /etc/resolv.conf (``--dns``/``--dns-search``,
or the host's, without loopback resolvers a container cannot reach)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from protocol.specs import ContainerSpec

FALLBACK_DNS = ("8.8.8.8", "8.8.4.4")  # Docker's, when the host has only loopback resolvers
HOST_RESOLV = Path("/etc/resolv.conf")


def hosts_text(hostname: str, ip: str, add_hosts: Sequence[str]) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             "fe00::0\tip6-localnet", "ff00::0\tip6-mcastprefix", "ff02::1\tip6-allnodes",
             "ff02::2\tip6-allrouters"]
    for entry in add_hosts:
        host, _, address = entry.partition(":")
        lines.append(f"{address}\t{host}")
    if ip:
        lines.append(f"{ip}\t{hostname}")
    return "\n".join(lines) + "\n"


def resolv_text(spec: ContainerSpec, host_resolv: str) -> str:
    servers = list(spec.dns)
    search = list(spec.dns_search)
    options: list[str] = []
    for line in host_resolv.splitlines():
        words = line.split()
        if not words or words[0].startswith(("#", ";")):
            continue
        if words[0] == "nameserver" and len(words) > 1 and not spec.dns:
            if not (words[1].startswith("127.") or words[1] == "::1"):
                servers.append(words[1])
        elif words[0] == "search" and not spec.dns_search:
            search.extend(words[1:])
        elif words[0] == "options":
            options.extend(words[1:])
    lines = [f"nameserver {s}" for s in servers or FALLBACK_DNS]
    if search:
        lines.append("search " + " ".join(search))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def write_files(directory: Path, spec: ContainerSpec, hostname: str, ip: str
                ) -> list[dict[str, object]]:
    """Write the three files into ``directory``; the OCI bind mounts that show them."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        host_resolv = HOST_RESOLV.read_text(errors="replace")
    except OSError:
        host_resolv = ""
    contents = {"hosts": hosts_text(hostname, ip, spec.add_hosts),
                "hostname": hostname + "\n", "resolv.conf": resolv_text(spec, host_resolv)}
    mounts: list[dict[str, object]] = []
    for name, text in contents.items():
        path = directory / name
        path.write_text(text)
        mounts.append({"destination": f"/etc/{name}", "type": "bind", "source": str(path),
                       "options": ["rbind", "rw"]})
    return mounts
