"""The image store end to end: imports in every format, tags, inspect, removal, gc, and the
layout checked by independent tools (skopeo, umoci)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.helpers.image_layers import E, gz, make_tar
from worker.images import testimage
from worker.images.digest import digest_bytes
from worker.images.errors import (
    DigestMismatch,
    ImageInUse,
    ImageNotFound,
    InvalidImage,
    InvalidReference,
)
from worker.images.hostplatform import host_platform
from worker.images.importer import ArchiveFormat, detect_format, import_image
from worker.images.store import ImageStore
from worker.images.unpack import Form


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"needs {tool}")
        pytest.skip(f"needs {tool}")
    return path


@pytest.fixture(scope="module")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not testimage.BUSYBOX.exists():
        pytest.fail("the test image needs busybox-static (/bin/busybox)")
    return testimage.build_tar(tmp_path_factory.mktemp("img") / "busybox.tar")


def test_test_image_is_reproducible(tmp_path: Path) -> None:
    a = testimage.build_layout(tmp_path / "a")
    b = testimage.build_layout(tmp_path / "b")
    assert (a / "index.json").read_bytes() == (b / "index.json").read_bytes()


def test_import_oci_tar_and_inspect(store: ImageStore, busybox_tar: Path) -> None:
    assert detect_format(busybox_tar) is ArchiveFormat.OCI
    result = import_image(store, busybox_tar)
    [image] = result.images
    assert image.tags == ("busybox:latest",)
    assert store.get("busybox") == image
    assert store.get("docker.io/library/busybox:latest") == image
    assert store.get(image.id) == image
    assert store.get(image.short_id) == image
    assert store.get(f"busybox@{image.manifest_digest}") == image
    info = image.inspect()
    assert info["Os"] == "linux"
    assert info["Architecture"] == host_platform().architecture
    assert info["Config"] == {
        "Entrypoint": [], "Cmd": ["sh"], "Env": [testimage.ENV_PATH], "WorkingDir": "/",
        "User": "", "ExposedPorts": {}, "StopSignal": "",
        "Labels": {"org.shoal.test-image": "busybox"}, "Volumes": {}}
    assert info["Created"] == testimage.CREATED
    assert image.size == sum(store.blobs.size(d) for d in
                             [image.id, *(layer.blob for layer in image.layers)])
    assert len(image.layers) == 2
    json.dumps(info)
    # Importing again stores nothing new.
    before = sorted(store.blobs.digests())
    import_image(store, busybox_tar)
    assert sorted(store.blobs.digests()) == before


def test_layout_is_valid_for_skopeo_and_umoci(store: ImageStore, busybox_tar: Path,
                                              tmp_path: Path) -> None:
    skopeo, umoci = _need("skopeo"), _need("umoci")
    image = import_image(store, busybox_tar, "shoal/test:1").images[0]
    out = subprocess.run([skopeo, "inspect", f"oci:{store.layout}:shoal/test:1"],
                         capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout)["Layers"] == [layer.blob for layer in image.layers]
    bundle = tmp_path / "bundle"
    subprocess.run([umoci, "unpack", "--image", f"{store.layout}:shoal/test:1", str(bundle)],
                   capture_output=True, check=True, timeout=120)
    # umoci's own unpacking agrees with ours on what the whiteouts mean.
    rootfs = bundle / "rootfs"
    assert (rootfs / "etc" / "motd").read_text() == testimage.MOTD
    assert not (rootfs / "etc" / "shoal-scratch").exists()
    assert os.listdir(rootfs / "var" / "cache") == ["fresh"]
    ours = store.layer_store(Form.APPLIED).ensure(image.layers)[-1]
    assert sorted(os.listdir(ours / "bin")) == sorted(os.listdir(rootfs / "bin"))
    assert os.listdir(ours / "var" / "cache") == ["fresh"]


def test_import_oci_directory_with_tag(store: ImageStore, tmp_path: Path) -> None:
    layout = testimage.build_layout(tmp_path / "layout", tag="ignored:tag")
    image = import_image(store, layout, "mine").images[0]
    assert image.tags == ("mine:latest",)


def _docker_save(tmp_path: Path, *, tags: list[str] | None, corrupt: bool = False) -> Path:
    layer = make_tar([E("bin", "dir"), E("bin/hello", data=b"hi", mode=0o755)])
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2020-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/hello"], "Env": None, "ExposedPorts": {"80/tcp": {}},
                   "StopSignal": "SIGQUIT", "User": "1000:1000", "WorkingDir": "/srv",
                   "Entrypoint": ["/bin/init"], "Labels": {"a": "b"}},
        "rootfs": {"type": "layers", "diff_ids": [digest_bytes(layer)]},
    }).encode()
    cfg_name = digest_bytes(config).partition(":")[2] + ".json"
    if corrupt:
        layer = layer.replace(b"hi", b"HI")
    manifest = json.dumps([{"Config": cfg_name, "RepoTags": tags,
                            "Layers": ["abc/layer.tar", "dup/layer.tar"]}]).encode()
    config = json.loads(config)
    config["rootfs"]["diff_ids"] *= 2
    config_bytes = json.dumps(config).encode()
    manifest = manifest.replace(cfg_name.encode(), b"config.json")
    path = tmp_path / "saved.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in [("manifest.json", manifest), ("config.json", config_bytes),
                           ("abc/layer.tar", layer)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("dup/layer.tar")  # old docker save links duplicate layers
        link.type = tarfile.SYMTYPE
        link.linkname = "../abc/layer.tar"
        tar.addfile(link)
    return path


def test_import_docker_save(store: ImageStore, tmp_path: Path) -> None:
    path = _docker_save(tmp_path, tags=["example.com/app:2", "app:latest"])
    assert detect_format(path) is ArchiveFormat.DOCKER_SAVE
    [image] = import_image(store, path).images
    assert image.tags == ("app:latest", "example.com/app:2")
    d = image.defaults
    assert (d.entrypoint, d.cmd, d.env, d.user, d.working_dir, d.stop_signal) == (
        ("/bin/init",), ("/bin/hello",), (), "1000:1000", "/srv", "SIGQUIT")
    assert d.exposed_ports == ("80/tcp",)
    assert d.labels == {"a": "b"}
    top = store.layer_store(Form.APPLIED).ensure(image.layers)[-1]
    assert (top / "bin" / "hello").read_bytes() == b"hi"


def test_docker_save_with_wrong_layer_digest_is_refused(store: ImageStore,
                                                         tmp_path: Path) -> None:
    with pytest.raises(DigestMismatch):
        import_image(store, _docker_save(tmp_path, tags=None, corrupt=True))
    assert store.images() == []
    assert store.gc().blobs  # what was stored before the refusal is collectable


@pytest.mark.parametrize("compress", [lambda b: b, gz], ids=["plain", "gzip"])
def test_import_rootfs_tarball(store: ImageStore, tmp_path: Path, compress: object) -> None:
    assert callable(compress)
    path = tmp_path / "rootfs.tar"
    path.write_bytes(compress(make_tar([E("etc", "dir"), E("etc/os-release", data=b"x")])))
    assert detect_format(path) is ArchiveFormat.ROOTFS
    [image] = import_image(store, path, "imported", cmd=["/bin/sh"]).images
    assert image.tags == ("imported:latest",)
    assert image.config.os == "linux"
    assert image.config.architecture == host_platform().architecture
    assert image.defaults.cmd == ("/bin/sh",)
    top = store.layer_store(Form.APPLIED).ensure(image.layers)[-1]
    assert (top / "etc" / "os-release").read_bytes() == b"x"


def test_import_refuses_garbage(store: ImageStore, tmp_path: Path) -> None:
    path = tmp_path / "junk"
    path.write_bytes(os.urandom(5000))
    with pytest.raises(InvalidImage):
        import_image(store, path)
    (tmp_path / "dir").mkdir()
    with pytest.raises(InvalidImage, match="not an OCI image layout"):
        import_image(store, tmp_path / "dir")
    with pytest.raises(InvalidReference):
        import_image(store, path, "Bad:Ref:")


def test_oci_blob_mismatch_is_refused(store: ImageStore, tmp_path: Path) -> None:
    layout = testimage.build_layout(tmp_path / "layout")
    index = json.loads((layout / "index.json").read_text())
    manifest_path = layout / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]
    manifest = json.loads(manifest_path.read_text())
    layer = layout / "blobs" / "sha256" / manifest["layers"][1]["digest"][7:]
    layer.write_bytes(layer.read_bytes()[:-1] + b"!")
    with pytest.raises(DigestMismatch):
        import_image(store, layout)
    assert store.images() == []


def test_tags_and_removal(store: ImageStore, busybox_tar: Path) -> None:
    image = import_image(store, busybox_tar).images[0]
    store.tag("busybox", "other:1")
    store.tag("busybox", "third")
    assert store.get("busybox").tags == ("busybox:latest", "other:1", "third:latest")
    with pytest.raises(ImageInUse, match="tags"):
        store.remove(image.id)
    assert store.remove("other:1").untagged == ["other:1"]
    with pytest.raises(ImageNotFound):
        store.get("other:1")
    # In use by a container: the last tag goes only with force, the image stays.
    store.remove("third")
    with pytest.raises(ImageInUse, match="used by a container"):
        store.remove("busybox", in_use={image.id})
    result = store.remove("busybox", force=True, in_use={image.id})
    assert result.untagged == ["busybox:latest"] and result.deleted == []
    assert store.get(image.id).tags == ()
    with pytest.raises(ImageInUse):
        store.remove(image.id, force=True, in_use={image.id})
    result = store.remove(image.short_id)
    assert result.deleted == [image.id]
    assert store.images() == []
    assert list(store.blobs.digests()) == []
    with pytest.raises(ImageNotFound):
        store.get("busybox")


def test_shared_blobs_survive_removal_of_one_image(store: ImageStore, tmp_path: Path,
                                                   busybox_tar: Path) -> None:
    base = import_image(store, busybox_tar).images[0]
    store.layer_store(Form.OVERLAY).ensure(base.layers)
    # A rootfs import of the test image's (uncompressed) second layer: the same blob.
    path = tmp_path / "changes.tar"
    path.write_bytes(testimage.layer_changes())
    other = import_image(store, path, "changes").images[0]
    shared = other.layers[0].blob
    assert shared == base.layers[1].blob
    store.layer_store(Form.OVERLAY).ensure(other.layers)
    store.remove("busybox")
    assert store.blobs.has(shared)
    assert not store.blobs.has(base.layers[0].blob)
    assert set(store.blobs.digests()) == {other.manifest_digest, other.id, shared}
    assert store.layer_store(Form.OVERLAY).chains() == other.chain_ids
    store.remove("changes")
    assert list(store.blobs.digests()) == []
    assert store.layer_store(Form.OVERLAY).chains() == []


def test_not_found_and_bad_reference(store: ImageStore) -> None:
    with pytest.raises(ImageNotFound):
        store.get("nothere")
    with pytest.raises(ImageNotFound):
        store.get("abcdef")
    with pytest.raises(InvalidReference):
        store.get("NOT VALID")


def test_recover_cleans_crash_leftovers(store: ImageStore, busybox_tar: Path) -> None:
    import_image(store, busybox_tar)
    (store.root / "ingest" / "blob-123").write_bytes(b"partial")
    (store.layout / ".index.json.tmp1").write_bytes(b"{")
    store.recover()
    assert os.listdir(store.root / "ingest") == []
    assert sorted(os.listdir(store.layout)) == ["blobs", "index.json", "oci-layout"]
    reopened = ImageStore(store.root)
    assert [i.tags for i in reopened.images()] == [("busybox:latest",)]
