"""Turn a decoded config.json into a validated, immutable plan of what create must do (pure).

Everything that can be judged without touching the system is judged here: paths that must be
absolute, known namespace types and rlimits, capability names, sysctls that belong to a
namespace the container owns. The plan (``worker.runtime.plan``) is what the forked init
executes step by step.
"""

from __future__ import annotations

import posixpath

from worker.runtime import caps as capmod
from worker.runtime.errors import BundleInvalid
from worker.runtime.mountopts import PROPAGATION, parse_options
from worker.runtime.plan import (
    DEFAULT_DEVICES,
    NAMESPACES,
    CapSets,
    DevicePlan,
    MountPlan,
    NamespacePlan,
    Plan,
    ProcessPlan,
    rlimit_numbers,
)
from worker.runtime.spec import Hook, Spec


def _rlimit(value: int) -> int:
    """A config's rlimit value as setrlimit takes it: the largest uint64 (runc's and the
    kernel's RLIM_INFINITY) is Python's RLIM_INFINITY."""
    from resource import RLIM_INFINITY

    return RLIM_INFINITY if value >= (1 << 64) - 1 else value


def _absolute(field_name: str, path: str) -> str:
    if not path.startswith("/"):
        raise BundleInvalid(field_name, f"{path!r} must be an absolute path")
    return posixpath.normpath(path)


def _caps(names: list[str] | None, field_name: str) -> int:
    numbers = []
    for i, name in enumerate(names or []):
        number = capmod.cap_number(name)
        if number is None:
            raise BundleInvalid(f"{field_name}[{i}]", f"unknown capability {name!r}")
        numbers.append(number)
    return capmod.mask(numbers)


def _process(spec: Spec) -> ProcessPlan:
    proc = spec.process
    if proc is None:
        raise BundleInvalid("process", "required to create a container")
    if not proc.args:
        raise BundleInvalid("process.args", "must name the program to run")
    cwd = _absolute("process.cwd", proc.cwd)
    for i, var in enumerate(proc.env):
        if "=" not in var:
            raise BundleInvalid(f"process.env[{i}]", f"{var!r} is not NAME=value")
    rlimits = []
    seen: set[str] = set()
    numbers = rlimit_numbers() if proc.rlimits else {}
    for i, rl in enumerate(proc.rlimits):
        if rl.type not in numbers:
            raise BundleInvalid(f"process.rlimits[{i}].type", f"unknown rlimit {rl.type!r}")
        if rl.type in seen:
            raise BundleInvalid(f"process.rlimits[{i}].type", f"{rl.type} given twice")
        if rl.soft > rl.hard or rl.soft < 0:
            raise BundleInvalid(f"process.rlimits[{i}]", "soft must be between 0 and hard")
        seen.add(rl.type)
        rlimits.append((numbers[rl.type], _rlimit(rl.soft), _rlimit(rl.hard)))
    caps = None
    if proc.capabilities is not None:
        c = proc.capabilities
        caps = CapSets(
            bounding=_caps(c.bounding, "process.capabilities.bounding"),
            effective=_caps(c.effective, "process.capabilities.effective"),
            permitted=_caps(c.permitted, "process.capabilities.permitted"),
            inheritable=_caps(c.inheritable, "process.capabilities.inheritable"),
            ambient=_caps(c.ambient, "process.capabilities.ambient"),
        )
    if proc.apparmor_profile or proc.selinux_label:
        raise BundleInvalid("process.apparmorProfile" if proc.apparmor_profile
                            else "process.selinuxLabel", "LSM profiles are not supported")
    u = proc.user
    for name, value in (("uid", u.uid), ("gid", u.gid)):
        if not 0 <= value < 2**32 - 1:
            raise BundleInvalid(f"process.user.{name}", f"{value} is out of range")
    return ProcessPlan(
        args=tuple(proc.args), env=tuple(proc.env), cwd=cwd, uid=u.uid, gid=u.gid,
        additional_gids=tuple(u.additional_gids), umask=u.umask, rlimits=tuple(rlimits),
        caps=caps, no_new_privileges=proc.no_new_privileges, terminal=proc.terminal,
        oom_score_adj=proc.oom_score_adj,
        console_size=(proc.console_size.height, proc.console_size.width)
        if proc.console_size is not None else None,
    )


