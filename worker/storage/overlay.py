"""The overlay driver: image layers (unpacked once per chain) as lowerdirs, a per-container
``upper`` and ``work``, mounted as overlayfs on ``merged``, the container's rootfs."""

from __future__ import annotations

from pathlib import Path

from worker.images.store import Image, ImageStore
from worker.images.unpack import Form
from worker.storage import mounts
from worker.storage.base import DirectoryBook, RootfsInfo, RootfsRecord
from worker.storage.errors import StorageFailure

NAME = "overlay"


class OverlayDriver:
    name = NAME

    def __init__(self, root: Path, images: ImageStore) -> None:
        self.root = root
        self.images = images
        self.layers = images.layer_store(Form.OVERLAY)
        self.book = DirectoryBook(root, NAME)
        # overlayfs needs a lowerdir; an image without layers gets this empty one.
        self.empty = root / ".empty"
        self.empty.mkdir(exist_ok=True)
        images.chain_guards.append(self.chains_in_use)

    def prepare(self, container_id: str, image: Image) -> RootfsInfo:
        with self.book.lock:
            if self.book.existing(container_id, image) is None:
                self.layers.ensure(image.layers)

                def build(tmp: Path) -> None:
                    for sub in ("upper", "work", "merged"):
                        (tmp / sub).mkdir()
                    (tmp / "upper").chmod(0o755)  # the rootfs's own mode, as "/" is seen
                    (tmp / "merged").chmod(0o755)

                self.book.create(container_id, image, build)
            return self.mount(container_id)

    def _lowers(self, rec: RootfsRecord) -> list[Path]:
        lowers = [self.layers.path(chain) for chain in reversed(rec.chain_ids)]
        for path in lowers:
            if not path.is_dir():
                raise StorageFailure(f"container {rec.container_id}: unpacked layer {path} is "
                                     "gone (removed while in use?)",
                                     details={"container_id": rec.container_id})
        return lowers or [self.empty]

    def _info(self, rec: RootfsRecord) -> RootfsInfo:
        d = self.book.dir(rec.container_id)
        lowers = [self.layers.path(chain) for chain in reversed(rec.chain_ids)] or [self.empty]
        return RootfsInfo(d / "merged", NAME, {
            "LowerDir": ":".join(map(str, lowers)), "UpperDir": str(d / "upper"),
            "WorkDir": str(d / "work"), "MergedDir": str(d / "merged"),
            "ImageId": rec.image_id})

    def mount(self, container_id: str) -> RootfsInfo:
        with self.book.lock:
            rec = self.book.need(container_id)
            d = self.book.dir(container_id)
            if not mounts.is_mounted(d / "merged"):
                mounts.mount_overlay(self._lowers(rec), d / "upper", d / "work", d / "merged")
            return self._info(rec)

    def unmount(self, container_id: str) -> None:
        with self.book.lock:
            mounts.unmount(self.book.dir(container_id) / "merged")

    def remove(self, container_id: str) -> None:
        with self.book.lock:
            self.unmount(container_id)
            self.book.delete(container_id)

    def get(self, container_id: str) -> RootfsInfo | None:
        rec = self.book.record(container_id)
        return self._info(rec) if rec is not None else None

    def containers(self) -> list[str]:
        return self.book.containers()

    def chains_in_use(self) -> set[str]:
        return {chain for rec in self.book.records() for chain in rec.chain_ids}

    def recover(self) -> list[str]:
        with self.book.lock:
            return self.book.recover()
