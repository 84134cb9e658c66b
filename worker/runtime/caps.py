"""Linux capability names and numbers, and the bit masks the kernel's capset wants (pure)."""

from __future__ import annotations

TYPE_CHECKING = False  # collections.abc imports collections: milliseconds of a command
if TYPE_CHECKING:
    from collections.abc import Iterable

# Numbers from include/uapi/linux/capability.h; the table is the kernel ABI, not an invention.
CAPABILITIES: dict[str, int] = {
    name: number for number, name in enumerate([
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
        "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
        "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
        "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
        "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
        "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
        "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
        "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
    ])
}


def last_cap() -> int:
    """The highest capability number the running kernel knows."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return max(CAPABILITIES.values())


def cap_number(name: str) -> int | None:
    """The number of a capability name (with or without the CAP_ prefix), None if unknown."""
    upper = name.upper()
    if not upper.startswith("CAP_"):
        upper = "CAP_" + upper
    return CAPABILITIES.get(upper)


def mask(numbers: Iterable[int]) -> int:
    """A 64-bit capability mask with the given bits set."""
    value = 0
    for n in numbers:
        value |= 1 << n
    return value