def _namespaces(spec: Spec) -> tuple[NamespacePlan, ...]:
    result: list[NamespacePlan] = []
    seen: set[str] = set()
    for i, ns in enumerate(spec.linux.namespaces if spec.linux else []):
        if ns.type not in NAMESPACES:
            raise BundleInvalid(f"linux.namespaces[{i}].type", f"unknown namespace {ns.type!r}")
        if ns.type in seen:
            raise BundleInvalid(f"linux.namespaces[{i}].type", f"{ns.type} given twice")
        seen.add(ns.type)
        path = _absolute(f"linux.namespaces[{i}].path", ns.path) if ns.path else None
        flag, proc_name = NAMESPACES[ns.type]
        result.append(NamespacePlan(ns.type, flag, proc_name, path))
    return tuple(result)


def _id_map(spec: Spec, which: str) -> str:
    mappings = getattr(spec.linux, which) if spec.linux else []
    lines = []
    for i, m in enumerate(mappings):
        if m.size <= 0 or m.containerID < 0 or m.hostID < 0:
            raise BundleInvalid(f"linux.{which}[{i}]", "ids must be >= 0 and size > 0")
        lines.append(f"{m.containerID} {m.hostID} {m.size}\n")
    return "".join(lines)


# Sysctl prefixes and the namespace that makes them container-local.
_SYSCTL_NS = (
    ("net.", "network"),
    ("kernel.msg", "ipc"), ("kernel.sem", "ipc"), ("kernel.shm", "ipc"), ("fs.mqueue.", "ipc"),
    ("kernel.hostname", "uts"), ("kernel.domainname", "uts"),
)


def _sysctl(spec: Spec, namespaces: tuple[NamespacePlan, ...]) -> tuple[tuple[str, str], ...]:
    owned = {ns.kind for ns in namespaces}
    result = []
    for key, value in sorted((spec.linux.sysctl if spec.linux else {}).items()):
        need = next((ns for prefix, ns in _SYSCTL_NS if key.startswith(prefix)), None)
        if need is None:
            raise BundleInvalid(f"linux.sysctl.{key}", "not namespaced; it would change the host")
        if need not in owned:
            raise BundleInvalid(f"linux.sysctl.{key}",
                                f"needs the container's own {need} namespace")
        if "/" in key or ".." in key:
            raise BundleInvalid(f"linux.sysctl.{key}", "malformed name")
        result.append((key, value))
    return tuple(result)


def _mounts(spec: Spec, bundle: str) -> tuple[MountPlan, ...]:
    result = []
    for i, m in enumerate(spec.mounts):
        dest = _absolute(f"mounts[{i}].destination", m.destination)
        if dest == "/":
            raise BundleInvalid(f"mounts[{i}].destination", "cannot mount over the root")
        opts = parse_options(m.options)
        fstype = m.type or ("bind" if opts.is_bind else "")
        source = m.source or ""
        if fstype == "bind" or opts.is_bind:
            if not source:
                raise BundleInvalid(f"mounts[{i}].source", "a bind mount needs a source")
            if fstype == "bind" and not opts.is_bind:
                opts = parse_options(["bind", *m.options])
            source = posixpath.normpath(posixpath.join(bundle, source))
        elif not fstype:
            raise BundleInvalid(f"mounts[{i}].type", "required for a non-bind mount")
        result.append(MountPlan(i, dest, source, fstype, opts))
    return tuple(result)


def _devices(spec: Spec) -> tuple[DevicePlan, ...]:
    devices = {d.path: d for d in DEFAULT_DEVICES}
    for i, d in enumerate(spec.linux.devices if spec.linux else []):
        path = _absolute(f"linux.devices[{i}].path", d.path)
        if d.type not in ("c", "b", "u", "p"):
            raise BundleInvalid(f"linux.devices[{i}].type", f"unknown device type {d.type!r}")
        mode = d.file_mode if d.file_mode is not None else 0o666
        devices[path] = DevicePlan(path, d.type, d.major, d.minor, mode, d.uid or 0, d.gid or 0)
    return tuple(devices.values())


