"""The files Docker writes per container: /etc/hosts (localhost, the container's own name and
address, ``--add-host`` lines, a line more per connected network), /etc/hostname,
/etc/resolv.conf: on a user-defined network the embedded resolver (127.0.0.11, which
forwards to ``--dns`` or the host's), elsewhere ``--dns``/``--dns-search`` or the host's,
without loopback resolvers a container cannot reach."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from protocol.specs import ContainerSpec

FALLBACK_DNS = ("8.8.8.8", "8.8.4.4")  # Docker's, when the host has only loopback resolvers
HOST_RESOLV = Path("/etc/resolv.conf")
EMBEDDED_DNS = "127.0.0.11"


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


def resolv_text(spec: ContainerSpec, host_resolv: str, *, embedded: bool = False) -> str:
    """With ``embedded``, Docker's lines for its resolver: 127.0.0.11 only (``--dns`` is where
    that one forwards) and ``ndots:0``, so a container name is asked as it is first."""
    servers = [] if embedded else list(spec.dns)
    search = list(spec.dns_search)
    options: list[str] = []
    for line in host_resolv.splitlines():
        words = line.split()
        if not words or words[0].startswith(("#", ";")):
            continue
        if words[0] == "nameserver" and len(words) > 1 and not spec.dns and not embedded:
            if not (words[1].startswith("127.") or words[1] == "::1"):
                servers.append(words[1])
        elif words[0] == "search" and not spec.dns_search:
            search.extend(words[1:])
        elif words[0] == "options":
            options.extend(w for w in words[1:] if not (embedded and w.startswith("ndots:")))
    if embedded:
        servers = [EMBEDDED_DNS]
        options.append("ndots:0")
    lines = [f"nameserver {s}" for s in servers or FALLBACK_DNS]
    if search:
        lines.append("search " + " ".join(search))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def add_host_line(directory: Path, ip: str, hostname: str) -> None:
    """One more ``ip hostname`` line in the container's /etc/hosts (a network connected)."""
    path = directory / "hosts"
    if path.exists():
        with open(path, "a") as out:
            out.write(f"{ip}\t{hostname}\n")


def drop_host_line(directory: Path, ip: str) -> None:
    """The container's /etc/hosts without the line of ``ip`` (a network disconnected),
    rewritten in place: the file is bind-mounted, a rename would not show inside."""
    path = directory / "hosts"
    if path.exists():
        kept = [line for line in path.read_text().splitlines(keepends=True)
                if line.split("\t", 1)[0] != ip]
        with open(path, "w") as out:
            out.write("".join(kept))


def write_files(directory: Path, spec: ContainerSpec, hostname: str, ip: str, *,
                embedded_dns: bool = False, resolv_conf: Path = HOST_RESOLV
                ) -> list[dict[str, object]]:
    """Write the three files into ``directory``; the OCI bind mounts that show them."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        host_resolv = resolv_conf.read_text(errors="replace")
    except OSError:
        host_resolv = ""
    contents = {"hosts": hosts_text(hostname, ip, spec.add_hosts),
                "hostname": hostname + "\n",
                "resolv.conf": resolv_text(spec, host_resolv, embedded=embedded_dns)}
    mounts: list[dict[str, object]] = []
    for name, text in contents.items():
        path = directory / name
        path.write_text(text)
        mounts.append({"destination": f"/etc/{name}", "type": "bind", "source": str(path),
                       "options": ["rbind", "rw"]})
    return mounts
