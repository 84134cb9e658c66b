"""Build the container's filesystem view inside its new mount namespace (runs in the init).

Order: the host's / made slave (or as rootfsPropagation says) so nothing propagates back, the
rootfs bind-mounted onto itself, the config's mounts in order with every target resolved inside
the rootfs and mounted through an O_PATH descriptor, devices and /dev links, then pivot_root
with the old root detached (or, with no_pivot, the rootfs moved over / and chrooted into), then
masked and read-only paths and a read-only root.
"""

from __future__ import annotations

import errno
import os
import stat

from worker.runtime import syscalls as sc
from worker.runtime.mountinfo import read_mounts
from worker.runtime.mountopts import (
    MS_BIND,
    MS_MOVE,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    MS_SLAVE,
)
from worker.runtime.paths import resolve_in_root
from worker.runtime.plan import DevicePlan, MountPlan, Plan

_LOCKED = MS_NOSUID | MS_NODEV | MS_NOEXEC
_ST_TO_MS = ((os.ST_RDONLY, MS_RDONLY), (os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV),
             (os.ST_NOEXEC, MS_NOEXEC))


def _current_flags(path: str) -> int:
    vfs = os.statvfs(path)
    return sum(ms for st, ms in _ST_TO_MS if vfs.f_flag & st)


def _open_target(root: str, dest: str, *, is_dir: bool) -> int:
    """Create ``dest`` inside ``root`` if needed and open it O_PATH, checked to be inside."""
    path = resolve_in_root(root, dest)
    if is_dir:
        os.makedirs(path, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not os.path.lexists(path):
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644))
    fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    # Re-check what the descriptor really is: a symlink swapped in after resolution is refused.
    real = os.readlink(f"/proc/self/fd/{fd}")
    if real != path and not real.startswith(root.rstrip("/") + "/"):
        os.close(fd)
        raise OSError(errno.EXDEV, f"{dest} resolved outside the rootfs to {real}")
    return fd


def _mount_at(root: str, dest: str, *, is_dir: bool, source: str | None, fstype: str | None,
              flags: int, data: str | None = None) -> str:
    fd = _open_target(root, dest, is_dir=is_dir)
    try:
        sc.mount(source, f"/proc/self/fd/{fd}", fstype, flags, data)
    finally:
        os.close(fd)
    return resolve_in_root(root, dest)


def prepare(plan: Plan) -> None:
    """Cut propagation to the host and make the rootfs a mount point of its own."""
    flags = plan.rootfs_propagation or (MS_SLAVE | MS_REC)
    if flags & (MS_SLAVE | MS_PRIVATE) == 0:
        flags = MS_SLAVE | MS_REC  # a shared / would leak container mounts to the host
    sc.mount(None, "/", None, flags)
    if not os.path.isdir(plan.rootfs):
        raise FileNotFoundError(errno.ENOENT, f"rootfs {plan.rootfs} is not a directory")
    sc.mount(plan.rootfs, plan.rootfs, None, MS_BIND | MS_REC)


def do_mount(plan: Plan, m: MountPlan, cgroup_dirs: dict[str, str], in_userns: bool, *,
             source_fd: int | None = None) -> None:
    """One entry of config.json's mounts; ``source_fd``: the bind source, opened (O_PATH) by
    the host's root where the container's own root may not reach it. It is closed here."""
    root = plan.rootfs
    opts = m.options
    flags = opts.flags
    if m.fstype in ("proc", "sysfs"):
        _refuse_symlink(root, m)
    if opts.is_bind:
        source = m.source if source_fd is None else f"/proc/self/fd/{source_fd}"
        try:
            st = os.stat(source)
            target = _mount_at(root, m.destination, is_dir=stat.S_ISDIR(st.st_mode),
                               source=source, fstype=None, flags=flags & (MS_BIND | MS_REC))
        finally:
            if source_fd is not None:
                os.close(source_fd)
        extra = flags & ~(MS_BIND | MS_REC | MS_REMOUNT)
        if extra:
            locked = _current_flags(target) & _LOCKED if in_userns else 0
            sc.mount(None, target, None, MS_BIND | MS_REMOUNT | extra | locked)
    elif m.fstype == "sysfs":
        try:
            target = _mount_at(root, m.destination, is_dir=True, source=m.source or "sysfs",
                               fstype="sysfs", flags=flags, data=opts.data)
        except PermissionError:
            # Without its own network namespace a container may not mount sysfs: show the host's.
            target = _mount_at(root, m.destination, is_dir=True, source="/sys", fstype=None,
                               flags=MS_BIND | MS_REC)
            if flags & MS_RDONLY:
                sc.mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | _LOCKED)
    elif m.fstype == "cgroup":
        _mount_cgroups(root, m, cgroup_dirs)
        return
    else:
        if _dev_read_only_later(m):
            flags &= ~MS_RDONLY  # devices and /dev/pts go in first; finish() makes it ro
        target = _mount_at(root, m.destination, is_dir=True, source=m.source or m.fstype,
                           fstype=m.fstype, flags=flags, data=opts.data)
    if opts.is_recursive:
        _set_recursive(target, m)
    for prop in opts.propagation:
        sc.mount(None, target, None, prop)


