"""Container root filesystems from images: the overlay driver, the copy driver, and the
automatic choice between them.

From the engine (blocking calls; run them with ``asyncio.to_thread``)::

    driver, why = choose_driver(state_dir / "storage", store)
    driver.recover()                              # after a crash: drop half-made rootfs dirs
    info = driver.prepare(container_id, image)    # RootfsInfo(path, driver, details)
    ...                                           # bundle "root.path" = info.path
    driver.remove(container_id)
"""

from worker.storage.base import RootfsInfo, StorageDriver, check_container_id
from worker.storage.copy import CopyDriver
from worker.storage.errors import (
    InvalidContainerId,
    MountFailed,
    RootfsConflict,
    RootfsNotFound,
    StorageFailure,
    StorageUnavailable,
)
from worker.storage.overlay import OverlayDriver
from worker.storage.select import Probe, choose_driver, probe_overlay

__all__ = [
    "CopyDriver",
    "InvalidContainerId",
    "MountFailed",
    "OverlayDriver",
    "Probe",
    "RootfsConflict",
    "RootfsInfo",
    "RootfsNotFound",
    "StorageDriver",
    "StorageFailure",
    "StorageUnavailable",
    "check_container_id",
    "choose_driver",
    "probe_overlay",
]
