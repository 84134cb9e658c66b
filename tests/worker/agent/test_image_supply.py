"""Where a cluster's worker gets an image it lacks (``ImageSupply``), against a real registry
(Debian's docker-registry on loopback) and the scheduler's image service over real channels:
the node's own platform from a multi-platform index, one pull however many containers want
it, the cluster's store first when it holds the image for this platform, and the cluster's
store pulling for a worker that cannot reach the registry."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import channels
from bench._registry_server import RunningRegistry, available, registry
from protocol.messages import Message, PullImage, RegistryOptions
from protocol.specs import Platform
from scheduler.cluster.images import ClusterImages
from tests.helpers.bounded_run import run
from tests.helpers.registry_images import blob_gets, put_index, small_image
from tests.helpers.requirements import missing
from worker.agent.image_supply import ImageSupply
from worker.images import ImageNotFound, ImageStore
from worker.images.digest import digest_bytes
from worker.images.fetch import ImageFetcher

ARM64 = Platform(os="linux", arch="arm64")
AMD64 = Platform(os="linux", arch="amd64")


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    why = available()
    if why is not None:
        missing(why)
    with registry(tmp_path_factory.mktemp("supply-registry")) as running:
        yield running


@contextlib.asynccontextmanager
async def scheduler(images: ClusterImages) -> AsyncIterator[channels.Sender]:
    """The scheduler's image verbs as a worker's key reaches them: ``image.pull`` from a
    worker is a pull for its node (``pull_for_node``)."""

    async def handle(message: Message) -> Message | None:
        if isinstance(message, PullImage):
            return await images.pull_for_node(message)
        return await images.handle(message)

    async with await channels.listen("tcp://127.0.0.1:0") as listener:
        server = asyncio.create_task(channels.serve(listener.receiver, handle))
        try:
            async with await channels.connect(listener.address) as conn:
                yield conn.sender
        finally:
            server.cancel()
            await asyncio.gather(server, return_exceptions=True)


def _index(registry_: RunningRegistry, repository: str) -> tuple[str, dict[str, str]]:
    """A two-platform index under tag ``t``; the reference and each platform's config id."""
    images = [small_image(f"{repository} {arch}".encode(), arch)
              for arch in ("amd64", "arm64")]
    scheme = "https" if registry_.ca_pem else "http"
    run(lambda: put_index(f"{scheme}://{registry_.address}", repository, images, "t",
                          ca_pem=registry_.ca_pem), timeout=30)
    return (f"{registry_.address}/{repository}:t",
            {image.platform.architecture: digest_bytes(image.config) for image in images})


def test_an_arm64_node_pulls_the_arm64_entry_once_for_fifty_containers(
        plain: RunningRegistry, tmp_path: Path) -> None:
    ref, ids = _index(plain, "supply/multi")
    cluster = ClusterImages(tmp_path / "scheduler")
    supply = ImageSupply(ImageFetcher(ImageStore(tmp_path / "worker")), ARM64)

    async def body() -> None:
        async with scheduler(cluster) as sender:
            images = await asyncio.gather(*(supply.ensure(ref, sender) for _ in range(50)))
            assert {image.id for image in images} == {ids["arm64"]}

    run(body, timeout=60)
    assert supply.pulled_directly == 1 and supply.pulled_through_cluster == 0
    assert blob_gets(plain.log, "supply/multi") == 2  # its config and its layer, once
    assert supply.store.get(ref).config.architecture == "arm64"
    assert cluster.store.images() == []  # straight from the registry, not through the cluster


def test_the_clusters_store_serves_its_platform_and_not_another(
        plain: RunningRegistry, tmp_path: Path) -> None:
    ref, ids = _index(plain, "supply/held")
    cluster = ClusterImages(tmp_path / "scheduler")
    amd = ImageSupply(ImageFetcher(ImageStore(tmp_path / "amd")), AMD64)
    arm = ImageSupply(ImageFetcher(ImageStore(tmp_path / "arm")), ARM64)

    async def body() -> None:
        await cluster.service.pull(PullImage(ref=ref, platform="linux/amd64", reply=None))
        async with scheduler(cluster) as sender:
            assert (await amd.ensure(ref, sender)).id == ids["amd64"]
            assert (await arm.ensure(ref, sender)).id == ids["arm64"]

    before = blob_gets(plain.log, "supply/held")
    run(body, timeout=60)
    # amd64 came from the cluster's store; arm64, which it lacks, from the registry.
    assert (amd.pulled_directly, arm.pulled_directly) == (0, 1)
    assert blob_gets(plain.log, "supply/held") - before == 4  # the cluster's 2, arm64's 2
    assert amd.store.get(ref).tags == (ref,)


def test_a_registry_out_of_reach_is_pulled_through_the_clusters_store(
        tmp_path: Path) -> None:
    why = available()
    if why is not None:
        missing(why)
    with registry(tmp_path / "tls", tls=True) as secured:
        assert secured.ca_file is not None
        certs = tmp_path / "certs.d"
        (certs / secured.address).mkdir(parents=True)
        (certs / secured.address / "ca.crt").write_text(secured.ca_pem)
        ref, ids = _index(secured, "supply/tls")
        # The scheduler trusts the registry's CA; the worker does not (no route, another
        # network, a CA it lacks: the registry is out of its reach all the same).
        cluster = ClusterImages(tmp_path / "scheduler", registry_certs=(certs,))
        supply = ImageSupply(ImageFetcher(ImageStore(tmp_path / "worker")), ARM64,
                             certs_dirs=())

        async def body() -> None:
            async with scheduler(cluster) as sender:
                image = await supply.ensure(ref, sender, RegistryOptions())
                assert image.id == ids["arm64"]

        run(body, timeout=60)
    assert (supply.pulled_directly, supply.pulled_through_cluster) == (0, 1)
    assert supply.store.get(ref).tags == (ref,)
    assert [image.id for image in cluster.store.images()] == [ids["arm64"]]


def test_an_id_the_cluster_lacks_is_not_pulled(tmp_path: Path) -> None:
    cluster = ClusterImages(tmp_path / "scheduler")
    supply = ImageSupply(ImageFetcher(ImageStore(tmp_path / "worker")), AMD64)

    async def body() -> None:
        async with scheduler(cluster) as sender:
            with pytest.raises(ImageNotFound):
                await supply.ensure("sha256:" + "a" * 64, sender)

    run(body, timeout=30)
    assert supply.pulled_directly == supply.pulled_through_cluster == 0
