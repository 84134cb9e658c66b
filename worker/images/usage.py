"""What an image store takes on disk, as ``docker system df`` counts it: each image's stored
bytes, those it shares with another image, how many containers use it; the bytes of every layer
once; the build cache's records."""

from __future__ import annotations

from collections import Counter

from protocol.messages import BuildCacheUsage, ImageUsage
from worker.image_service import created_timestamp
from worker.images.store import ImageStore


def image_usage(store: ImageStore, users: Counter[str]) -> tuple[list[ImageUsage], int]:
    """The images' rows and their layers' bytes, each layer once."""
    images = store.images()
    holders: Counter[str] = Counter(d.digest for i in images for d in i.manifest.layers)
    rows = []
    for image in images:
        shared = sum(d.size for d in image.manifest.layers if holders[d.digest] > 1)
        rows.append(ImageUsage(id=image.id, tags=list(image.tags[:64]),
                               created=created_timestamp(image.config.created),
                               size=image.size, shared=shared, containers=users[image.id]))
    layers = {d.digest: d.size for i in images for d in i.manifest.layers}
    return rows, sum(layers.values())


def build_cache_usage(store: ImageStore) -> list[BuildCacheUsage]:
    return [BuildCacheUsage(id=key, description=record.created_by[:4096],
                            size=record.layer.size if record.layer is not None else 0,
                            created=created_timestamp(record.created))
            for key, record in store.build_cache.items()]
