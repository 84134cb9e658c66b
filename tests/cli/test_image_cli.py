"""The image commands end to end: the CLI (in process through click's runner, and as its own
process) against an image service listening on tcp loopback in a background thread."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import uvloop
from click.testing import CliRunner, Result

import channels
from cli.images import IMAGE_COMMANDS, human_size, image_rows, split_tag
from tests.helpers.image_layers import E, make_tar
from worker.image_service import ImageService
from worker.images import ImageStore, testimage
from worker.images.digest import hex_of

ROOT = Path(__file__).resolve().parents[2]
# The commands as the shoal CLI will hold them (without its logging set-up, which is global).
SHOAL = click.Group("shoal", commands=IMAGE_COMMANDS)


class ImageWorker:
    """An ``ImageService`` on its own event loop in a thread, listening on tcp loopback."""

    def __init__(self, state_dir: Path) -> None:
        self.store = ImageStore(state_dir / "images")
        self.address = ""
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="image-worker")

    def _run(self) -> None:
        uvloop.run(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        try:
            listener = await channels.listen("tcp://127.0.0.1:0")
        except BaseException as exc:
            self._ready.put(exc)
            raise
        server = asyncio.create_task(channels.serve(listener.receiver,
                                                    ImageService(self.store).handle))
        self._ready.put(listener.address)
        await self._stop.wait()
        await listener.close()
        await server

    def start(self) -> None:
        self._ready: queue.Queue[str | BaseException] = queue.Queue()
        self._thread.start()
        ready = self._ready.get(timeout=10)
        if isinstance(ready, BaseException):
            raise ready
        self.address = ready

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        assert not self._thread.is_alive()

    def shoal(self, *args: str, input: bytes | None = None) -> Result:
        return CliRunner().invoke(SHOAL, [args[0], "--host", self.address, *args[1:]]
                                  if args[0] != "image" else
                                  [*args[:2], "--host", self.address, *args[2:]],
                                  input=input, catch_exceptions=False)


@pytest.fixture(scope="module")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not testimage.BUSYBOX.exists():
        pytest.fail("the test image needs busybox-static (/bin/busybox)")
    return testimage.build_tar(tmp_path_factory.mktemp("img") / "busybox.tar")


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[ImageWorker]:
    node = ImageWorker(tmp_path / "worker")
    node.start()
    try:
        yield node
    finally:
        node.stop()


def test_import_images_inspect_rmi(worker: ImageWorker, busybox_tar: Path) -> None:
    result = worker.shoal("image", "import", str(busybox_tar), "busybox:test")
    assert (result.exit_code, result.output) == (0, "Loaded image: busybox:test\n")

    rows = worker.shoal("images").output.splitlines()
    assert rows[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    [row] = rows[1:]
    assert row.split()[:2] == ["busybox", "test"]
    assert row.endswith("MB")

    listed = json.loads(worker.shoal("images", "--format", "json").output)
    assert [image["tags"] for image in listed] == [["busybox:test"]]
    image_id = listed[0]["id"]
    assert worker.shoal("image", "ls", "-q").output == hex_of(image_id)[:12] + "\n"

    inspected = worker.shoal("image", "inspect", "busybox:test", hex_of(image_id)[:12])
    assert inspected.exit_code == 0
    infos = json.loads(inspected.output)
    assert [info["summary"]["id"] for info in infos] == [image_id, image_id]
    assert infos[0]["config"]["cmd"] == ["sh"]
    assert len(infos[0]["layers"]) == 2

    missing = worker.shoal("image", "inspect", "busybox:test", "nope")
    assert missing.exit_code == 1
    assert len(json.loads(missing.stdout)) == 1
    assert "ImageNotFound: no such image: nope" in missing.stderr

    removed = worker.shoal("rmi", "busybox:test", "nope")
    assert removed.exit_code == 1
    assert removed.stdout == f"Untagged: busybox:test\nDeleted: {image_id}\n"
    assert "ImageNotFound" in removed.stderr
    assert worker.shoal("images", "-q").output == ""


def test_import_a_layout_directory_and_stdin(worker: ImageWorker, tmp_path: Path) -> None:
    layout = testimage.build_layout(tmp_path / "layout", "busybox:dir")
    assert worker.shoal("image", "import", str(layout)).output == "Loaded image: busybox:dir\n"
    rootfs = testimage.layer_changes()
    result = worker.shoal("image", "import", "--format", "rootfs", "-", "changes:1",
                          input=rootfs)
    assert (result.exit_code, result.output) == (0, "Loaded image: changes:1\n")
    untagged = worker.shoal("image", "import", "-", input=rootfs)
    assert untagged.output.startswith("Loaded image ID: sha256:")
    tags = [row.split()[:2] for row in worker.shoal("images").output.splitlines()[1:]]
    assert sorted(tags) == [["<none>", "<none>"], ["busybox", "dir"], ["changes", "1"]]
    # removing an image with several rows: by tag untags; the rest stays
    assert worker.shoal("image", "rm", "changes:1").exit_code == 0


def test_refusals_exit_non_zero_with_the_typed_error(worker: ImageWorker, tmp_path: Path,
                                                     busybox_tar: Path) -> None:
    hostile = tmp_path / "hostile.tar"
    hostile.write_bytes(make_tar([E("ok", data=b"fine"), E("../../etc/cron.d/x", data=b"x")]))
    result = worker.shoal("image", "import", str(hostile), "evil:1")
    assert result.exit_code == 1
    assert "LayerRejected" in result.stderr
    assert "'../../etc/cron.d/x' rejected: path traversal" in result.stderr

    bad = worker.shoal("image", "import", str(busybox_tar), "UPPER:case")
    assert bad.exit_code == 1 and "InvalidReference" in bad.stderr
    absent = worker.shoal("image", "import", str(tmp_path / "absent.tar"))
    assert absent.exit_code == 2 and "does not exist" in absent.stderr
    assert worker.shoal("images", "-q").output == ""
    assert sorted(p.name for p in worker.store.blobs.dir.iterdir()) == []


def test_the_module_runs_as_its_own_program(worker: ImageWorker, busybox_tar: Path) -> None:
    def shoal(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cli.images", *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PYTHONPATH": str(ROOT),
                                   "SHOAL_HOST": worker.address})

    imported = shoal("image", "import", str(busybox_tar))
    assert (imported.returncode, imported.stdout) == (0, "Loaded image: busybox:latest\n")
    assert shoal("images").stdout.splitlines()[1].split()[:2] == ["busybox", "latest"]
    gone = shoal("rmi", "busybox", "busybox")
    assert gone.returncode == 1
    assert gone.stdout.startswith("Untagged: busybox:latest\nDeleted: sha256:")
    assert "ImageNotFound" in gone.stderr


@pytest.mark.parametrize(("size", "shown"), [
    (0, "0B"), (999, "999B"), (1000, "1kB"), (1234, "1.23kB"), (999_999, "1MB"),
    (4_190_000, "4.19MB"), (123_456_789, "123MB"), (5 * 10**12, "5TB"),
])
def test_human_size(size: int, shown: str) -> None:
    assert human_size(size) == shown


def test_rows_split_repository_and_tag() -> None:
    assert split_tag("busybox:latest") == ("busybox", "latest")
    assert split_tag("localhost:5000/app:v2") == ("localhost:5000/app", "v2")
    assert split_tag("localhost:5000/app") == ("localhost:5000/app", "<none>")
    from protocol.observed import ImageSummary

    old = ImageSummary(id="sha256:" + "a" * 64, tags=["a:1", "b:2"], size=1000, created=100.0)
    new = ImageSummary(id="sha256:" + "b" * 64, size=10, created=3700.0)
    assert image_rows([old, new], now=3700.0) == [
        ["<none>", "<none>", "b" * 12, "Less than a second ago", "10B"],
        ["a", "1", "a" * 12, "1 hour ago", "1kB"],
        ["b", "2", "a" * 12, "1 hour ago", "1kB"],
    ]
