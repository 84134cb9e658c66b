"""The image verbs served by ``ImageService`` over real channels (tcp loopback): import from a
byte stream, list, inspect, remove; typed refusals; nothing left behind by refused or cancelled
imports."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import io
import json
import tarfile
from collections.abc import AsyncIterator, Callable, Collection
from pathlib import Path

import pytest

import channels
from protocol.errors import ChannelError, InvalidArgument, PeerLost, ShoalError, Unsupported
from protocol.messages import (
    Echo,
    ImageImported,
    ImageInspected,
    ImageList,
    ImageRemoved,
    ImportImage,
    InspectImage,
    ListImages,
    Message,
    RemoveImage,
)
from tests.helpers.bounded_run import run
from tests.helpers.image_layers import (
    E,
    gz,
    gzip_bomb,
    layout_from_layers,
    layout_from_tars,
    make_tar,
)
from worker.image_service import ImageService, created_timestamp
from worker.images import (
    DigestMismatch,
    ImageInUse,
    ImageNotFound,
    ImageStore,
    InvalidImage,
    InvalidReference,
    LayerRejected,
    testimage,
)
from worker.images.digest import digest_bytes, hex_of

BLOCK = 256 * 1024


@pytest.fixture(scope="module")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not testimage.BUSYBOX.exists():
        pytest.fail("the test image needs busybox-static (/bin/busybox)")
    return testimage.build_tar(tmp_path_factory.mktemp("img") / "busybox.tar")


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "state" / "images")


def disk_state(root: Path) -> dict[str, str]:
    """Every file under ``root`` with a hash of its content: the store's whole disk state."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()[:16]
            for p in sorted(root.rglob("*")) if p.is_file()}


class Recorder:
    """Wraps the service: what each request ended with, for tests to wait on (no sleeps)."""

    def __init__(self, service: ImageService) -> None:
        self.service = service
        self.outcomes: asyncio.Queue[tuple[str, BaseException | None]] = asyncio.Queue()

    async def handle(self, message: Message) -> Message | None:
        try:
            result = await self.service.handle(message)
        except BaseException as exc:
            self.outcomes.put_nowait((type(message).__name__, exc))
            raise
        self.outcomes.put_nowait((type(message).__name__, None))
        return result

    async def next_outcome(self) -> tuple[str, BaseException | None]:
        return await asyncio.wait_for(self.outcomes.get(), 10)


@contextlib.asynccontextmanager
async def serving(service: ImageService) -> AsyncIterator[tuple[channels.Connection, Recorder]]:
    recorder = Recorder(service)
    async with await channels.listen("tcp://127.0.0.1:0") as listener:
        server = asyncio.create_task(channels.serve(listener.receiver, recorder.handle))
        try:
            async with await channels.connect(listener.address) as conn:
                yield conn, recorder
        finally:
            await listener.close()
            await server


async def upload(conn: channels.Connection, data: bytes, name: str, fmt: str = "auto"
                 ) -> Message:
    """Stream ``data`` as an import; the reply (or the refusal, raised)."""
    writer, reader = channels.byte_pipe()

    async def send() -> None:
        with contextlib.suppress(ChannelError):  # the worker stopped reading: its reply says why
            for start in range(0, len(data), BLOCK):
                await writer.write(data[start:start + BLOCK])
            writer.close()

    sending = asyncio.create_task(send())
    try:
        return await channels.request(conn.sender, lambda r: ImportImage(
            name=name, format=fmt, data=reader, source="upload.tar", reply=r))  # type: ignore[arg-type]
    finally:
        sending.cancel()
        await asyncio.gather(sending, return_exceptions=True)


async def ask(conn: channels.Connection, make: Callable[[channels.Sender], Message]) -> Message:
    return await channels.request(conn.sender, make)


def inspect_request(ref: str, reply: channels.Sender) -> Message:
    return InspectImage(ref=ref, reply=reply)


