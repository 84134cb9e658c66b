"""From a container record to an OCI runtime-spec config (pure, apart from reading the image's
/etc/passwd and /etc/group to resolve user names, and the host's device nodes).

Docker's defaults: its capability set (with --cap-add/--cap-drop), its default seccomp profile
(unless the spec says ``unconfined`` or gives its own), its device cgroup (deny all; the runtime
allows the usual devices; --device adds nodes and their rules), no-new-privileges if asked, the
usual /dev, /proc and /sys mounts, masked and read-only paths (--privileged: none of these
limits), new pid/ipc/uts/mount namespaces and a network namespace unless the network is
``host``; resources from the spec; ``--init`` runs tini (Debian's static build) as PID 1.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from protocol.errors import InvalidArgument
from protocol.specs import Resources, Ulimit
from worker.engine.privileges import (
    ALLOW_ALL_DEVICES,
    DENY_ALL_DEVICES,
    capabilities,
    host_devices,
    mapped_devices,
)
from worker.engine.records import EngineContainer
from worker.runtime.docker_seccomp import default_profile
from worker.runtime.spec import CPU, Memory, Pids
from worker.runtime.spec import Resources as LiveResources

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MASKED = ("/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
          "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
          "/sys/firmware")
READ_ONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
INIT_BINARY = "/usr/bin/tini-static"
INIT_PATH = "/sbin/shoal-init"
CPU_PERIOD = 100_000
RLIM_UNLIMITED = (1 << 64) - 1  # the runtime-spec's (a uint64) RLIM_INFINITY


def _table(rootfs: Path, name: str) -> list[list[str]]:
    """Rows of the image's /etc/passwd or /etc/group; never follows a link out of the image."""
    path = rootfs / "etc" / name
    try:
        if path.is_symlink() or not path.is_file():
            return []
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def resolve_user(user: str, rootfs: Path) -> tuple[int, int, list[int]]:
    """``name|uid[:group|gid]`` → (uid, gid, additional gids), as Docker resolves it."""
    if not user:
        return 0, 0, []
    name, _, group = user.partition(":")
    passwd = _table(rootfs, "passwd")
    groups = _table(rootfs, "group")
    uid: int | None = int(name) if name.isdigit() else None
    gid: int | None = None
    login = name
    for row in passwd:
        if len(row) >= 4 and (row[0] == name or (uid is not None and row[2] == name)):
            uid, login = int(row[2]), row[0]
            gid = int(row[3]) if row[3].isdigit() else 0
            break
    if uid is None:
        raise InvalidArgument(f"unable to find user {name}: no matching entries in passwd file")
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            match = [row for row in groups if len(row) >= 3 and row[0] == group]
            if not match:
                raise InvalidArgument(f"unable to find group {group}: no matching entries in "
                                      "group file")
            gid = int(match[0][2])
    extra = sorted({int(row[2]) for row in groups if len(row) >= 4 and row[2].isdigit()
                    and login in row[3].split(",") and int(row[2]) != (gid or 0)})
    return uid, gid or 0, extra


def host_nofile() -> int:
    """The most open files a container may have: Docker's 1048576, within this host's limit."""
    import resource  # POSIX only, as bundles are; the worker imports this module everywhere

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1048576 if hard == resource.RLIM_INFINITY else min(1048576, hard)


