"""The copy driver: each container gets a full copy of its image's layers (whiteouts already
carried out), for hosts or filesystems where overlayfs cannot be mounted. Slower to create
and heavier on disk, but it needs no mount at all: mount/unmount only report the path."""

from __future__ import annotations

from pathlib import Path

from worker.images.store import Image, ImageStore
from worker.images.treecopy import copy_tree
from worker.images.unpack import Form
from worker.storage.base import DirectoryBook, RootfsInfo, RootfsRecord

NAME = "copy"


class CopyDriver:
    name = NAME

    def __init__(self, root: Path, images: ImageStore) -> None:
        self.root = root
        self.images = images
        self.layers = images.layer_store(Form.APPLIED)
        self.book = DirectoryBook(root, NAME)

    def prepare(self, container_id: str, image: Image) -> RootfsInfo:
        with self.book.lock:
            if self.book.existing(container_id, image) is None:
                snapshot = self.layers.ensure(image.layers)

                def build(tmp: Path) -> None:
                    rootfs = tmp / "rootfs"
                    if snapshot:
                        copy_tree(str(snapshot[-1]), str(rootfs))
                    else:
                        rootfs.mkdir(mode=0o755)

                self.book.create(container_id, image, build)
            return self.mount(container_id)

    def _info(self, rec: RootfsRecord) -> RootfsInfo:
        rootfs = self.book.dir(rec.container_id) / "rootfs"
        return RootfsInfo(rootfs, NAME, {"RootDir": str(rootfs), "ImageId": rec.image_id})

    def mount(self, container_id: str) -> RootfsInfo:
        return self._info(self.book.need(container_id))

    def unmount(self, container_id: str) -> None:
        self.book.dir(container_id)  # nothing is mounted; only the id is checked

    def remove(self, container_id: str) -> None:
        with self.book.lock:
            self.book.delete(container_id)

    def get(self, container_id: str) -> RootfsInfo | None:
        rec = self.book.record(container_id)
        return self._info(rec) if rec is not None else None

    def containers(self) -> list[str]:
        return self.book.containers()

    def chains_in_use(self) -> set[str]:
        return set()  # each container has its own copy

    def recover(self) -> list[str]:
        with self.book.lock:
            return self.book.recover()
