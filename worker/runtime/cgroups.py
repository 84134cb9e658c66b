"""Container cgroups: where they go, what the resource limits become, creating and removing them.

The translation from runtime-spec resources to cgroup files is pure (``v1_writes``,
``v2_writes``). On cgroup v1 the container gets a cgroup in every mounted hierarchy; on a
unified (v2) host, one cgroup. An absolute cgroupsPath is taken from the hierarchy's root, as
the runtime-spec says; a relative one (and the default, shoal/ID) from the runtime's own cgroup
in that hierarchy (read from /proc/self/cgroup). A cgroup that exists already is joined, as runc
does, unless it is frozen.

A container's devices are confined as runc confines them (deny all, the config's rules, the
default allowlist): by the v1 devices controller where there is one (a v1 or hybrid host), else
by a device filter program attached to the container's cgroup v2 directory (``device_bpf``,
imported only then).
"""

from __future__ import annotations

import errno
import os
import posixpath
import time

from worker.runtime.errors import BundleInvalid
from worker.runtime.lazylog import LazyLogger
from worker.runtime.records import Record

TYPE_CHECKING = False  # typing costs a runtime command milliseconds to import
if TYPE_CHECKING:
    from worker.runtime.spec import DeviceRule, Resources

log = LazyLogger(__name__)

# Devices every container needs, allowed even when the config denies all devices (runc's
# AllowedDevices): mknod of any node (opening one still needs a rule), null, zero, full,
# random, urandom, tty, console, ptmx, the ptys, and tun.
_DEFAULT_DEVICE_RULES = (
    "c *:* m", "b *:* m",
    "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
    "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm", "c 10:200 rwm",
)


def v1_writes(res: Resources | None) -> list[tuple[str, str, str]]:
    """(controller, file, value) in the order they must be written on cgroup v1."""
    out: list[tuple[str, str, str]] = []
    if res is None:
        return out
    mem = res.memory
    if mem is not None:
        if mem.kernel is not None or mem.kernel_TCP is not None:
            raise BundleInvalid("linux.resources.memory.kernel",
                                "kernel memory limits are not supported")
        if mem.limit is not None:
            out.append(("memory", "memory.limit_in_bytes", str(mem.limit)))
        if mem.swap is not None:
            if mem.limit is not None and 0 < mem.swap < mem.limit:
                raise BundleInvalid("linux.resources.memory.swap",
                                    "memory+swap must be at least the memory limit")
            out.append(("memory", "memory.memsw.limit_in_bytes", str(mem.swap)))
        if mem.reservation is not None:
            out.append(("memory", "memory.soft_limit_in_bytes", str(mem.reservation)))
        if mem.swappiness is not None:
            out.append(("memory", "memory.swappiness", str(mem.swappiness)))
        if mem.disable_OOM_killer:
            out.append(("memory", "memory.oom_control", "1"))
    cpu = res.cpu
    if cpu is not None:
        if cpu.shares is not None:
            out.append(("cpu", "cpu.shares", str(cpu.shares)))
        if cpu.period is not None:
            out.append(("cpu", "cpu.cfs_period_us", str(cpu.period)))
        if cpu.quota is not None:
            out.append(("cpu", "cpu.cfs_quota_us", str(cpu.quota)))
        if cpu.realtime_period is not None:
            out.append(("cpu", "cpu.rt_period_us", str(cpu.realtime_period)))
        if cpu.realtime_runtime is not None:
            out.append(("cpu", "cpu.rt_runtime_us", str(cpu.realtime_runtime)))
        if cpu.cpus:
            out.append(("cpuset", "cpuset.cpus", cpu.cpus))
        if cpu.mems:
            out.append(("cpuset", "cpuset.mems", cpu.mems))
    if res.pids is not None:
        out.append(("pids", "pids.max", str(res.pids.limit) if res.pids.limit > 0 else "max"))
    weight = _blkio_weight(res)
    if weight is not None:
        out.append(("blkio", "blkio.weight", str(weight)))
    if res.devices:
        out.extend(_device_writes(res.devices))
    if res.unified:
        raise BundleInvalid("linux.resources.unified", "invalid configuration: cgroup v1 has "
                            "no unified resources (they need a cgroup v2 host)")
    return out


