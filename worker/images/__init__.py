"""The worker's image store: OCI layout on disk, imports, safe layer unpacking, the test image.

Typical use from the engine (all calls block; run them with ``asyncio.to_thread``)::

    store = ImageStore(state_dir / "images"); store.recover()
    import_image(store, Path("busybox.tar"), "busybox:latest")
    image = store.get("busybox")          # Image: id, tags, config, defaults, layers
    image.defaults.cmd                    # ('sh',)
"""

from worker.images.errors import (
    BlobNotFound,
    DigestMismatch,
    ImageInUse,
    ImageNotFound,
    InvalidImage,
    InvalidReference,
    LayerRejected,
)
from worker.images.importer import ArchiveFormat, ImportResult, detect_format, import_image
from worker.images.layers import LayerRef, LayerStore
from worker.images.oci import ContainerDefaults, ImageConfig
from worker.images.reference import Reference, parse_reference
from worker.images.store import GcResult, Image, ImageStore, RemoveResult
from worker.images.tarsafety import LayerLimits
from worker.images.unpack import Form

__all__ = [
    "ArchiveFormat",
    "BlobNotFound",
    "ContainerDefaults",
    "DigestMismatch",
    "Form",
    "GcResult",
    "Image",
    "ImageConfig",
    "ImageInUse",
    "ImageNotFound",
    "ImageStore",
    "ImportResult",
    "InvalidImage",
    "InvalidReference",
    "LayerLimits",
    "LayerRef",
    "LayerRejected",
    "LayerStore",
    "Reference",
    "RemoveResult",
    "detect_format",
    "import_image",
    "parse_reference",
]