def _set_recursive(target: str, m: MountPlan) -> None:
    """The recursive options (rro, rnosuid, ...): mount_setattr(2) over the mount's tree."""
    try:
        sc.mount_setattr(target, m.options.recursive_set, m.options.recursive_clear,
                         recursive=True)
    except OSError as exc:
        if exc.errno == errno.ENOSYS:
            raise OSError(errno.ENOSYS, f"{m.destination}: recursive mount options (rro, ...) "
                          "need mount_setattr(2), Linux 5.12 or later") from exc
        raise


def _dev_read_only_later(m: MountPlan) -> bool:
    """A read-only tmpfs on /dev is mounted writable and made read-only after pivot_root, as
    runc does: its device nodes, links and mount points are made in it first."""
    return m.fstype == "tmpfs" and m.destination.rstrip("/") == "/dev" and bool(
        m.options.flags & MS_RDONLY)


def _refuse_symlink(root: str, m: MountPlan) -> None:
    """As runc: /proc or /sys made a symlink by the image would have the kernel's files
    mounted wherever the link points (inside the rootfs, but not where masks and read-only
    paths expect them)."""
    path = os.path.join(root, m.destination.lstrip("/"))
    if os.path.islink(path):
        raise OSError(errno.ENOTDIR, f"{m.destination} is a symlink: {m.fstype} must be "
                      "mounted on ordinary directory")


def _mount_cgroups(root: str, m: MountPlan, cgroup_dirs: dict[str, str]) -> None:
    """cgroup v1: a tmpfs with the container's own cgroup of each hierarchy bound into it."""
    flags = m.options.flags
    _mount_at(root, m.destination, is_dir=True, source="tmpfs", fstype="tmpfs",
                     flags=MS_NOSUID | MS_NODEV | MS_NOEXEC, data="mode=755")
    for name, host_dir in cgroup_dirs.items():
        target = _mount_at(root, os.path.join(m.destination, name), is_dir=True, source=host_dir,
                           fstype=None, flags=MS_BIND)
        sc.mount(None, target, None, MS_BIND | MS_REMOUNT | (flags & ~(MS_BIND | MS_REC)))