def _device_writes(rules: list[DeviceRule]) -> list[tuple[str, str, str]]:
    """Deny every device, then the config's rules in order, then the defaults (as runc:
    its device emulator starts from deny-all and appends its AllowedDevices)."""
    out: list[tuple[str, str, str]] = [("devices", "devices.deny", "a")]
    for i, rule in enumerate(rules):
        kind = rule.type or "a"
        if kind not in ("a", "c", "b"):
            raise BundleInvalid(f"linux.resources.devices[{i}].type", f"unknown type {kind!r}")
        given = rule.access or "rwm"
        # As runc (its device emulator): letters other than r, w and m are no permission and
        # are dropped ("rwa" is rw); a rule left with none is refused.
        access = "".join(c for c in "rwm" if c in given)
        if not access:
            raise BundleInvalid(f"linux.resources.devices[{i}].access",
                                f"{given!r} names none of r, w and m")
        if kind == "a":
            entry = "a"
        else:
            for name, number in (("major", rule.major), ("minor", rule.minor)):
                if number is not None and number > 0xFFFFFFFF:  # the kernel's u32
                    raise BundleInvalid(f"linux.resources.devices[{i}].{name}",
                                        f"{number} is not a device number")
            major = "*" if rule.major is None or rule.major < 0 else str(rule.major)
            minor = "*" if rule.minor is None or rule.minor < 0 else str(rule.minor)
            entry = f"{kind} {major}:{minor} {access}"
        out.append(("devices", "devices.allow" if rule.allow else "devices.deny", entry))
    out.extend(("devices", "devices.allow", default) for default in _DEFAULT_DEVICE_RULES)
    return out


def v2_writes(res: Resources | None) -> list[tuple[str, str]]:
    """(file, value) in the order they must be written on cgroup v2."""
    out: list[tuple[str, str]] = []
    if res is None:
        return out
    mem = res.memory
    if mem is not None:
        if mem.limit is not None:
            out.append(("memory.max", str(mem.limit) if mem.limit > 0 else "max"))
        if mem.swap is not None:
            if mem.swap < 0:
                out.append(("memory.swap.max", "max"))
            elif mem.limit is not None and mem.limit > 0:
                if mem.swap < mem.limit:
                    raise BundleInvalid("linux.resources.memory.swap",
                                        "memory+swap must be at least the memory limit")
                out.append(("memory.swap.max", str(mem.swap - mem.limit)))
        if mem.reservation is not None:
            out.append(("memory.low", str(mem.reservation)))
    cpu = res.cpu
    if cpu is not None:
        if cpu.shares is not None:
            # The documented mapping of v1 shares [2, 262144] onto v2 weight [1, 10000].
            weight = 1 + ((max(2, min(cpu.shares, 262144)) - 2) * 9999) // 262142
            out.append(("cpu.weight", str(weight)))
        if cpu.quota is not None or cpu.period is not None:
            quota = "max" if cpu.quota is None or cpu.quota <= 0 else str(cpu.quota)
            out.append(("cpu.max", f"{quota} {cpu.period or 100000}"))
        if cpu.cpus:
            out.append(("cpuset.cpus", cpu.cpus))
        if cpu.mems:
            out.append(("cpuset.mems", cpu.mems))
    if res.pids is not None:
        out.append(("pids.max", str(res.pids.limit) if res.pids.limit > 0 else "max"))
    io_weight = _blkio_weight(res)
    if io_weight is not None:
        # io.weight is [1, 10000]: the mapping runc uses for the v1 range [10, 1000].
        out.append(("io.weight", f"default {1 + (io_weight - 10) * 9999 // 990}"))
    for key, value in sorted((res.unified or {}).items()):
        if "/" in key or key.startswith("."):
            raise BundleInvalid(f"linux.resources.unified.{key}", "malformed file name")
        out.append((key, value))
    if res.devices:
        _device_writes(res.devices)  # checked as on v1; v2 has no files for them (a filter)
    return out


def _blkio_weight(res: Resources) -> int | None:
    bio = res.block_IO
    if bio is None:
        return None
    for name in ("leaf_weight", "weight_device", "throttle_read_bps_device",
                 "throttle_write_bps_device", "throttle_read_IOPS_device",
                 "throttle_write_IOPS_device"):
        if getattr(bio, name):
            raise BundleInvalid(f"linux.resources.blockIO.{name}", "is not supported")
    if bio.weight is not None and not 10 <= bio.weight <= 1000:
        raise BundleInvalid("linux.resources.blockIO.weight", "must be within [10, 1000]")
    return bio.weight