def rlimits(ulimits: list[Ulimit], nofile: int) -> list[dict[str, Any]]:
    """The process's rlimits: the spec's ``ulimits`` (-1: the runtime-spec's unlimited,
    the largest uint64), and Docker's open-files default unless they set it."""
    out = [{"type": f"RLIMIT_{limit.name.upper()}", "soft": _rlim(limit.soft),
            "hard": _rlim(limit.hard)} for limit in ulimits]
    if not any(limit.name == "nofile" for limit in ulimits):
        out.insert(0, {"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile})
    return out


def _rlim(value: int) -> int:
    return RLIM_UNLIMITED if value == -1 else value


def hostname_of(record: EngineContainer) -> str:
    """The container's host name: the spec's, or Docker's default, the id's first 12."""
    return record.spec.hostname or record.id[:12]


def resource_limits(limits: Resources) -> dict[str, Any]:
    """The memory, cpu and pids sections of ``linux.resources`` for the spec's limits (a
    section only for a limit that is set)."""
    resources: dict[str, Any] = {}
    if limits.memory:
        resources["memory"] = {"limit": limits.memory}
        if limits.memory_swap:
            resources["memory"]["swap"] = limits.memory_swap
    cpu: dict[str, Any] = {}
    if limits.cpu_shares:
        cpu["shares"] = limits.cpu_shares
    if limits.millicpus:
        cpu["quota"] = limits.millicpus * CPU_PERIOD // 1000
        cpu["period"] = CPU_PERIOD
    if cpu:
        resources["cpu"] = cpu
    if limits.pids:
        resources["pids"] = {"limit": limits.pids}
    return resources


def oci_config(record: EngineContainer, rootfs: Path, *, init_binary: str = INIT_BINARY,
               nofile: int | None = None, cgroup_scope: str = "",
               extra_mounts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """``cgroup_scope`` keeps the cgroups of workers sharing a host apart (ids may repeat);
    ``extra_mounts`` come after the spec's (the network's /etc/hosts and the like)."""
    spec = record.spec
    argv = record.argv()
    if not argv:
        raise InvalidArgument("no command: give one, or an image that has Cmd/Entrypoint")
    env = record.env()
    names = {e.split("=", 1)[0] for e in env}
    if "PATH" not in names:
        env.insert(0, f"PATH={DEFAULT_PATH}")
    hostname = hostname_of(record)
    env.append(f"HOSTNAME={hostname}")
    uid, gid, extra = resolve_user(record.user(), rootfs)
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro" if not spec.privileged else "rw"]},
    ]
    for mount in spec.mounts:
        if mount.type == "tmpfs":
            mounts.append({"destination": mount.target, "type": "tmpfs", "source": "tmpfs",
                           "options": ["nosuid", "nodev", *(["ro"] if mount.read_only else []),
                                       *([f"size={mount.tmpfs_size}"] if mount.tmpfs_size
                                         else []),
                                       f"mode={mount.tmpfs_mode or 0o1777:o}"]})
        elif mount.type == "bind":
            if not os.path.isabs(mount.source):
                raise InvalidArgument(f"bind mount source {mount.source!r} must be absolute")
            mounts.append({"destination": mount.target, "type": "bind", "source": mount.source,
                           "options": ["rbind", "ro" if mount.read_only else "rw"]})
        else:  # a named volume: its directory on this node, bound in
            source = record.volumes.get(mount.source)
            if source is None:
                raise InvalidArgument(f"volume {mount.source!r} was not made ready for this "
                                      "container")
            mounts.append({"destination": mount.target, "type": "bind", "source": source,
                           "options": ["rbind", "ro" if mount.read_only else "rw"]})
    targets = {m.target.rstrip("/") for m in spec.mounts}
    # A file the user binds over /etc/hosts (or the others) wins, as in Docker.
    mounts.extend(m for m in extra_mounts or () if m["destination"] not in targets)
    if spec.init:
        if not os.path.exists(init_binary):
            raise InvalidArgument(f"--init needs {init_binary} (Debian package tini)")
        mounts.append({"destination": INIT_PATH, "type": "bind", "source": init_binary,
                       "options": ["bind", "ro"]})
        argv = [INIT_PATH, "--", *argv]
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if spec.network != "host":
        namespaces.append({"type": "network"})
    resources = resource_limits(spec.resources)
    resources["devices"] = ALLOW_ALL_DEVICES if spec.privileged else DENY_ALL_DEVICES
    devices, device_rules = mapped_devices(spec.devices)
    if spec.privileged:  # every host device already, with an open device cgroup
        every = host_devices()
        paths = {d["path"] for d in every}
        devices = [*every, *(d for d in devices if d["path"] not in paths)]
    else:
        resources["devices"] = [*DENY_ALL_DEVICES, *device_rules]
    caps = capabilities(spec.cap_add, spec.cap_drop, spec.privileged)
    seccomp: dict[str, Any] = {}
    if spec.seccomp != "unconfined" and not spec.privileged:
        given = json.loads(spec.seccomp) if spec.seccomp else None
        seccomp = {"seccomp": default_profile(caps, given)}
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": spec.tty,
            "user": {"uid": uid, "gid": gid, **({"additionalGids": extra} if extra else {})},
            "args": argv,
            "env": env,
            "cwd": record.workdir(),
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": rlimits(spec.ulimits, nofile or host_nofile()),
            "noNewPrivileges": spec.no_new_privileges,
        },
        "root": {"path": str(rootfs), "readonly": False},
        "hostname": hostname,
        "mounts": mounts,
        "linux": {
            "namespaces": namespaces,
            **({"cgroupsPath": f"shoal/{cgroup_scope}/{record.id}"} if cgroup_scope else {}),
            "maskedPaths": [] if spec.privileged else list(MASKED),
            "readonlyPaths": [] if spec.privileged else list(READ_ONLY),
            **({"devices": devices} if devices else {}),
            "resources": resources,
            **seccomp,
        },
    }


DEFAULT_CPU_SHARES = 1024  # the kernel's (and Docker's) weight of a cgroup given none


def live_limits(before: Resources, after: Resources) -> LiveResources:
    """What to write into a running container's cgroups to go from ``before`` to ``after``:
    the sections that changed, a lifted limit written as the kernel's unlimited."""
    memory = cpu = pids = None
    if (before.memory, before.memory_swap) != (after.memory, after.memory_swap):
        swap = after.memory_swap or (-1 if before.memory_swap else None)
        memory = Memory(limit=after.memory or -1, swap=swap)
    if (before.millicpus, before.cpu_shares) != (after.millicpus, after.cpu_shares):
        cpu = CPU(shares=after.cpu_shares or DEFAULT_CPU_SHARES,
                  quota=after.millicpus * CPU_PERIOD // 1000 if after.millicpus else -1,
                  period=CPU_PERIOD)
    if before.pids != after.pids:
        pids = Pids(limit=after.pids or -1)
    return LiveResources(memory=memory, cpu=cpu, pids=pids)
