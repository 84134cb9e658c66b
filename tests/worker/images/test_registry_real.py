"""The registry client against a real registry (Debian's docker-registry, distribution 2.8) on
loopback: once plain, once with TLS (a CA made here) and htpasswd auth. What shoal pushes
skopeo reads with the same digest; what shoal pulls is byte for byte what skopeo copies."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench._registry_server import RunningRegistry, available, registry
from tests.helpers.bounded_run import run
from tests.helpers.registry_images import put_index, small_image
from tests.helpers.requirements import missing
from worker.images import DigestMismatch, ImageStore, LayerRejected, testimage
from worker.images.digest import hex_of
from worker.images.registry import (
    Credentials,
    ManifestUnknown,
    Puller,
    Pusher,
    RegistryAccess,
    RegistryError,
    RegistryUnauthorized,
    parse_platform,
    remote_name,
)
from worker.images.registry.progress import BlobProgress

USERS = {"alice": "correct horse"}
PLAIN = RegistryAccess(insecure=True, certs_dirs=())


def _need_tools() -> None:
    why = available()
    if why is not None:
        missing(why)
    if not testimage.BUSYBOX.exists():
        missing("busybox-static (/bin/busybox)")


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    _need_tools()
    with registry(tmp_path_factory.mktemp("plain-registry")) as running:
        yield running


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    _need_tools()
    with registry(tmp_path_factory.mktemp("tls-registry"), tls=True, users=USERS) as running:
        yield running


def _skopeo(*args: str) -> str:
    done = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _stored_blobs(store: ImageStore) -> dict[str, bytes]:
    return {f"sha256:{p.name}": p.read_bytes() for p in store.blobs.dir.iterdir()}


def test_push_then_pull_matches_skopeo(plain: RunningRegistry, tmp_path: Path) -> None:
    source = ImageStore(tmp_path / "source")
    image = testimage.import_test_image(source)
    ref = f"{plain.address}/shoal/busybox:1"
    pushed = run(lambda: Pusher(source, image, remote_name(ref), PLAIN).push())
    assert pushed.digest == image.manifest_digest and pushed.uploaded == 3

    inspected = json.loads(_skopeo("inspect", "--tls-verify=false", f"docker://{ref}"))
    assert inspected["Digest"] == image.manifest_digest
    assert inspected["Layers"] == [layer.digest for layer in image.manifest.layers]

    events: list[BlobProgress] = []
    fresh = ImageStore(tmp_path / "fresh")
    pulled = run(lambda: Puller(fresh, remote_name(ref), PLAIN, progress=events.append).pull())
    assert pulled.image.manifest_digest == image.manifest_digest == pulled.digest
    assert pulled.image.tags == (ref,)
    assert pulled.downloaded == 3
    assert {e.blob for e in events if e.action == "done"} == \
        {d.digest for d in (image.manifest.config, *image.manifest.layers)}

    layout = tmp_path / "skopeo-layout"
    _skopeo("copy", "--src-tls-verify=false", "--dest-oci-accept-uncompressed-layers",
            f"docker://{ref}", f"oci:{layout}:copied")
    copied = {f"sha256:{p.name}": p.read_bytes() for p in (layout / "blobs/sha256").iterdir()}
    assert copied == _stored_blobs(fresh)  # the same blobs, byte for byte
    index = json.loads((layout / "index.json").read_text())
    assert index["manifests"][0]["digest"] == pulled.image.manifest_digest

    again = run(lambda: Puller(fresh, remote_name(ref), PLAIN).pull())
    assert again.downloaded == 0 and again.image.id == image.id


def test_chunked_push_and_cross_repository_mount(plain: RunningRegistry, tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    image = testimage.import_test_image(store)
    first = f"{plain.address}/chunked/busybox:c"
    pushed = run(lambda: Pusher(store, image, remote_name(first), PLAIN,
                                chunk_size=64 * 1024).push())
    assert (pushed.uploaded, pushed.mounted) == (3, 0)
    fresh = ImageStore(tmp_path / "fresh")
    pulled = run(lambda: Puller(fresh, remote_name(first), PLAIN).pull())
    assert pulled.image.manifest_digest == image.manifest_digest
    # ``fresh`` holds an image of repository chunked/busybox: a push elsewhere mounts from it.
    second = f"{plain.address}/mounted/busybox:m"
    remounted = run(lambda: Pusher(fresh, pulled.image, remote_name(second), PLAIN).push())
    assert (remounted.uploaded, remounted.mounted) == (0, 3)
    assert json.loads(_skopeo("inspect", "--tls-verify=false", f"docker://{second}"))[
        "Digest"] == image.manifest_digest
    existing = run(lambda: Pusher(fresh, pulled.image, remote_name(second), PLAIN).push())
    assert (existing.uploaded, existing.mounted) == (0, 0)  # every blob there: HEAD skips


def test_the_platform_of_an_index_is_chosen(plain: RunningRegistry, tmp_path: Path) -> None:
    images = [small_image(b"amd64 " * 100, "amd64"), small_image(b"arm64 " * 100, "arm64", "v8"),
              small_image(b"arm7 " * 100, "arm", "v7")]
    base = f"http://{plain.address}"
    index_digest = run(lambda: put_index(base, "multi/app", images, "1"))
    ref = remote_name(f"{plain.address}/multi/app:1")
    for wanted, expected in (("linux/arm64", images[1]), ("linux/arm/v7", images[2]),
                             ("linux/amd64", images[0])):
        store = ImageStore(tmp_path / wanted.replace("/", "-"))
        pulled = run(lambda s=store, w=wanted: Puller(s, ref, PLAIN).pull(parse_platform(w)))
        assert pulled.image.manifest_digest == expected.digest
        assert pulled.digest == index_digest
        assert pulled.image.platform.startswith(wanted)
    store = ImageStore(tmp_path / "none")
    with pytest.raises(Exception, match="no matching manifest for linux/s390x"):
        run(lambda: Puller(store, ref, PLAIN).pull(parse_platform("linux/s390x")))
    assert store.images() == [] and list(store.blobs.digests()) == []
    with pytest.raises(ManifestUnknown):
        run(lambda: Puller(store, remote_name(f"{plain.address}/multi/app:2"), PLAIN).pull())


def test_tls_and_htpasswd(secured: RunningRegistry, tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    image = testimage.import_test_image(store)
    ref = f"{secured.address}/private/busybox:tls"
    good = RegistryAccess(credentials=Credentials("alice", USERS["alice"]),
                          ca_pem=secured.ca_pem, certs_dirs=())
    run(lambda: Pusher(store, image, remote_name(ref), good).push())
    assert secured.ca_file is not None
    inspected = json.loads(_skopeo("inspect", "--cert-dir", str(secured.ca_file.parent),
                                   "--creds", f"alice:{USERS['alice']}", f"docker://{ref}"))
    assert inspected["Digest"] == image.manifest_digest
    fresh = ImageStore(tmp_path / "fresh")
    pulled = run(lambda: Puller(fresh, remote_name(ref), good).pull())
    assert pulled.image.manifest_digest == image.manifest_digest

    wrong = RegistryAccess(credentials=Credentials("alice", "wrong"), ca_pem=secured.ca_pem,
                           certs_dirs=())
    anonymous = RegistryAccess(ca_pem=secured.ca_pem, certs_dirs=())
    for access in (wrong, anonymous):
        empty = ImageStore(tmp_path / f"refused-{id(access)}")
        with pytest.raises(RegistryUnauthorized) as refused:
            run(lambda s=empty, a=access: Puller(s, remote_name(ref), a).pull())
        assert str(refused.value) == "unauthorized: authentication required"
        assert empty.images() == []
    # The CA unknown: TLS fails, and plain http is not tried unless asked for.
    untrusted = RegistryAccess(credentials=good.credentials, certs_dirs=())
    with pytest.raises(RegistryError, match=r"certificate verify failed.*--ca"):
        run(lambda: Puller(ImageStore(tmp_path / "untrusted"), remote_name(ref),
                           untrusted).pull())
    # A certs.d directory for the host does what ca_pem does.
    certs = tmp_path / "certs.d"
    (certs / secured.address).mkdir(parents=True)
    (certs / secured.address / "ca.crt").write_text(secured.ca_pem)
    by_dir = RegistryAccess(credentials=good.credentials, certs_dirs=(certs,))
    again = run(lambda: Puller(ImageStore(tmp_path / "by-dir"), remote_name(ref),
                               by_dir).pull())
    assert again.image.manifest_digest == image.manifest_digest


def test_a_blob_in_the_registry_is_never_trusted(plain: RunningRegistry, tmp_path: Path) -> None:
    """A layer whose bytes were changed in the registry's storage is refused, nothing kept."""
    image = small_image(bytes(range(256)) * 64, "amd64")
    base = f"http://{plain.address}"
    run(lambda: put_index(base, "tampered/app", [image], "1"))
    layer = plain.root / "docker/registry/v2/blobs/sha256" / hex_of(
        next(iter(d for d, b in image.blobs.items() if b == image.layer)))[:2]
    data_file = layer / hex_of(next(d for d, b in image.blobs.items() if b == image.layer)) / "data"
    tampered = bytearray(data_file.read_bytes())
    tampered[-5] ^= 0xFF
    data_file.write_bytes(bytes(tampered))
    store = ImageStore(tmp_path / "store")
    # The scan of the arriving bytes or the digest at their end, whichever notices first.
    with pytest.raises((DigestMismatch, LayerRejected)):
        run(lambda: Puller(store, remote_name(f"{plain.address}/tampered/app:1"),
                           PLAIN).pull(parse_platform("linux/amd64")))
    assert store.images() == []
    assert next((d for d in store.blobs.digests() if image.blobs.get(d) == image.layer),
                None) is None
    assert list(store.blobs.ingest.iterdir()) == []


