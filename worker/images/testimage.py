"""The project's own test image: busybox from Debian's ``busybox-static``, built as real layers
in an OCI image layout, with no registry and no network.

Layer 1 (gzip): ``/bin/busybox``, a symlink per applet, ``/etc/passwd`` and ``/etc/group``, the
usual empty directories, and two things for layer 2 to hide. Layer 2 (plain tar): a whiteout of
``/etc/shoal-scratch``, an opaque ``/var/cache`` holding only ``fresh``, and ``/etc/motd``. The
config says Cmd ``["sh"]``, a PATH, os linux and this host's architecture. Output is
byte-for-byte reproducible for a given busybox binary (fixed times, owners and gzip header).

Used by tests, `shoal dev` and benchmarks: ``import_test_image(store)`` is all most need.
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from worker.images.digest import digest_bytes, hex_of
from worker.images.hostplatform import host_platform
from worker.images.oci import (
    ANNOTATION_REF_NAME,
    MT_OCI_CONFIG,
    MT_OCI_INDEX,
    MT_OCI_LAYER,
    MT_OCI_LAYER_GZIP,
    MT_OCI_MANIFEST,
    OCI_LAYOUT_VERSION,
    ContainerConfig,
    Descriptor,
    History,
    ImageConfig,
    Index,
    Manifest,
    RootFS,
    encode,
)
from worker.images.store import Image, ImageStore

BUSYBOX = Path("/bin/busybox")
DEFAULT_TAG = "busybox:latest"
MTIME = 1_700_000_000
CREATED = "2023-11-14T22:13:20Z"
ENV_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
GROUP = "root:x:0:\nnogroup:x:65534:\n"
MOTD = "built by shoal's test image fixture\n"


@dataclass(frozen=True, slots=True)
class Blob:
    media_type: str
    data: bytes

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, digest_bytes(self.data), len(self.data))


class _TarBuilder:
    """Deterministic tar entries: root-owned, fixed time."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()
        self.tar = tarfile.open(  # noqa: SIM115 - closed by finish()
            fileobj=self.buffer, mode="w", format=tarfile.PAX_FORMAT)

    def _info(self, name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.mtime = MTIME
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    def dir(self, name: str, mode: int = 0o755) -> None:
        self.tar.addfile(self._info(name, tarfile.DIRTYPE, mode))

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        info = self._info(name, tarfile.REGTYPE, mode)
        info.size = len(data)
        self.tar.addfile(info, io.BytesIO(data))

    def symlink(self, name: str, target: str) -> None:
        info = self._info(name, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self.tar.addfile(info)

    def finish(self) -> bytes:
        self.tar.close()
        return self.buffer.getvalue()


def _gzip(data: bytes) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="", compresslevel=6) as gz:
        gz.write(data)
    return out.getvalue()


def applets(busybox: Path = BUSYBOX) -> list[str]:
    listed = subprocess.run([str(busybox), "--list"], capture_output=True, text=True,
                            check=True, timeout=30).stdout.split()
    return sorted(a for a in listed if a != "busybox" and "/" not in a)


def layer_base(busybox: Path = BUSYBOX) -> bytes:
    """Uncompressed tar of layer 1."""
    t = _TarBuilder()
    for d in ("bin", "dev", "etc", "proc", "sys", "var", "var/cache", "var/cache/old"):
        t.dir(d)
    t.dir("root", 0o700)
    t.dir("tmp", 0o1777)
    t.file("bin/busybox", busybox.read_bytes(), 0o755)
    for applet in applets(busybox):
        t.symlink(f"bin/{applet}", "busybox")
    t.file("etc/passwd", PASSWD.encode())
    t.file("etc/group", GROUP.encode())
    t.file("etc/shoal-scratch", b"removed by layer 2\n")
    t.file("var/cache/old/stale", b"hidden by layer 2's opaque directory\n")
    return t.finish()


def layer_changes() -> bytes:
    """Uncompressed tar of layer 2: a whiteout, an opaque directory, a new file."""
    t = _TarBuilder()
    t.dir("etc")
    t.file("etc/.wh.shoal-scratch", b"")
    t.dir("var/cache")
    t.file("var/cache/.wh..wh..opq", b"")
    t.file("var/cache/fresh", b"written by layer 2\n")
    t.file("etc/motd", MOTD.encode())
    return t.finish()


def image_blobs(busybox: Path = BUSYBOX) -> tuple[Blob, Blob, list[Blob]]:
    """(manifest, config, layers) of the test image."""
    tars = [layer_base(busybox), layer_changes()]
    layers = [Blob(MT_OCI_LAYER_GZIP, _gzip(tars[0])), Blob(MT_OCI_LAYER, tars[1])]
    host = host_platform()
    config = ImageConfig(
        architecture=host.architecture, os="linux", variant=host.variant, created=CREATED,
        rootfs=RootFS("layers", [digest_bytes(t) for t in tars]),
        config=ContainerConfig(env=[ENV_PATH], cmd=["sh"], working_dir="/",
                               labels={"org.shoal.test-image": "busybox"}),
        history=[History(created=CREATED, created_by="shoal testimage: busybox and applets"),
                 History(created=CREATED, created_by="shoal testimage: whiteouts and motd")])
    config_blob = Blob(MT_OCI_CONFIG, encode(config))
    manifest = Manifest(schema_version=2, media_type=MT_OCI_MANIFEST,
                        config=config_blob.descriptor, layers=[b.descriptor for b in layers])
    return Blob(MT_OCI_MANIFEST, encode(manifest)), config_blob, layers


def build_layout(dest: Path, tag: str = DEFAULT_TAG, busybox: Path = BUSYBOX) -> Path:
    """Write the test image as an OCI image layout directory ``dest``; returns it."""
    manifest, config, layers = image_blobs(busybox)
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for blob in (manifest, config, *layers):
        (blobs / hex_of(blob.descriptor.digest)).write_bytes(blob.data)
    (dest / "oci-layout").write_text(json.dumps({"imageLayoutVersion": OCI_LAYOUT_VERSION}))
    entry = manifest.descriptor
    entry = Descriptor(entry.media_type, entry.digest, entry.size,
                       annotations={ANNOTATION_REF_NAME: tag})
    index = Index(schema_version=2, media_type=MT_OCI_INDEX, manifests=[entry])
    (dest / "index.json").write_bytes(encode(index))
    return dest


def build_tar(dest: Path, tag: str = DEFAULT_TAG, busybox: Path = BUSYBOX) -> Path:
    """Write the test image as an OCI layout tarball (what ``docker save`` writes nowadays)."""
    with tempfile.TemporaryDirectory(prefix="shoal-testimage-") as tmp:
        layout = build_layout(Path(tmp) / "layout", tag, busybox)
        with tarfile.open(dest, "w") as tar:
            for name in ("oci-layout", "index.json", "blobs"):
                tar.add(layout / name, arcname=name)
    return dest


def import_test_image(store: ImageStore, tag: str = DEFAULT_TAG,
                      busybox: Path = BUSYBOX) -> Image:
    """Build the test image and import it into ``store`` under ``tag``."""
    from worker.images.importer import import_image

    with tempfile.TemporaryDirectory(prefix="shoal-testimage-") as tmp:
        layout = build_layout(Path(tmp) / "layout", tag, busybox)
        return import_image(store, layout).images[0]
