"""Recursive mount options (rro and the rest, through mount_setattr(2)) and run --no-pivot
(MS_MOVE and chroot), as runc v1.1.5's mounts_recursive.bats and no_pivot.bats expect them,
on real containers through the runtime's command line."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.runtime_harness import Bundle, cli
from worker.runtime import syscalls as sc
from worker.runtime.mountopts import (
    MOUNT_ATTR__ATIME,
    MOUNT_ATTR_NOATIME,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_RDONLY,
    MOUNT_ATTR_STRICTATIME,
    MS_BIND,
    MS_RDONLY,
    MS_REC,
    parse_options,
)


@pytest.mark.parametrize(("options", "flags", "attr_set", "attr_clear"), [
    (["rbind", "rro"], MS_BIND | MS_REC, MOUNT_ATTR_RDONLY, 0),
    (["rbind", "ro", "rro"], MS_BIND | MS_REC | MS_RDONLY, MOUNT_ATTR_RDONLY, 0),
    (["rro", "rrw"], 0, 0, MOUNT_ATTR_RDONLY),  # the last word wins, as for ro/rw
    (["rnosuid", "rro"], 0, MOUNT_ATTR_NOSUID | MOUNT_ATTR_RDONLY, 0),
    (["rnoatime"], 0, MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME),  # one atime mode for another
    (["rnoatime", "rstrictatime"], 0, MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME),
    (["ratime"], 0, 0, MOUNT_ATTR__ATIME),  # relatime, the kernel's default mode
])
def test_recursive_options(options: list[str], flags: int, attr_set: int,
                           attr_clear: int) -> None:
    parsed = parse_options(options)
    assert (parsed.flags, parsed.recursive_set, parsed.recursive_clear, parsed.data) == (
        flags, attr_set, attr_clear, "")


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs with another tmpfs mounted inside it (subvol), as mounts_recursive.bats has."""
    top = tmp_path / "volume"
    top.mkdir()
    sc.mount("tmpfs", str(top), "tmpfs", 0)
    try:
        (top / "foo").write_text("foo")
        (top / "subvol").mkdir()
        sc.mount("tmpfs", str(top / "subvol"), "tmpfs", 0)
        (top / "subvol" / "bar").write_text("bar")
        yield top
    finally:
        subprocess.run(["umount", "-R", str(top)], check=True)


@pytest.mark.root
@pytest.mark.parametrize(("options", "sub_writable"), [
    (["rbind", "ro"], True),  # ro: the top mount only
    (["rbind", "rro"], False),
    (["rbind", "ro", "rro"], False),
])
def test_rro_makes_every_mount_below_read_only(make_bundle: Callable[..., Bundle],
                                               state_root: Path, volume: Path,
                                               options: list[str], sub_writable: bool) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["mounts"].append({"source": str(volume), "destination": "/mnt",
                              "options": options})

    script = "for f in /mnt/foo /mnt/subvol/bar; do touch $f 2>&1 || true; echo $f done; done"
    done = cli(state_root, "run", "-b", str(make_bundle(["sh", "-c", script], edit).path),
               "rro1")
    lines = done.stdout.splitlines()
    assert "Read-only file system" in lines[0] and lines[1] == "/mnt/foo done", lines
    assert lines[2:] == (["/mnt/subvol/bar done"] if sub_writable else
                         [lines[2], "/mnt/subvol/bar done"]), lines
    if not sub_writable:
        assert "Read-only file system" in lines[2]
    # The host's volume stays as it was: writable, both mounts.
    (volume / "subvol" / "bar").write_text("still writable")
    (volume / "foo").write_text("still writable")


def _unshare_and_mount_proc(cfg: dict[str, Any]) -> None:
    """A user namespace inside mounting a new proc: the kernel allows it only if a proc with
    nothing masked is mounted in the mount namespace (runc's no_pivot.bats)."""
    cfg["process"]["args"] = ["unshare", "-mrpf", "sh", "-c",
                              "mount -t proc none /proc && echo mounted"]
    caps = cfg["process"]["capabilities"]
    for kind in ("bounding", "permitted", "effective"):
        caps[kind] = [*caps[kind], "CAP_SETFCAP", "CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID"]
    cfg["process"]["noNewPrivileges"] = False


@pytest.mark.root
@pytest.mark.parametrize("no_pivot", [False, True])
def test_no_pivot_leaves_no_bare_proc_behind(make_bundle: Callable[..., Bundle],
                                             state_root: Path, no_pivot: bool) -> None:
    bundle = make_bundle([], _unshare_and_mount_proc)
    done = cli(state_root, "run", *(["--no-pivot"] if no_pivot else []), "-b",
               str(bundle.path), "np1", check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "mount: permission denied" in done.stdout + done.stderr


@pytest.mark.root
def test_no_pivot_container_has_its_root_and_exec_enters_it(make_bundle: Callable[..., Bundle],
                                                            state_root: Path) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["process"]["args"] = ["sleep", "1000"]

    bundle = make_bundle([], edit)
    (bundle.path / "rootfs" / "marker").write_text("the bundle's root\n")
    cli(state_root, "run", "--no-pivot", "-d", "-b", str(bundle.path), "np2")
    try:
        assert cli(state_root, "exec", "np2", "cat", "/marker").stdout == "the bundle's root\n"
        assert cli(state_root, "exec", "np2", "hostname").stdout == "shoaltest\n"
    finally:
        cli(state_root, "delete", "-f", "np2")