class Hierarchy(Record):
    """One mounted cgroup hierarchy and the runtime's own cgroup directory in it."""

    controllers: frozenset[str]
    mountpoint: str
    own_dir: str
    unified: bool


def discover() -> list[Hierarchy]:
    """The cgroup hierarchies of this process, from /proc/self/mountinfo and /proc/self/cgroup
    (on a hybrid host, the controller-less v2 tree last)."""
    own: dict[str, str] = {}  # controllers (sorted, joined) -> our cgroup's path
    with open("/proc/self/cgroup") as f:
        for line in f:
            _hid, names, path = line.rstrip("\n").split(":", 2)
            own[",".join(sorted(names.split(",")))] = path
    unified_host = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    result: list[Hierarchy] = []
    seen: set[str] = set()
    with open("/proc/self/mountinfo") as f:
        text = f.read()
    for line in text.splitlines():
        # Hundreds of mounts on a busy host, a dozen of them cgroups: only those are parsed.
        if " - cgroup" not in line:
            continue
        left, right = line.split(" - ", 1)
        fields = left.split()
        root, mountpoint = fields[3], fields[4]
        fstype, _src, superopts = right.split()[:3]
        if fstype == "cgroup2":
            key = ""
            ctrls: frozenset[str] = frozenset()
        elif fstype == "cgroup":
            opts = superopts.split(",")
            ctrls = frozenset(o for o in opts if o not in ("rw", "ro") and "=" not in o
                              and o not in ("xattr", "noprefix", "clone_children")) | \
                frozenset(o for o in opts if o.startswith("name="))
            key = ",".join(sorted(ctrls))
        else:
            continue
        own_path = own.get(key)
        if own_path is None or key in seen:
            continue
        seen.add(key)
        # Our cgroup as seen below this mount's root (the whole tree, or a part of it).
        if root == "/":
            rel = own_path
        elif own_path == root or own_path.startswith(root + "/"):
            rel = own_path[len(root):]
        else:
            rel = ""
        own_dir = posixpath.normpath(mountpoint + "/" + rel.lstrip("/"))
        result.append(Hierarchy(ctrls, mountpoint, own_dir, fstype == "cgroup2"))
    if not unified_host:
        # Hybrid: the v2 tree carries no controllers, but runc places the container in it too
        # (what /proc/PID/cgroup's 0:: line shows). Last: the v1 hierarchies decide the rest.
        result.sort(key=lambda h: h.unified)
    return result


def container_dirs(hierarchies: list[Hierarchy], cgroups_path: str | None,
                   container_id: str) -> list[tuple[Hierarchy, str]]:
    """Where the container's cgroup goes in each hierarchy: an absolute cgroupsPath from the
    hierarchy's root, a relative one from the runtime's own cgroup."""
    rel = (cgroups_path or f"shoal/{container_id}").strip("/")
    rel = posixpath.normpath(rel)
    if rel.startswith("..") or rel == "." or ":" in rel:
        raise BundleInvalid("linux.cgroupsPath", f"{cgroups_path!r} must be a plain path")
    from_root = cgroups_path is not None and cgroups_path.startswith("/")
    return [(h, posixpath.join(h.mountpoint if from_root else h.own_dir, rel))
            for h in hierarchies]


class CgroupFrozen(OSError):
    """A pre-existing cgroup is frozen: a task joining it would stop at once."""


def _check_reused(h: Hierarchy, d: str) -> None:
    """A cgroup made by someone else is joined as it is, but not a frozen one (the init would
    hang); one with processes in it is allowed, with a warning, as runc does."""
    if h.unified:
        frozen = _read_or_empty(posixpath.join(d, "cgroup.freeze")) == "1"
    elif "freezer" in h.controllers:
        frozen = _read_or_empty(posixpath.join(d, "freezer.state")) not in ("", "THAWED")
    else:
        frozen = False
    if frozen:
        raise CgroupFrozen(errno.EBUSY, f"container's cgroup unexpectedly frozen: {d}")
    procs = _read_or_empty(posixpath.join(d, "cgroup.procs"))
    if procs:
        log.warning("cgroup.not_empty", cgroup=d, processes=len(procs.split()),
                    message="container's cgroup is not empty")