def make_plan(spec: Spec, bundle: str, *, seccomp_cache_dir: str | None = None) -> Plan:
    """Validate ``spec`` (from ``bundle``, an absolute directory) into a Plan. A linux.seccomp
    profile is compiled through the process's filter cache over ``seccomp_cache_dir`` (memory
    only if None); the seccomp module (hashlib, tempfile, libseccomp) is imported only then."""
    bundle = _absolute("bundle", bundle)
    if spec.root is None:
        raise BundleInvalid("root", "required")
    if not spec.root.path:
        raise BundleInvalid("root.path", "must not be empty")
    rootfs = posixpath.normpath(posixpath.join(bundle, spec.root.path))
    linux = spec.linux
    process = _process(spec)
    if linux is not None and linux.seccomp is not None:
        from pathlib import Path

        from worker.runtime import jsontext, seccomp

        cache = seccomp.cache_in(Path(seccomp_cache_dir) if seccomp_cache_dir else None)
        profile = jsontext.dumps(linux.seccomp).encode()
        process = process.replace(seccomp=cache.filter_for(profile))
    namespaces = _namespaces(spec)
    kinds = {ns.kind for ns in namespaces}
    if "mount" not in kinds:
        raise BundleInvalid("linux.namespaces", "a mount namespace is required")
    uid_map, gid_map = _id_map(spec, "uid_mappings"), _id_map(spec, "gid_mappings")
    creates_user = any(ns.kind == "user" and ns.path is None for ns in namespaces)
    if creates_user and not (uid_map and gid_map):
        raise BundleInvalid("linux.uidMappings", "a new user namespace needs uid and gid mappings")
    if (uid_map or gid_map) and not creates_user:
        raise BundleInvalid("linux.uidMappings", "mappings need a new user namespace")
    if (spec.hostname or spec.domainname) and "uts" not in kinds:
        raise BundleInvalid("hostname", "setting the hostname needs a uts namespace")
    propagation = 0
    if linux and linux.rootfs_propagation:
        if linux.rootfs_propagation not in PROPAGATION:
            raise BundleInvalid("linux.rootfsPropagation",
                                f"unknown propagation {linux.rootfs_propagation!r}")
        propagation = PROPAGATION[linux.rootfs_propagation]
    masked = tuple(_absolute(f"linux.maskedPaths[{i}]", p)
                   for i, p in enumerate(linux.masked_paths if linux else []))
    readonly = tuple(_absolute(f"linux.readonlyPaths[{i}]", p)
                     for i, p in enumerate(linux.readonly_paths if linux else []))
    hooks: dict[str, tuple[Hook, ...]] = {}
    if spec.hooks is not None:
        for name in ("create_runtime", "create_container", "start_container", "poststart",
                     "poststop"):
            entries = list(getattr(spec.hooks, name))
            if name == "create_runtime":
                # The deprecated prestart hooks run at the same point, before createRuntime.
                entries = [*spec.hooks.prestart, *entries]
            for i, hook in enumerate(entries):
                _absolute(f"hooks.{name}[{i}].path", hook.path)
                if hook.timeout is not None and hook.timeout <= 0:
                    raise BundleInvalid(f"hooks.{name}[{i}].timeout", "must be > 0")
            hooks[name] = tuple(entries)
    return Plan(
        bundle=bundle,
        rootfs=rootfs,
        readonly_root=spec.root.readonly,
        process=process,
        namespaces=namespaces,
        uid_map=uid_map,
        gid_map=gid_map,
        hostname=spec.hostname,
        domainname=spec.domainname,
        mounts=_mounts(spec, bundle),
        devices=_devices(spec),
        masked_paths=masked,
        readonly_paths=readonly,
        sysctl=_sysctl(spec, namespaces),
        rootfs_propagation=propagation,
        cgroups_path=linux.cgroups_path if linux else None,
        resources=linux.resources if linux else None,
        hooks=hooks,
        annotations=dict(spec.annotations),
    )