def docker_save_tar(tag: str) -> bytes:
    """The test image as a ``docker save`` tarball (manifest.json, config, one tar per layer)."""
    _, config, layers = testimage.image_blobs()
    names = [f"{hex_of(layer.descriptor.digest)}/layer.tar" for layer in layers]
    config_name = f"{hex_of(config.descriptor.digest)}.json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": names}])
    files = [(config_name, config.data), ("manifest.json", manifest.encode()),
             *zip(names, (layer.data for layer in layers), strict=True)]
    return make_tar([E(name, data=data) for name, data in files])


def oci_tar(tmp_path: Path, tars: list[bytes], tag: str) -> bytes:
    return layout_tar(layout_from_tars(tmp_path / "layout", tars, tag))


def layout_tar(layout: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in ("oci-layout", "index.json", "blobs"):
            tar.add(layout / name, arcname=name)
    return buffer.getvalue()


# --- the happy paths -----------------------------------------------------------------------------
def test_import_list_inspect_remove(store: ImageStore, busybox_tar: Path) -> None:
    empty = disk_state(store.root)

    async def main() -> None:
        async with serving(ImageService(store)) as (conn, _):
            imported = await upload(conn, busybox_tar.read_bytes(), "shoal/busybox:1.0")
            assert isinstance(imported, ImageImported)
            assert imported.format == "oci"
            [summary] = imported.images
            assert summary.tags == ["shoal/busybox:1.0"]
            assert summary.id.startswith("sha256:") and summary.digest.startswith("sha256:")
            assert summary.created == created_timestamp(testimage.CREATED) > 0
            assert (summary.os, summary.size > 1000) == ("linux", True)

            listing = await ask(conn, lambda r: ListImages(reply=r))
            assert isinstance(listing, ImageList)
            assert listing.images == [summary]

            for ref in ("shoal/busybox:1.0", summary.id, hex_of(summary.id)[:12], summary.digest,
                        f"shoal/busybox@{summary.digest}"):
                inspected = await ask(conn, functools.partial(inspect_request, ref))
                assert isinstance(inspected, ImageInspected)
                assert inspected.info.summary == summary
                info = inspected.info
            assert info.config.cmd == ["sh"]
            assert info.config.env == [testimage.ENV_PATH]
            assert info.config.labels == {"org.shoal.test-image": "busybox"}
            assert info.layers == [digest_bytes(testimage.layer_base()),
                                   digest_bytes(testimage.layer_changes())]

            removed = await ask(conn, lambda r: RemoveImage(ref="shoal/busybox:1.0", reply=r))
            assert removed == ImageRemoved(untagged=["shoal/busybox:1.0"], deleted=[summary.id])
            assert await ask(conn, lambda r: ListImages(reply=r)) == ImageList(images=[])

    run(main)
    assert disk_state(store.root) == empty  # blobs collected, spool emptied


def test_every_archive_format(store: ImageStore, busybox_tar: Path) -> None:
    rootfs = testimage.layer_base()

    async def main() -> None:
        async with serving(ImageService(store)) as (conn, _):
            saved = await upload(conn, docker_save_tar("saved:v1"), "")
            assert isinstance(saved, ImageImported)
            assert (saved.format, saved.images[0].tags) == ("docker-save", ["saved:v1"])

            oci = await upload(conn, busybox_tar.read_bytes(), "", fmt="oci")
            assert isinstance(oci, ImageImported)
            # The archive's own tag, on the same image (same config and layers).
            assert oci.images[0].tags == ["busybox:latest", "saved:v1"]
            assert oci.images[0].id == saved.images[0].id

            plain = await upload(conn, gz(rootfs), "rootfs:gz")
            assert isinstance(plain, ImageImported)
            assert plain.format == "rootfs"
            inspected = await ask(conn, lambda r: InspectImage(ref="rootfs:gz", reply=r))
            assert isinstance(inspected, ImageInspected)
            assert inspected.info.layers == [digest_bytes(rootfs)]
            assert inspected.info.config.cmd == []

            listing = await ask(conn, lambda r: ListImages(reply=r))
            assert isinstance(listing, ImageList)
            assert sorted(image.tags for image in listing.images) == \
                [["busybox:latest", "saved:v1"], ["rootfs:gz"]]

    run(main)


# --- refusals ------------------------------------------------------------------------------------
def test_refusals_are_typed(store: ImageStore, busybox_tar: Path) -> None:
    busy: set[str] = set()

    def in_use() -> Collection[str]:
        return busy

    async def main() -> None:
        async with serving(ImageService(store, in_use=in_use)) as (conn, _):
            with pytest.raises(InvalidReference):
                await upload(conn, busybox_tar.read_bytes(), "Bad Name!")
            with pytest.raises(InvalidImage, match=r"manifest\.json"):
                await upload(conn, busybox_tar.read_bytes(), "x:1", fmt="docker")
            with pytest.raises(InvalidImage, match=r"not a .*tar"):
                await upload(conn, b"\x00garbage" * 100, "x:1", fmt="rootfs")
            with pytest.raises(ImageNotFound, match="no such image: nothing"):
                await ask(conn, lambda r: InspectImage(ref="nothing", reply=r))
            with pytest.raises(ImageNotFound):
                await ask(conn, lambda r: RemoveImage(ref="nothing:else", reply=r))

            imported = await upload(conn, busybox_tar.read_bytes(), "busybox:a")
            assert isinstance(imported, ImageImported)
            image_id = imported.images[0].id
            busy.add(image_id)
            with pytest.raises(ImageInUse, match="used by a container"):
                await ask(conn, lambda r: RemoveImage(ref="busybox:a", reply=r))
            removed = await ask(conn, lambda r: RemoveImage(ref="busybox:a", force=True,
                                                            reply=r))
            assert removed == ImageRemoved(untagged=["busybox:a"], deleted=[])
            listing = await ask(conn, lambda r: ListImages(reply=r))
            assert isinstance(listing, ImageList)
            assert [(i.id, i.tags) for i in listing.images] == [(image_id, [])]

            with pytest.raises(Unsupported):
                await ask(conn, lambda r: Echo(data=b"x", reply=r))

    run(main)


HOSTILE = [
    ("traversal", [E("etc", "dir"), E("../escape", data=b"x")], "../escape", "traversal"),
    ("absolute", [E("/etc/passwd", data=b"x")], "/etc/passwd", "absolute path"),
    ("through a symlink", [E("link", "symlink", link="/"), E("link/etc/passwd", data=b"x")],
     "link/etc/passwd", "symlink"),
    ("hardlink escape", [E("hl", "hardlink", link="../../etc/shadow")], "hl", "traversal"),
    ("device node", [E("dev", "dir"), E("dev/sda", "block", dev=(8, 0))], "dev/sda",
     "device node"),
]


@pytest.mark.parametrize(("case", "entries", "entry", "reason"), HOSTILE,
                         ids=[h[0] for h in HOSTILE])
def test_hostile_layers_are_refused_and_leave_nothing(
        store: ImageStore, busybox_tar: Path, tmp_path: Path, case: str, entries: list[E],
        entry: str, reason: str) -> None:
    hostile = make_tar(entries)
    good = testimage.layer_changes()

    async def main() -> None:
        async with serving(ImageService(store)) as (conn, _):
            await upload(conn, busybox_tar.read_bytes(), "busybox:kept")
            before = disk_state(store.root)
            # as a plain rootfs tarball, and as the second layer of an OCI image
            for data in (hostile, oci_tar(tmp_path, [good, hostile], "evil:oci")):
                with pytest.raises(LayerRejected) as refused:
                    await upload(conn, data, "evil:latest")
                assert refused.value.details["entry"] == entry
                assert reason in refused.value.details["reason"]
                assert entry in str(refused.value)
                assert disk_state(store.root) == before
            listing = await ask(conn, lambda r: ListImages(reply=r))
            assert isinstance(listing, ImageList)
            assert [i.tags for i in listing.images] == [["busybox:kept"]]

    run(main)


def test_a_decompression_bomb_is_refused_at_import(store: ImageStore, busybox_tar: Path,
                                                   tmp_path: Path) -> None:
    """About 10 MB stored that unpacks to 10 GiB over ten files, with the default limits: the
    scan stops once the layer has unpacked past the floor at over 100 times its stored size,
    long before the 10 GiB (the old defaults accepted it)."""
    bomb = gzip_bomb(files=10, file_size=1 << 30)
    assert len(bomb) < 12 * 1024 * 1024
    # Its diff id would take hashing 10 GiB; the refusal comes before it is compared.
    layout = layout_from_layers(tmp_path / "layout", [(bomb, digest_bytes(b"unread"))],
                                "bomb:oci")

    async def main() -> None:
        async with serving(ImageService(store)) as (conn, _):
            await upload(conn, busybox_tar.read_bytes(), "busybox:kept")
            before = disk_state(store.root)
            for data, fmt in ((layout_tar(layout), "oci"), (bomb, "rootfs")):
                with pytest.raises(LayerRejected, match="times its stored size"):
                    await upload(conn, data, "bomb:latest", fmt=fmt)
                assert disk_state(store.root) == before

    run(main)


def test_a_lying_archive_is_refused_by_digest(store: ImageStore, tmp_path: Path) -> None:
    layout = layout_from_tars(tmp_path / "layout", [testimage.layer_changes()], "liar:1")
    [blob] = [p for p in (layout / "blobs" / "sha256").iterdir()
              if p.read_bytes()[:2] == b"\x1f\x8b"]
    blob.write_bytes(gz(make_tar([E("other", data=b"not what the digest says")])))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in ("oci-layout", "index.json", "blobs"):
            tar.add(layout / name, arcname=name)

    async def main() -> None:
        async with serving(ImageService(store)) as (conn, _):
            empty = disk_state(store.root)
            with pytest.raises(DigestMismatch, match="descriptor says"):
                await upload(conn, buffer.getvalue(), "")
            assert disk_state(store.root) == empty

    run(main)


def test_an_archive_over_the_size_limit_is_refused(store: ImageStore, busybox_tar: Path) -> None:
    async def main() -> None:
        async with serving(ImageService(store, max_import_bytes=300_000)) as (conn, _):
            empty = disk_state(store.root)
            with pytest.raises(InvalidImage, match="larger than the 300000-byte import limit"):
                await upload(conn, busybox_tar.read_bytes(), "big:1")
            assert disk_state(store.root) == empty

    run(main)


# --- cancelled imports ---------------------------------------------------------------------------
def test_a_client_that_vanishes_mid_import_leaves_nothing(store: ImageStore) -> None:
    async def main() -> None:
        async with serving(ImageService(store)) as (conn, recorder):
            empty = disk_state(store.root)
            writer, reader = channels.byte_pipe()
            await conn.sender.send(ImportImage(name="half:1", data=reader,
                                               reply=channels.pipe()[0]))
            # More than the pipe and the session window hold: this returns only once the
            # worker has read (and spooled) some of it.
            await writer.write(b"\x00" * (4 * 1024 * 1024))
            assert any(store.root.joinpath("spool").iterdir())
            await conn.close()
            kind, error = await recorder.next_outcome()
            assert kind == "ImportImage" and isinstance(error, PeerLost)
            assert disk_state(store.root) == empty

    run(main)


def test_a_client_that_aborts_the_stream_gets_its_own_error_back(store: ImageStore) -> None:
    async def main() -> None:
        async with serving(ImageService(store)) as (conn, recorder):
            empty = disk_state(store.root)
            writer, reader = channels.byte_pipe()
            reply_tx, reply_rx = channels.pipe()
            await conn.sender.send(ImportImage(name="half:1", data=reader, reply=reply_tx))
            await writer.write(b"\x00" * 100_000)
            writer.abort(InvalidArgument("cannot read the file any more"))
            with pytest.raises(ShoalError, match="cannot read the file any more"):
                await reply_rx.recv()
            kind, error = await recorder.next_outcome()
            assert kind == "ImportImage" and error is not None
            assert disk_state(store.root) == empty

    run(main)


def test_created_timestamps() -> None:
    assert created_timestamp("2023-11-14T22:13:20Z") == 1_700_000_000.0
    assert created_timestamp("2023-11-14T22:13:20.123456789Z") == pytest.approx(1_700_000_000.123)
    assert created_timestamp("2023-11-14T23:13:20+01:00") == 1_700_000_000.0
    assert created_timestamp("2023-11-14T22:13:20") == 1_700_000_000.0
    assert created_timestamp(None) == created_timestamp("") == created_timestamp("soon") == 0.0
