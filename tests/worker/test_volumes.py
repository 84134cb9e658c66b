"""The worker's volume store and copy-up, and the CLI's strict mount flags (no root)."""

from __future__ import annotations

import os
from pathlib import Path

import click
import pytest

from cli.mounts import parse_mount, parse_tmpfs, parse_volume
from protocol.errors import Conflict, InvalidArgument, NotFound
from protocol.specs import Mount, VolumeSpec
from worker.volumes import VolumeStore, copy_up, image_path


def test_create_is_idempotent_listed_inspected_and_removed(tmp_path: Path) -> None:
    store = VolumeStore(tmp_path / "volumes", "node1")
    info, made = store.create(VolumeSpec(name="data", labels={"k": "v"}))
    assert made and info.node_id == "node1" and info.mountpoint.endswith("data/_data")
    again, made = store.create(VolumeSpec(name="data"))
    assert not made and again.spec.labels == {"k": "v"}
    assert [v.spec.name for v in store.list()] == ["data"]
    (store.data("data") / "file").write_text("x")
    assert store.size("data") == 1
    store.remove("data")
    assert store.list() == []
    with pytest.raises(NotFound, match="no such volume: data"):
        store.inspect("data")


@pytest.mark.parametrize(("spec", "fragment"), [
    (VolumeSpec(name="-bad"), "invalid volume name"),
    (VolumeSpec(name="a/b"), "invalid volume name"),
    (VolumeSpec(name="v", options={"size": "1m"}), "invalid option(s)"),
    (VolumeSpec(name="v", options={"device": "/x"}), "needs type="),
    (VolumeSpec(name="v", options={"type": "ext4"}), "type=ext4 needs device="),
])
def test_bad_specs_are_refused(tmp_path: Path, spec: VolumeSpec, fragment: str) -> None:
    with pytest.raises(InvalidArgument, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        VolumeStore(tmp_path).create(spec)


def test_other_options_for_an_existing_name_conflict(tmp_path: Path) -> None:
    store = VolumeStore(tmp_path)
    store.create(VolumeSpec(name="t", options={"type": "tmpfs"}))
    with pytest.raises(Conflict, match="already exists with other options"):
        store.create(VolumeSpec(name="t", options={"type": "tmpfs", "o": "size=1m"}))


def test_fill_once_only_into_an_empty_volume(tmp_path: Path) -> None:
    store = VolumeStore(tmp_path)
    store.create(VolumeSpec(name="v"))
    assert store.needs_fill("v")
    store.mark_filled("v")
    assert not store.needs_fill("v")
    store.create(VolumeSpec(name="w"))
    (store.data("w") / "x").write_text("")
    assert not store.needs_fill("w")


def test_copy_up_keeps_modes_and_links_and_never_follows_them(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "srv" / "sub").mkdir(parents=True)
    (rootfs / "srv").chmod(0o750)
    (rootfs / "srv" / "sub" / "f").write_text("hi")
    (rootfs / "srv" / "sub" / "f").chmod(0o640)
    (rootfs / "srv" / "link").symlink_to("/etc/passwd")
    os.mkfifo(rootfs / "srv" / "fifo")
    (rootfs / "escape").symlink_to("/etc")
    assert image_path(rootfs, "/escape") is None  # a link is never followed out
    assert image_path(rootfs, "/missing/dir") is None
    source = image_path(rootfs, "/srv")
    assert source is not None
    target = tmp_path / "data"
    target.mkdir()
    copy_up(source, target)
    assert (target / "sub" / "f").read_text() == "hi"
    assert (target / "sub" / "f").stat().st_mode & 0o777 == 0o640
    assert target.stat().st_mode & 0o777 == 0o750
    assert os.readlink(target / "link") == "/etc/passwd"
    assert not (target / "fifo").exists()  # special files are not copied


@pytest.mark.parametrize(("text", "mount"), [
    ("/h:/c", Mount(type="bind", source="/h", target="/c")),
    ("/h:/c:ro", Mount(type="bind", source="/h", target="/c", read_only=True)),
    ("data:/c", Mount(type="volume", source="data", target="/c")),
    ("data:/c:rw", Mount(type="volume", source="data", target="/c")),
])
def test_dash_v(text: str, mount: Mount) -> None:
    assert parse_volume(text) == mount


@pytest.mark.parametrize(("text", "mount"), [
    ("type=volume,src=d,dst=/c,readonly", Mount(type="volume", source="d", target="/c",
                                                read_only=True)),
    ("source=d,target=/c,volume-nocopy", Mount(type="volume", source="d", target="/c",
                                               no_copy=True)),
    ("type=bind,source=/h,target=/c,ro=true", Mount(type="bind", source="/h", target="/c",
                                                    read_only=True)),
    ("type=tmpfs,destination=/t,tmpfs-size=1m,tmpfs-mode=700",
     Mount(type="tmpfs", target="/t", tmpfs_size=1 << 20, tmpfs_mode=0o700)),
])
def test_dash_dash_mount(text: str, mount: Mount) -> None:
    assert parse_mount(text) == mount


@pytest.mark.parametrize(("parse", "text", "fragment"), [
    (parse_volume, "rel/path:/c", "is not a volume name"),
    (parse_volume, "d:c", "must be absolute"),
    (parse_volume, "d:/c:rx", "expected SOURCE"),
    (parse_mount, "type=volume,target=/c", "a volume needs a source"),
    (parse_mount, "type=nfs,target=/c", "type 'nfs' is not"),
    (parse_mount, "type=tmpfs,source=x,target=/c", "source not allowed for type=tmpfs"),
    (parse_mount, "type=bind,source=/h,target=/c,volume-nocopy",
     "volume-nocopy not allowed for type=bind"),
    (parse_mount, "type=volume,source=d,target=/c,readonly=maybe", "expected true or false"),
    (parse_mount, "type=volume,source=d,source=e,target=/c", "source given twice"),
    (parse_mount, "type=volume,source=d,target=/c,volume-driver=nfs", "only the local"),
    (parse_mount, "type=bind,source=/h,target=/c,bind-propagation=shared", "rprivate"),
    (parse_tmpfs, "/t:size=big", "not a size"),
    (parse_tmpfs, "/t:mode=999", "not an octal mode"),
    (parse_tmpfs, "/t:uid=0", "unknown tmpfs option"),
    (parse_tmpfs, "t", "must be absolute"),
])
def test_bad_mount_flags_are_refused(parse: object, text: str, fragment: str) -> None:
    assert callable(parse)
    with pytest.raises(click.BadParameter, match=fragment):
        parse(text)
