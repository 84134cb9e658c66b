"""The worker's image store: OCI layout on disk, imports, safe layer unpacking, the test image.

Typical use from the engine (all calls block; run them with ``asyncio.to_thread``)::

    store = ImageStore(state_dir / "images"); store.recover()
    import_image(store, Path("busybox.tar"), "busybox:latest")
    image = store.get("busybox")          # Image: id, tags, config, defaults, layers
    image.defaults.cmd                    # ('sh',)

The names below are loaded on first use, from the module that defines them: a client that only
wants the store's error codes (to show ImageNotFound by name) does not import the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol.lazyface import lazy_face

if TYPE_CHECKING:
    from worker.images.errors import BlobNotFound as BlobNotFound
    from worker.images.errors import DigestMismatch as DigestMismatch
    from worker.images.errors import ImageInUse as ImageInUse
    from worker.images.errors import ImageNotFound as ImageNotFound
    from worker.images.errors import InvalidImage as InvalidImage
    from worker.images.errors import InvalidReference as InvalidReference
    from worker.images.errors import LayerRejected as LayerRejected
    from worker.images.importer import ArchiveFormat as ArchiveFormat
    from worker.images.importer import ImportResult as ImportResult
    from worker.images.importer import detect_format as detect_format
    from worker.images.importer import import_image as import_image
    from worker.images.layers import LayerRef as LayerRef
    from worker.images.layers import LayerStore as LayerStore
    from worker.images.oci import ContainerDefaults as ContainerDefaults
    from worker.images.oci import ImageConfig as ImageConfig
    from worker.images.reference import Reference as Reference
    from worker.images.reference import parse_reference as parse_reference
    from worker.images.store import GcResult as GcResult
    from worker.images.store import Image as Image
    from worker.images.store import ImageStore as ImageStore
    from worker.images.store import PruneResult as PruneResult
    from worker.images.store import RemoveResult as RemoveResult
    from worker.images.tarsafety import LayerLimits as LayerLimits
    from worker.images.unpack import Form as Form

_NAMES: dict[str, tuple[str, ...]] = {
    "errors": ("BlobNotFound", "DigestMismatch", "ImageInUse", "ImageNotFound", "InvalidImage",
               "InvalidReference", "LayerRejected"),
    "importer": ("ArchiveFormat", "ImportResult", "detect_format", "import_image"),
    "layers": ("LayerRef", "LayerStore"),
    "oci": ("ContainerDefaults", "ImageConfig"),
    "reference": ("Reference", "parse_reference"),
    "store": ("GcResult", "Image", "ImageStore", "PruneResult", "RemoveResult"),
    "tarsafety": ("LayerLimits",),
    "unpack": ("Form",),
}
_WHERE = {name: module for module, names in _NAMES.items() for name in names}

__getattr__, __dir__, __all__ = lazy_face(__name__, _WHERE)
