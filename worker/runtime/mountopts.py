"""Translate fstab-style mount option strings into mount(2) flags, propagation, recursive
attributes (mount_setattr(2)) and data (pure)."""

from __future__ import annotations

from worker.runtime.records import Record

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

# option -> (clears the flag instead of setting it, flag)
_FLAGS: dict[str, tuple[bool, int]] = {
    "defaults": (False, 0),
    "ro": (False, MS_RDONLY),
    "rw": (True, MS_RDONLY),
    "suid": (True, MS_NOSUID),
    "nosuid": (False, MS_NOSUID),
    "dev": (True, MS_NODEV),
    "nodev": (False, MS_NODEV),
    "exec": (True, MS_NOEXEC),
    "noexec": (False, MS_NOEXEC),
    "sync": (False, MS_SYNCHRONOUS),
    "async": (True, MS_SYNCHRONOUS),
    "dirsync": (False, MS_DIRSYNC),
    "remount": (False, MS_REMOUNT),
    "mand": (False, MS_MANDLOCK),
    "nomand": (True, MS_MANDLOCK),
    "atime": (True, MS_NOATIME),
    "noatime": (False, MS_NOATIME),
    "diratime": (True, MS_NODIRATIME),
    "nodiratime": (False, MS_NODIRATIME),
    "bind": (False, MS_BIND),
    "rbind": (False, MS_BIND | MS_REC),
    "relatime": (False, MS_RELATIME),
    "norelatime": (True, MS_RELATIME),
    "strictatime": (False, MS_STRICTATIME),
    "nostrictatime": (True, MS_STRICTATIME),
}

PROPAGATION: dict[str, int] = {
    "private": MS_PRIVATE,
    "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}


# mount_setattr(2)'s MOUNT_ATTR_*: the atime modes are one field (_ATIME), not bits.
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80

# Recursive options (runc's words): applied to the mount and every mount below it.
# option -> (clears the attribute instead of setting it, attribute)
_RECURSIVE: dict[str, tuple[bool, int]] = {
    "rro": (False, MOUNT_ATTR_RDONLY),
    "rrw": (True, MOUNT_ATTR_RDONLY),
    "rnosuid": (False, MOUNT_ATTR_NOSUID),
    "rsuid": (True, MOUNT_ATTR_NOSUID),
    "rnodev": (False, MOUNT_ATTR_NODEV),
    "rdev": (True, MOUNT_ATTR_NODEV),
    "rnoexec": (False, MOUNT_ATTR_NOEXEC),
    "rexec": (True, MOUNT_ATTR_NOEXEC),
    "rnodiratime": (False, MOUNT_ATTR_NODIRATIME),
    "rdiratime": (True, MOUNT_ATTR_NODIRATIME),
    "rrelatime": (False, MOUNT_ATTR_RELATIME),
    "rnorelatime": (True, MOUNT_ATTR_RELATIME),
    "rnoatime": (False, MOUNT_ATTR_NOATIME),
    "ratime": (True, MOUNT_ATTR_NOATIME),
    "rstrictatime": (False, MOUNT_ATTR_STRICTATIME),
    "rnostrictatime": (True, MOUNT_ATTR_STRICTATIME),
}
_ATIME_OPTIONS = {"rrelatime", "rnorelatime", "rnoatime", "ratime", "rstrictatime",
                  "rnostrictatime"}


def known_options() -> list[str]:
    """The option words that mean a flag, a recursive attribute or a propagation change (the
    rest are fs data)."""
    return sorted([*_FLAGS, *_RECURSIVE, *PROPAGATION])


class MountOptions(Record):
    """Parsed options: flags for the first mount(2), propagation changes, fs data, and the
    attributes mount_setattr(2) sets and clears on the whole tree of the mount."""

    flags: int
    propagation: tuple[int, ...]
    data: str
    recursive_set: int = 0
    recursive_clear: int = 0

    @property
    def is_recursive(self) -> bool:
        return bool(self.recursive_set or self.recursive_clear)

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & MS_BIND)


def parse_options(options: list[str]) -> MountOptions:
    """Fold options left to right, as mount(8) does; unknown words become filesystem data."""
    flags = 0
    propagation: list[int] = []
    data: list[str] = []
    attr_set = attr_clear = 0
    for opt in options:
        if opt in _FLAGS:
            clear, flag = _FLAGS[opt]
            flags = flags & ~flag if clear else flags | flag
        elif opt in _RECURSIVE:
            clear, attr = _RECURSIVE[opt]
            if opt in _ATIME_OPTIONS:
                # One atime mode replaces another: the kernel takes a change of the mode only
                # with the whole field cleared (and "no longer noatime" means relatime).
                attr_clear |= MOUNT_ATTR__ATIME
                attr_set = (attr_set & ~MOUNT_ATTR__ATIME) | (0 if clear else attr)
            elif clear:
                attr_clear, attr_set = attr_clear | attr, attr_set & ~attr
            else:
                attr_set, attr_clear = attr_set | attr, attr_clear & ~attr
        elif opt in PROPAGATION:
            propagation.append(PROPAGATION[opt])
        else:
            data.append(opt)
    return MountOptions(flags=flags, propagation=tuple(propagation), data=",".join(data),
                        recursive_set=attr_set, recursive_clear=attr_clear)
