"""The overlay and copy drivers on real mounts: contents, isolation, idempotence, removal,
crash leftovers, and the automatic choice (including overlay nested on overlay)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers.image_layers import E, layout_from_tars, make_tar, snapshot
from worker.images import testimage
from worker.images.importer import import_image
from worker.images.store import Image, ImageStore
from worker.images.unpack import Form
from worker.storage import mounts
from worker.storage.base import StorageDriver
from worker.storage.copy import CopyDriver
from worker.storage.errors import (
    InvalidContainerId,
    RootfsConflict,
    RootfsNotFound,
    StorageUnavailable,
)
from worker.storage.overlay import OverlayDriver
from worker.storage.select import choose_driver, probe_overlay

pytestmark = pytest.mark.root


@pytest.fixture(params=["overlay", "copy"])
def driver(request: pytest.FixtureRequest, state: Path, images: ImageStore) -> StorageDriver:
    if request.param == "overlay":
        request.getfixturevalue("overlay_ok")
        return OverlayDriver(state / "overlay", images)
    return CopyDriver(state / "copy", images)


def run_in(rootfs: Path, script: str) -> str:
    """Run busybox sh chrooted into ``rootfs``: proof the tree is a usable root."""
    return subprocess.run(["chroot", str(rootfs), "/bin/sh", "-c", script], capture_output=True,
                          text=True, check=True, timeout=30).stdout


def test_prepare_gives_a_working_rootfs(driver: StorageDriver, busybox: Image) -> None:
    info = driver.prepare("c1", busybox)
    assert info.driver == driver.name
    assert run_in(info.path, "cat /etc/motd; ls /var/cache; echo $(ls /etc)") == (
        f"{testimage.MOTD}fresh\ngroup motd passwd\n")
    assert (driver.name == "overlay") == mounts.is_mounted(info.path)
    for key, value in info.details.items():
        if key.endswith("Dir"):
            assert all(Path(p).is_dir() for p in value.split(":")), key
    assert driver.containers() == ["c1"]
    assert driver.get("c1") == info


def test_containers_are_isolated_and_layers_untouched(driver: StorageDriver, busybox: Image,
                                                      images: ImageStore) -> None:
    a = driver.prepare("a", busybox)
    b = driver.prepare("b", busybox)
    run_in(a.path, "echo mine > /etc/motd; rm /bin/ls; mkdir /data")
    assert (b.path / "etc" / "motd").read_text() == testimage.MOTD
    assert (b.path / "bin" / "ls").is_symlink()
    if driver.name == "overlay":
        upper = Path(a.details["UpperDir"])
        assert (upper / "etc" / "motd").read_text() == "mine\n"
        assert (upper / "data").is_dir()
    for layer_dir in images.root.joinpath("layers").rglob("motd"):
        assert layer_dir.read_text() == testimage.MOTD


def test_prepare_is_idempotent_and_survives_remount(driver: StorageDriver,
                                                    busybox: Image) -> None:
    info = driver.prepare("c", busybox)
    (info.path / "kept").write_text("x")
    assert driver.prepare("c", busybox) == info
    assert mounts.mount_points().count(str(info.path)) == (1 if driver.name == "overlay" else 0)
    driver.unmount("c")
    driver.unmount("c")
    assert not mounts.is_mounted(info.path)
    assert driver.mount("c") == info
    assert (info.path / "kept").read_text() == "x"


def test_remove_is_idempotent_and_leaves_nothing(driver: StorageDriver, busybox: Image) -> None:
    info = driver.prepare("c", busybox)
    driver.remove("c")
    driver.remove("c")
    driver.remove("never-existed")
    assert not mounts.mounts_under(driver.root)
    assert not info.path.exists()
    assert [n for n in os.listdir(driver.root) if n != ".empty"] == []
    assert driver.get("c") is None
    with pytest.raises(RootfsNotFound):
        driver.mount("c")


def test_conflicts_and_bad_ids(driver: StorageDriver, busybox: Image, images: ImageStore,
                               tmp_path: Path) -> None:
    driver.prepare("c", busybox)
    path = tmp_path / "other.tar"
    path.write_bytes(make_tar([E("x", data=b"x")]))
    other = import_image(images, path, "other").images[0]
    with pytest.raises(RootfsConflict):
        driver.prepare("c", other)
    for bad in ("", "../x", "a/b", ".hidden", "x" * 200):
        with pytest.raises(InvalidContainerId):
            driver.prepare(bad, busybox)


def test_crash_leftovers_are_cleaned_and_do_not_block(driver: StorageDriver, busybox: Image,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # A create that dies before its commit (the rename) leaves nothing under the real name.
    def crash(*_: object) -> None:
        raise OSError("simulated crash")

    monkeypatch.setattr(os, "rename", crash)
    with pytest.raises(OSError, match="simulated"):
        driver.prepare("c", busybox)
    monkeypatch.undo()
    assert driver.get("c") is None
    # Leftovers as a killed process would leave them: a temp dir (even mounted), a half-deleted
    # dir, a container dir without its record.
    tmp = driver.root / ".tmp-c-123"
    for sub in ("upper", "work", "merged", "l"):
        (tmp / sub).mkdir(parents=True)
    if driver.name == "overlay":
        mounts.mount_overlay([tmp / "l"], tmp / "upper", tmp / "work", tmp / "merged")
    (driver.root / ".gone-d-1" / "x").mkdir(parents=True)
    (driver.root / "half").mkdir()
    assert sorted(driver.recover()) == [".gone-d-1", ".tmp-c-123", "half"]
    assert not mounts.mounts_under(driver.root)
    info = driver.prepare("c", busybox)
    assert (info.path / "bin" / "busybox").is_file()


TRICKY = [
    [E("l", "symlink", link="/etc"), E("r", "symlink", link="../../../.."), E("d", "dir"),
     E("d/old", data=b"o"), E("o", "dir"), E("o/old", data=b"o"), E("w", "dir"),
     E("w/old", data=b"o"), E("f", data=b"file"), E("keep", data=b"k")],
    # Writes "through" lower symlinks, whiteouts then re-creations, an opaque dir, and a file
    # replacing a directory.
    [E("l/pwned", data=b"x"), E("r/deep/pwned", data=b"x"), E(".wh.d"), E("d/new", data=b"n"),
     E("o", "dir"), E("o/.wh..wh..opq"), E("o/new", data=b"n"), E(".wh.w"), E("w", "dir"),
     E("w/new", data=b"n"), E("f", "dir"), E("f/inner", data=b"i"), E("gone-never-was"),
     E(".wh.keep"), E("keep", data=b"k2")],
    [E("o/.wh.new"), E("w", "symlink", link="/")],
]
TRICKY_TREE = {
    "l": "dir", "l/pwned": "file:b'x'", "r": "dir", "r/deep": "dir", "r/deep/pwned": "file:b'x'",
    "d": "dir", "d/new": "file:b'n'", "o": "dir", "w": "link:/", "f": "dir",
    "f/inner": "file:b'i'", "gone-never-was": "file:b''", "keep": "file:b'k2'",
}


def test_both_drivers_build_the_same_tree(state: Path, images: ImageStore, busybox: Image,
                                          overlay_ok: None) -> None:
    layout = layout_from_tars(state / "tricky", [make_tar(t) for t in TRICKY], "tricky:1")
    tricky = import_image(images, layout).images[0]
    overlay = OverlayDriver(state / "overlay", images)
    copy = CopyDriver(state / "copy", images)
    for image in (busybox, tricky):
        trees = [snapshot(d.prepare(f"c-{image.short_id}", image).path) for d in (overlay, copy)]
        assert trees[0] == trees[1]
    assert snapshot(copy.get(f"c-{tricky.short_id}").path) == TRICKY_TREE  # type: ignore[union-attr]
    # Removing the image keeps the layers the overlay containers still stack.
    images.remove("tricky:1")
    images.gc()
    assert all(images.layer_store(Form.OVERLAY).has(c) for c in tricky.chain_ids)
    overlay.unmount(f"c-{tricky.short_id}")
    assert overlay.mount(f"c-{tricky.short_id}").path.joinpath("d", "new").read_bytes() == b"n"


def test_automatic_choice_here(state: Path, images: ImageStore, overlay_ok: None) -> None:
    driver, why = choose_driver(state / "storage", images)
    assert driver.name == "overlay"
    assert "overlay mounts work" in why
    forced, why = choose_driver(state / "storage", images, force="copy")
    assert forced.name == "copy" and "forced" in why
    with pytest.raises(StorageUnavailable):
        choose_driver(state / "storage", images, force="zfs")


def test_nested_overlay_falls_back_to_copy(state: Path, overlay_ok: None) -> None:
    # State directory inside an overlay mount, as in a container whose / is overlayfs.
    outer = state / "outer"
    for sub in ("l", "u", "w", "m"):
        (outer / sub).mkdir(parents=True)
    mounts.mount_overlay([outer / "l"], outer / "u", outer / "w", outer / "m")
    nested = outer / "m" / "state"
    probe = probe_overlay(nested)
    if probe.ok:  # some kernels allow it; then the choice must be overlay
        driver, _ = choose_driver(nested, ImageStore(nested / "images"))
        assert driver.name == "overlay"
        return
    assert "overlay" in probe.reason
    images = ImageStore(nested / "images")
    driver, why = choose_driver(nested / "storage", images)
    assert driver.name == "copy"
    assert why.startswith("copy driver: ")
    with pytest.raises(StorageUnavailable, match="overlay driver forced but unusable"):
        choose_driver(nested / "storage", images, force="overlay")
    info = driver.prepare("c", testimage.import_test_image(images))
    assert run_in(info.path, "cat /etc/motd") == testimage.MOTD
    driver.remove("c")
