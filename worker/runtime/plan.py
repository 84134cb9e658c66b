"""The plan of what create must do: immutable types the forked init executes step by step.

Built and validated from config.json by ``worker.runtime.planner``. This module imports
nothing heavy (no msgspec, no protocol, no dataclasses): the small process that forks
container inits (``worker.runtime.zygote``) unpickles plans and should stay small.
"""

from __future__ import annotations

from worker.runtime.mountopts import MountOptions
from worker.runtime.records import Record, field

TYPE_CHECKING = False  # typing costs a runtime command milliseconds to import
if TYPE_CHECKING:
    from worker.runtime.spec import Hook, Resources

# type in config.json -> (clone flag, name under /proc/PID/ns)
NAMESPACES: dict[str, tuple[int, str]] = {
    "user": (0x10000000, "user"),
    "pid": (0x20000000, "pid"),
    "network": (0x40000000, "net"),
    "ipc": (0x08000000, "ipc"),
    "uts": (0x04000000, "uts"),
    "mount": (0x00020000, "mnt"),
    "cgroup": (0x02000000, "cgroup"),
}
# Joining order: the user namespace first (it grants rights over the others), mount last
# (after it the runtime's own paths are gone).
JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "mount")

def rlimit_numbers() -> dict[str, int]:
    """RLIMIT_* name -> its resource number (resource is imported only for a config that sets
    rlimits)."""
    import resource

    return {name: getattr(resource, name) for name in dir(resource)
            if name.startswith("RLIMIT_")}


class DevicePlan(Record):
    path: str
    kind: str  # "c", "b", "u" or "p"
    major: int
    minor: int
    mode: int
    uid: int
    gid: int


DEFAULT_DEVICES: tuple[DevicePlan, ...] = tuple(
    DevicePlan(f"/dev/{name}", "c", major, minor, 0o666, 0, 0)
    for name, major, minor in (
        ("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9),
        ("tty", 5, 0),
    )
)


class MountPlan(Record):
    index: int
    destination: str
    source: str
    fstype: str
    options: MountOptions


class CapSets(Record):
    bounding: int
    effective: int
    permitted: int
    inheritable: int
    ambient: int


class SeccompFilter(Record):
    """A compiled linux.seccomp: the struct sock_filter array and the seccomp(2) flags."""

    program: bytes
    flags: int
    digest: str  # of the profile's JSON: the cache key


class ProcessPlan(Record):
    args: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str
    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    umask: int | None
    rlimits: tuple[tuple[int, int, int], ...]  # (resource, soft, hard)
    caps: CapSets | None
    no_new_privileges: bool
    terminal: bool
    oom_score_adj: int | None
    console_size: tuple[int, int] | None = None  # (rows, cols) the pty has from the start
    seccomp: SeccompFilter | None = None
    preserve_fds: int = 0  # descriptors 3 .. 3+N-1 the process inherits (exec --preserve-fds)


class NamespacePlan(Record):
    kind: str
    flag: int
    proc_name: str
    path: str | None


class Plan(Record):
    bundle: str
    rootfs: str
    readonly_root: bool
    process: ProcessPlan
    namespaces: tuple[NamespacePlan, ...]
    uid_map: str
    gid_map: str
    hostname: str | None
    domainname: str | None
    mounts: tuple[MountPlan, ...]
    devices: tuple[DevicePlan, ...]
    masked_paths: tuple[str, ...]
    readonly_paths: tuple[str, ...]
    sysctl: tuple[tuple[str, str], ...]
    rootfs_propagation: int
    cgroups_path: str | None
    resources: Resources | None
    hooks: dict[str, tuple[Hook, ...]] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    # MS_MOVE and chroot instead of pivot_root (run/create --no-pivot).
    no_pivot: bool = False

    def creates(self, kind: str) -> bool:
        """True when the container gets a new namespace of this kind."""
        return any(ns.kind == kind and ns.path is None for ns in self.namespaces)

    def has(self, kind: str) -> bool:
        """True when the container gets its own (new or joined) namespace of this kind."""
        return any(ns.kind == kind for ns in self.namespaces)
