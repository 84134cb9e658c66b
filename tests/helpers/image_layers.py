"""Hand-made image layers for tests: tarball entries, gzip and diff ids, OCI layouts made of
them, and snapshots of an unpacked tree to compare."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from worker.images.digest import digest_bytes
from worker.images.hostplatform import host_platform
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


@dataclass(frozen=True)
class E:
    """A tar entry to write: ``kind`` is file, dir, symlink, hardlink, char, block, fifo."""

    name: str
    kind: str = "file"
    data: bytes = b""
    link: str = ""
    mode: int = 0o644
    size: int | None = None  # lie about the size in the header
    dev: tuple[int, int] = (0, 0)


_TYPES = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
          "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE,
          "fifo": tarfile.FIFOTYPE}


def make_tar(entries: Iterable[E]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type = _TYPES[e.kind]
            info.mode = 0o755 if e.kind == "dir" and e.mode == 0o644 else e.mode
            info.mtime = 1_600_000_000
            info.linkname = e.link
            info.devmajor, info.devminor = e.dev
            if e.kind == "file":
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
            else:
                tar.addfile(info)
    return buffer.getvalue()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def diff_id(tar: bytes) -> str:
    return digest_bytes(tar)


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with what it is, for comparing trees."""
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            st = path.lstat()
            if path.is_symlink():
                found[rel] = f"link:{os.readlink(path)}"
            elif path.is_dir():
                found[rel] = "dir"
            elif path.is_file():
                found[rel] = f"file:{path.read_bytes()[:64]!r}"
            else:
                found[rel] = f"special:{st.st_mode:o}:{st.st_rdev}"
    return found


def gzip_bomb(files: int, file_size: int, chunk: int = 1 << 20) -> bytes:
    """A gzipped layer of ``files`` files of ``file_size`` zero bytes each (a multiple of
    ``chunk``), made without ever holding or compressing the whole: gzip members concatenated
    decompress as one stream, so one compressed chunk of zeros is repeated. Ten files of 1 GiB
    come to about 10 MB stored."""
    assert file_size % chunk == 0 and chunk % 512 == 0
    zeros = gz(bytes(chunk))
    parts = []
    for number in range(files):
        info = tarfile.TarInfo(f"zeros{number}")
        info.size = file_size
        info.mtime = 1_600_000_000
        parts.append(gz(info.tobuf(format=tarfile.USTAR_FORMAT)))
        parts.extend([zeros] * (file_size // chunk))
    parts.append(gz(bytes(1024)))  # the end-of-archive blocks
    return b"".join(parts)


def layout_from_tars(dest: Path, tars: list[bytes], tag: str) -> Path:
    """An OCI layout directory holding one image made of ``tars`` (bottom first, gzipped)."""
    return layout_from_layers(dest, [(gz(t), diff_id(t)) for t in tars], tag)


def layout_from_layers(dest: Path, blobs: list[tuple[bytes, str]], tag: str) -> Path:
    """An OCI layout directory holding one image made of gzipped layer ``blobs``, each with
    the diff id its config gives (bottom first)."""
    layers = [blob for blob, _ in blobs]
    host = host_platform()
    config = encode(ImageConfig(architecture=host.architecture, os="linux",
                                rootfs=RootFS("layers", [d for _, d in blobs])))
    manifest = encode(Manifest(
        schema_version=2, media_type=MT_OCI_MANIFEST,
        config=Descriptor(MT_OCI_CONFIG, digest_bytes(config), len(config)),
        layers=[Descriptor(MT_OCI_LAYER_GZIP, digest_bytes(b), len(b)) for b in layers]))
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for blob in (config, manifest, *layers):
        (blobs / digest_bytes(blob)[7:]).write_bytes(blob)
    (dest / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    entry = Descriptor(MT_OCI_MANIFEST, digest_bytes(manifest), len(manifest),
                       annotations={ANNOTATION_REF_NAME: tag})
    (dest / "index.json").write_bytes(encode(Index(schema_version=2, manifests=[entry])))
    return dest

