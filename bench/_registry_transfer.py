"""Pull and push throughput of shoal's registry client beside skopeo's, against one local
registry (Debian's docker-registry on loopback, plain http) started here.

Each round builds a new image of random (incompressible) gzipped layers, so no blob of it is
known to the registry, to shoal's store or to skopeo's blob-info cache (which would let skopeo
mount instead of upload). Push: shoal's ``Pusher`` from its store to ``bench/shoal-N``, then
``skopeo copy oci:LAYOUT docker://…/bench/skopeo-N``. Pull: shoal's ``Puller`` into a fresh
store (layers scanned as for an import, as every pull does), then ``skopeo copy docker://…
oci:DIR`` of the same image into a fresh directory. Both orders alternate across rounds.
"""

from __future__ import annotations

import gzip
import io
import os
import resource
import shutil
import statistics
import subprocess
import tarfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvloop

from bench._registry_server import registry
from worker.images import Image, ImageStore, import_image
from worker.images.digest import digest_bytes
from worker.images.oci import (
    ANNOTATION_REF_NAME,
    MT_OCI_CONFIG,
    MT_OCI_LAYER_GZIP,
    MT_OCI_MANIFEST,
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    RootFS,
    encode,
)
from worker.images.registry import Puller, Pusher, RegistryAccess, RemoteName, remote_name

ACCESS = RegistryAccess(insecure=True, certs_dirs=())


@dataclass(frozen=True)
class TransferFigures:
    image_mb: float
    pull_mb_per_s: float
    skopeo_pull_mb_per_s: float
    push_mb_per_s: float
    skopeo_push_mb_per_s: float
    # CPU seconds (user + sys) per transfer, medians: shoal's process (every thread), and
    # skopeo's (its rusage as our child); the registry's own CPU is in neither.
    pull_cpu_s: float
    skopeo_pull_cpu_s: float
    push_cpu_s: float
    skopeo_push_cpu_s: float


@dataclass(frozen=True)
class _Run:
    wall: float
    cpu: float


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def build_layout(dest: Path, layers: int, layer_mb: int) -> tuple[Path, int]:
    """An OCI layout of one image with ``layers`` gzipped layers of random bytes; (layout,
    total bytes of its blobs)."""
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    descriptors, diff_ids = [], []
    for number in range(layers):
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            data = os.urandom(layer_mb << 20)
            info = tarfile.TarInfo(f"data/{number}.bin")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        tar_bytes = raw.getvalue()
        layer = gzip.compress(tar_bytes, compresslevel=1, mtime=0)
        (blobs / digest_bytes(layer)[7:]).write_bytes(layer)
        descriptors.append(Descriptor(MT_OCI_LAYER_GZIP, digest_bytes(layer), len(layer)))
        diff_ids.append(digest_bytes(tar_bytes))
    config = encode(ImageConfig(architecture="amd64", os="linux",
                                rootfs=RootFS("layers", diff_ids)))
    (blobs / digest_bytes(config)[7:]).write_bytes(config)
    manifest = encode(Manifest(schema_version=2, media_type=MT_OCI_MANIFEST,
                               config=Descriptor(MT_OCI_CONFIG, digest_bytes(config),
                                                 len(config)),
                               layers=descriptors))
    (blobs / digest_bytes(manifest)[7:]).write_bytes(manifest)
    (dest / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    entry = Descriptor(MT_OCI_MANIFEST, digest_bytes(manifest), len(manifest),
                       annotations={ANNOTATION_REF_NAME: "1"})
    (dest / "index.json").write_bytes(encode(Index(schema_version=2, manifests=[entry])))
    return dest, len(config) + sum(d.size for d in descriptors)


def _skopeo(*args: str) -> _Run:
    cpu = _cpu(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(["skopeo", *args], check=True, capture_output=True, timeout=600)
    return _Run(time.perf_counter() - start, _cpu(resource.RUSAGE_CHILDREN) - cpu)


def _timed(transfer: Callable[[], Coroutine[Any, Any, object]]) -> _Run:
    """Wall and CPU time of one transfer on its own uvloop (as a worker runs it)."""
    cpu = _cpu(resource.RUSAGE_SELF)
    start = time.perf_counter()
    uvloop.run(transfer())
    return _Run(time.perf_counter() - start, _cpu(resource.RUSAGE_SELF) - cpu)


def measure(work: Path, *, rounds: int, layers: int, layer_mb: int) -> TransferFigures:
    pull_s: list[_Run] = []
    skopeo_pull_s: list[_Run] = []
    push_s: list[_Run] = []
    skopeo_push_s: list[_Run] = []
    size = 0
    with registry(work / "registry") as running:
        for round_number in range(rounds):
            here = work / f"round-{round_number}"
            layout, size = build_layout(here / "layout", layers, layer_mb)
            source = ImageStore(here / "source")
            image = import_image(source, layout, "bench:1").images[0]
            shoal_ref = remote_name(f"{running.address}/bench/shoal-{round_number}:1")
            skopeo_ref = f"docker://{running.address}/bench/skopeo-{round_number}:1"

            def push_shoal(source: ImageStore = source, image: Image = image,
                           shoal_ref: RemoteName = shoal_ref) -> _Run:
                return _timed(lambda: Pusher(source, image, shoal_ref, ACCESS).push())

            def push_skopeo(layout: Path = layout, skopeo_ref: str = skopeo_ref) -> _Run:
                return _skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:1",
                               skopeo_ref)

            def pull_shoal(here: Path = here, shoal_ref: RemoteName = shoal_ref) -> _Run:
                store = ImageStore(here / f"pulled-{time.monotonic_ns()}")
                seconds = _timed(lambda: Puller(store, shoal_ref, ACCESS).pull())
                shutil.rmtree(store.root)
                return seconds

            def pull_skopeo(here: Path = here, skopeo_ref: str = skopeo_ref) -> _Run:
                target = here / f"skopeo-{time.monotonic_ns()}"
                seconds = _skopeo("copy", "--src-tls-verify=false", skopeo_ref,
                                  f"oci:{target}:1")
                shutil.rmtree(target)
                return seconds

            # Shoal first in even rounds, skopeo first in odd ones. skopeo pulls its own push
            # (its blob-info cache then knows only that repository, which is what it reads).
            if round_number % 2 == 0:
                push_s.append(push_shoal())
                skopeo_push_s.append(push_skopeo())
                pull_s.append(pull_shoal())
                skopeo_pull_s.append(pull_skopeo())
            else:
                skopeo_push_s.append(push_skopeo())
                push_s.append(push_shoal())
                skopeo_pull_s.append(pull_skopeo())
                pull_s.append(pull_shoal())
            shutil.rmtree(here)
    mb = size / 1e6

    def rate(runs: list[_Run]) -> float:
        return mb / statistics.median(r.wall for r in runs)

    def cpu(runs: list[_Run]) -> float:
        return round(statistics.median(r.cpu for r in runs), 3)

    return TransferFigures(round(mb, 1), rate(pull_s), rate(skopeo_pull_s), rate(push_s),
                           rate(skopeo_push_s), cpu(pull_s), cpu(skopeo_pull_s), cpu(push_s),
                           cpu(skopeo_push_s))