def _read_or_empty(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""


def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


# v1 cpuset directories known to set cpus and mems of a new child themselves
# (cgroup.clone_children), so that nothing needs copying.
_CLONING: set[str] = set()


def _fill_cpuset(h: Hierarchy, d: str) -> None:
    """A new v1 cpuset is empty and no task may join it: give it its parent's cpus and mems,
    and have the directories the runtime owns hand theirs down by themselves from now on."""
    parent = posixpath.dirname(d)
    if parent in _CLONING:
        return
    with open(posixpath.join(parent, "cgroup.clone_children")) as f:
        if f.read().strip() == "1":
            _CLONING.add(parent)
            return
    for name in ("cpuset.cpus", "cpuset.mems"):
        with open(posixpath.join(parent, name)) as f:
            _write(posixpath.join(d, name), f.read().strip())
    if posixpath.dirname(d) != h.own_dir:  # d's parent is ours: from now on it copies
        _write(posixpath.join(parent, "cgroup.clone_children"), "1")
        _CLONING.add(parent)


def create(dirs: list[tuple[Hierarchy, str]], res: Resources | None, *,
           confine_devices: bool = True) -> list[str]:
    """Create the cgroups (or join existing ones) and write the limits; returns the
    directories made (for removal). ``confine_devices``: a container's cgroup, which gets
    runc's device policy (deny all but the config's rules and the default allowlist) whether
    or not the config names devices; False for a host process's (the process driver's), where
    only the rules named apply."""
    rules = res.devices if res is not None and res.devices else None
    # Checked before anything is made: a bad rule is the bundle's error, not a cgroup's.
    device_lines = _device_writes(rules or []) if rules is not None or confine_devices else []
    made: list[str] = []
    try:
        for h, d in dirs:
            # mkdir first (one call where the parent exists, as it mostly does), then what
            # its error says: a cgroup that exists is joined, missing parents are made.
            try:
                os.mkdir(d)
            except FileExistsError:
                if not os.path.isdir(d):
                    raise
                _check_reused(h, d)
                continue
            except FileNotFoundError:
                missing = [d]
                parent = posixpath.dirname(d)
                while not os.path.isdir(parent):
                    missing.append(parent)
                    parent = posixpath.dirname(parent)
                missing.reverse()
                for p in missing:
                    os.mkdir(p)
                    made.append(p)
                    if "cpuset" in h.controllers:
                        _fill_cpuset(h, p)
                continue
            made.append(d)
            if "cpuset" in h.controllers:
                _fill_cpuset(h, d)
        if dirs and dirs[0][0].unified:
            d = dirs[0][1]
            for name, value in v2_writes(res):
                _write(posixpath.join(d, name), value)
        else:
            by_ctrl = {c: d for h, d in dirs for c in h.controllers}
            for ctrl, name, value in v1_writes(res):
                if ctrl == "devices":
                    continue  # device_lines, below
                if ctrl not in by_ctrl:
                    raise OSError(errno.ENOENT, f"no {ctrl} cgroup hierarchy is mounted")
                _write(posixpath.join(by_ctrl[ctrl], name), value)
        if device_lines:
            _apply_device_lines(dirs, device_lines)
    except OSError:
        remove(made)
        raise
    return made


def apply_devices(dirs: list[tuple[Hierarchy, str]], rules: list[DeviceRule]) -> None:
    """Make ``rules`` (then the default allowlist, after denying all) the container's device
    policy in place of the one it had. On a v1 devices cgroup whose default and the new one's
    are deny (a container's, unless it allows ``a``), only the difference is written, gains
    first: a running container never passes through "deny all", nor through more than either
    policy allows. A change of default can only be written whole."""
    lines = _device_writes(rules)
    v1 = next((d for h, d in dirs if "devices" in h.controllers), None)
    if v1 is not None:
        from worker.runtime import device_policy

        with open(posixpath.join(v1, "devices.list")) as f:
            current = device_policy.parse_listing(f.read().splitlines())
        target = device_policy.reduce([(name == "devices.allow", value)
                                       for _c, name, value in lines])
        steps = None if current is None else device_policy.transition(current, target)
        if steps is not None:
            for allow, line in steps:
                _write(posixpath.join(v1, "devices.allow" if allow else "devices.deny"), line)
            return
    _apply_device_lines(dirs, lines)


def _apply_device_lines(dirs: list[tuple[Hierarchy, str]],
                        lines: list[tuple[str, str, str]]) -> None:
    """The v1 devices controller takes the lines where the container has a cgroup in it (a v1
    or hybrid host, as runc); else, on cgroup v2, the same lines become a device filter
    program attached to the container's cgroup (and its loader is imported only then)."""
    v1 = next((d for h, d in dirs if "devices" in h.controllers), None)
    if v1 is not None:
        # One rule per write, as the kernel reads them; each file opened once.
        opened: dict[str, int] = {}
        try:
            for _ctrl, name, value in lines:
                fd = opened.get(name)
                if fd is None:
                    fd = opened[name] = os.open(posixpath.join(v1, name),
                                                os.O_WRONLY | os.O_CLOEXEC)
                os.write(fd, value.encode())
        finally:
            for fd in opened.values():
                os.close(fd)
        return
    v2 = next((d for h, d in dirs if h.unified), None)
    if v2 is None:
        raise OSError(errno.ENOENT, "no devices cgroup hierarchy is mounted, and no cgroup2 "
                      "tree to attach a device filter to")
    from worker.runtime import device_bpf, device_policy

    policy = device_policy.reduce([(name == "devices.allow", value) for _c, name, value in lines])
    device_bpf.confine(v2, policy)


def procs_files(dirs: list[str]) -> list[str]:
    return [posixpath.join(d, "cgroup.procs") for d in dirs]


def pids_in(dirs: list[str]) -> list[int]:
    """Processes in the container's cgroup (from the first hierarchy that still exists)."""
    for d in dirs:
        try:
            with open(posixpath.join(d, "cgroup.procs")) as f:
                return [int(x) for x in f.read().split()]
        except FileNotFoundError:
            continue
    return []


def remove(made: list[str], timeout: float = 10.0) -> None:
    """Remove cgroup directories, deepest first; missing ones are fine.

    Dying tasks leave their cgroup asynchronously, so EBUSY on a leaf right after a kill is
    expected for a moment: wait (bounded) for each listed process to be gone and retry.
    """
    deadline = time.monotonic() + timeout
    for d in sorted(made, key=lambda p: p.count("/"), reverse=True):
        while True:
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError as exc:
                if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                    raise
                if _has_children(d):
                    break  # a shared parent (e.g. shoal/) still used by another container
                if time.monotonic() > deadline:
                    raise
                for pid in pids_in([d]):
                    _wait_exit(pid, 0.1)
                time.sleep(0.001)  # the kernel's cgroup release is not an event we can await


def _wait_exit(pid: int, timeout: float) -> None:
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        import select  # here: only a busy cgroup gets here

        select.select([fd], [], [], timeout)
    finally:
        os.close(fd)


def _has_children(d: str) -> bool:
    return any(e.is_dir() for e in os.scandir(d))


def exec_dirs(container_dirs: list[str], hierarchies: list[Hierarchy],
              requests: list[str]) -> list[str]:
    """The cgroups an exec'd process joins: the container's own, or for each ``--cgroup``
    request (``PATH``, or ``CONTROLLER[,CONTROLLER]:PATH``) a sub-cgroup of it, as runc does.
    Raises OperationFailed for a path outside the container's cgroup, an unknown controller,
    or a sub-cgroup that does not exist."""
    from worker.runtime.errors import OperationFailed

    def hierarchy_of(d: str) -> Hierarchy | None:
        return next((h for h in hierarchies
                     if d == h.mountpoint or d.startswith(h.mountpoint.rstrip("/") + "/")), None)

    owners = {d: hierarchy_of(d) for d in container_dirs}
    chosen = {d: d for d in container_dirs}
    for request in requests:
        names, colon, path = request.rpartition(":")
        sub = posixpath.normpath(path.lstrip("/") or ".")
        if sub == ".." or sub.startswith("../"):
            raise OperationFailed(f"exec --cgroup: {path} is not a sub cgroup path")
        wanted = set(names.split(",")) if colon else None
        known = {c.removeprefix("name=") for h in owners.values() if h for c in h.controllers}
        for name in wanted or ():
            if name not in known:
                raise OperationFailed(f"exec --cgroup: unknown controller {name!r}")
        for d, h in owners.items():
            ctrls = {c.removeprefix("name=") for c in h.controllers} if h else set()
            # A controller-less v2 tree (hybrid, or a v2 host) takes plain paths only.
            if wanted is None or wanted & ctrls:
                chosen[d] = posixpath.normpath(posixpath.join(d, sub))
    for d in chosen.values():
        if not os.path.isdir(d):
            raise OperationFailed(f"exec failed: adding pid to cgroups: open "
                                  f"{d}/cgroup.procs: no such file or directory")
    return list(chosen.values())