class DirFds:
    """Directories inside the rootfs, each resolved and opened (O_PATH) once: devices and
    links are then made relative to them, with no path walked again."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.fds: dict[str, int] = {}

    def get(self, directory: str) -> int:
        fd = self.fds.get(directory)
        if fd is None:
            fd = _open_target(self.root, directory, is_dir=True)
            self.fds[directory] = fd
        return fd

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


_NODE_KINDS = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def make_device(dirs: DirFds, dev: DevicePlan, in_userns: bool) -> None:
    if in_userns:
        path = resolve_in_root(dirs.root, dev.path)
        if os.path.lexists(path):
            os.unlink(path)
        # mknod is not allowed in a user namespace: bind the host's node instead.
        _mount_at(dirs.root, dev.path, is_dir=False, source=dev.path, fstype=None,
                  flags=MS_BIND)
        return
    parent, name = os.path.split(dev.path)
    fd = dirs.get(parent)
    mode, number = _NODE_KINDS[dev.kind] | (dev.mode & 0o7777), os.makedev(dev.major, dev.minor)
    umask = os.umask(0)  # the mode exactly as configured
    try:
        try:
            os.mknod(name, mode, number, dir_fd=fd)
        except FileExistsError:  # whatever the image has there is replaced
            os.unlink(name, dir_fd=fd)
            os.mknod(name, mode, number, dir_fd=fd)
    finally:
        os.umask(umask)
    os.chown(name, dev.uid, dev.gid, dir_fd=fd, follow_symlinks=False)


def dev_links(dirs: DirFds) -> None:
    links = [("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"),
             ("/proc/self/fd/1", "stdout"), ("/proc/self/fd/2", "stderr"),
             ("pts/ptmx", "ptmx")]
    if os.path.exists("/proc/kcore"):
        links.append(("/proc/kcore", "core"))
    fd = dirs.get("/dev")
    for target, name in links:
        try:
            os.symlink(target, name, dir_fd=fd)
        except FileExistsError:
            if name != "ptmx":
                continue  # the image's own stays
            os.unlink(name, dir_fd=fd)
            os.symlink(target, name, dir_fd=fd)


def pivot(root: str) -> None:
    """Make ``root`` the root and detach the old one, so no host path stays reachable."""
    os.chdir(root)
    sc.pivot_root(".", ".")
    # The old root is now stacked under the new one at "/": slave it so the detach below
    # cannot propagate unmounts to the host, then drop it.
    sc.mount(None, ".", None, MS_SLAVE | MS_REC)
    sc.umount2(".", sc.MNT_DETACH)
    os.chdir("/")


def move_root(root: str) -> None:
    """Without pivot_root (run --no-pivot: a root pivot_root cannot leave, as an initramfs):
    move ``root`` over / and chroot into it. The host's mounts stay in the namespace, out of
    reach of paths but still counted by the kernel: it lets a new proc or sysfs be mounted (by
    a user namespace inside) only where one with nothing masked is already mounted somewhere
    in the namespace. So the host's full proc and sysfs mounts are detached first, or covered
    where they cannot be (locked in a user namespace), as runc does."""
    for mountpoint in _full_kernel_fs_mounts(root):
        # No unmount reaches the host: prepare() made every mount a slave or private.
        try:
            sc.umount2(mountpoint, sc.MNT_DETACH)
        except OSError as exc:
            if exc.errno == errno.EPERM:
                sc.mount("tmpfs", mountpoint, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC)
            elif exc.errno not in (errno.EINVAL, errno.ENOENT):  # gone with a mount above it
                raise
    os.chdir(root)
    sc.mount(root, "/", None, MS_MOVE)
    os.chroot(".")
    os.chdir("/")


def _full_kernel_fs_mounts(root: str) -> list[str]:
    """Mount points of proc and sysfs mounts of their whole filesystem, outside ``root``."""
    inside = root.rstrip("/") + "/"
    return [m.mount_point for m in read_mounts()
            if m.fstype in ("proc", "sysfs") and m.root == "/" and m.mount_point != root
            and not m.mount_point.startswith(inside)]


def finish(plan: Plan, in_userns: bool) -> None:
    """After pivot_root: propagation of /, masked and read-only paths, read-only root."""
    if plan.rootfs_propagation:
        sc.mount(None, "/", None, plan.rootfs_propagation)
    for path in plan.readonly_paths:
        if not os.path.lexists(path):
            continue
        sc.mount(path, path, None, MS_BIND | MS_REC)
        locked = _current_flags(path) & _LOCKED
        sc.mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC | locked)
    for path in plan.masked_paths:
        if not os.path.lexists(path):
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            sc.mount("tmpfs", path, "tmpfs", MS_RDONLY, None)
        else:
            sc.mount("/dev/null", path, None, MS_BIND)
    for m in plan.mounts:
        if _dev_read_only_later(m):
            sc.mount(None, "/dev", None, MS_BIND | MS_REMOUNT | MS_RDONLY
                     | (_current_flags("/dev") & _LOCKED))
    if plan.readonly_root:
        locked = _current_flags("/") & _LOCKED if in_userns else 0
        sc.mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | locked)


def write_sysctls(plan: Plan) -> None:
    for key, value in plan.sysctl:
        with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
            f.write(value)
