"""This process's mount table, from /proc/self/mountinfo: one entry per mount, paths unescaped."""

from __future__ import annotations

from worker.runtime.records import Record


class MountEntry(Record):
    root: str  # the directory of its filesystem mounted here: "/" for the whole filesystem
    mount_point: str
    fstype: str
    source: str
    super_options: str


def unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (``\\040``)."""
    out, i = [], 0
    while i < len(field):
        code = field[i + 1:i + 4]
        if field[i] == "\\" and len(code) == 3 and all(c in "01234567" for c in code):
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def read_mounts(path: str = "/proc/self/mountinfo") -> list[MountEntry]:
    """The mounts in mount order."""
    entries = []
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            left, sep, right = line.rstrip("\n").partition(" - ")
            fields, after = left.split(" "), right.split(" ")
            if not sep or len(fields) < 5 or len(after) < 3:
                continue
            entries.append(MountEntry(root=unescape(fields[3]), mount_point=unescape(fields[4]),
                                      fstype=after[0], source=unescape(after[1]),
                                      super_options=after[2]))
    return entries
