"""What a container may do, as Docker decides it: the capability set after ``--cap-add`` and
``--cap-drop``, the device cgroup rules, the host devices ``--device`` maps in, and what
``--privileged`` opens up (every capability the worker has, every host device, an open device
cgroup).

Pure apart from reading the kernel's last capability and the worker's own bounding set, and
walking the host's /dev.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from protocol.errors import InvalidArgument
from protocol.specs import DeviceMapping
from worker.runtime.caps import CAPABILITIES, last_cap

# Docker's default set (moby oci/caps/defaults.go).
DOCKER_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)
# Docker's device cgroup: deny everything; the runtime then allows what every container needs
# (null, zero, full, random, urandom, tty, console, ptmx, ptys, tun, and mknod of any node).
DENY_ALL_DEVICES: list[dict[str, Any]] = [{"allow": False, "access": "rwm"}]
ALLOW_ALL_DEVICES: list[dict[str, Any]] = [{"allow": True, "access": "rwm"}]
# Directories of /dev whose nodes a privileged container does not get (moby's HostDevices).
_NOT_HOST_DEVICES = ("pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev")


def all_caps() -> list[str]:
    """Every capability this worker can hand on, in number order: those the running kernel
    knows that are in the worker's own bounding set (a worker that runs in a container of
    its own may lack some; no container can have more than its runtime)."""
    top = last_cap()
    bounding = _own_bounding_set()
    return [name for name, number in CAPABILITIES.items()
            if number <= top and bounding >> number & 1]


def _own_bounding_set() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                return int(line.split()[1], 16)
    return (1 << (last_cap() + 1)) - 1


def _canonical(name: str, field: str) -> str:
    upper = name.upper()
    if upper == "ALL":
        return upper
    if not upper.startswith("CAP_"):
        upper = "CAP_" + upper
    if upper not in CAPABILITIES:
        raise InvalidArgument(f"{field}: unknown capability {name!r}")
    return upper


def capabilities(cap_add: list[str], cap_drop: list[str], privileged: bool) -> list[str]:
    """Docker's set with ``cap_drop`` taken out and ``cap_add`` put in (ALL in either means
    every capability); a privileged container has them all."""
    if privileged:
        return all_caps()
    adds = [_canonical(n, "--cap-add") for n in cap_add]
    drops = [_canonical(n, "--cap-drop") for n in cap_drop]
    available = all_caps()
    for name in adds:
        if name != "ALL" and name not in available:
            raise InvalidArgument(f"--cap-add: {name} is not known to this host's kernel or "
                                  "not in the worker's own bounding set")
    base = all_caps() if "ALL" in adds else list(DOCKER_CAPS)
    if "ALL" in drops:
        base = []
    kept = [c for c in base if c not in drops]
    kept.extend(c for c in adds if c != "ALL" and c not in kept)
    return kept


def host_devices(dev: str = "/dev") -> list[dict[str, Any]]:
    """The host's device nodes as runtime-spec linux.devices, for a privileged container."""
    found: list[dict[str, Any]] = []
    for dirpath, dirnames, filenames in os.walk(dev):
        if dirpath == dev:
            dirnames[:] = [d for d in dirnames if d not in _NOT_HOST_DEVICES]
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if path == os.path.join(dev, "console"):
                continue  # the container's own console is its terminal
            try:
                node = _device_node(path, path, follow_symlinks=False)
            except OSError:
                continue
            if node is not None:
                found.append(node)
    return found


def _device_node(host_path: str, container_path: str, *,
                 follow_symlinks: bool = True) -> dict[str, Any] | None:
    """The node at ``host_path`` as a linux.devices entry at ``container_path``, or None if it
    is not a character or block device (a link, unless it is followed to its node)."""
    st = os.stat(host_path, follow_symlinks=follow_symlinks)
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        return None
    return {"path": container_path, "type": kind, "major": os.major(st.st_rdev),
            "minor": os.minor(st.st_rdev), "fileMode": stat.S_IMODE(st.st_mode),
            "uid": st.st_uid, "gid": st.st_gid}


def mapped_devices(mappings: list[DeviceMapping]) -> tuple[list[dict[str, Any]],
                                                           list[dict[str, Any]]]:
    """``--device`` mappings as linux.devices entries and the device cgroup rules that allow
    them (with each mapping's permissions). A host directory maps every node under it, as
    Docker does; anything else that is not a device is refused."""
    devices: list[dict[str, Any]] = []
    for mapping in mappings:
        host, inside = mapping.path_on_host, mapping.path_in_container
        try:
            if os.path.isdir(host):
                nodes = []
                for dirpath, _dirnames, filenames in os.walk(host):
                    for name in sorted(filenames):
                        path = os.path.join(dirpath, name)
                        target = os.path.join(inside, os.path.relpath(path, host))
                        nodes.append((_device_node(path, target), mapping.permissions))
                devices_here = [(n, p) for n, p in nodes if n is not None]
            else:
                node = _device_node(host, inside)
                if node is None:
                    raise InvalidArgument(f"--device {host}: not a device node")
                devices_here = [(node, mapping.permissions)]
        except OSError as exc:
            raise InvalidArgument(f"--device {host}: {exc.strerror}") from None
        devices.extend(node | {"access": access} for node, access in devices_here)
    rules = [{"allow": True, "type": d["type"], "major": d["major"], "minor": d["minor"],
              "access": d.pop("access")} for d in devices]
    return devices, rules
