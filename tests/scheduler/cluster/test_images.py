"""The image verbs of a scheduler: the leader keeps the cluster's images and answers imports,
lists, resolves and blob fetches; a standby names the leader; a scheduler without a state dir
keeps none."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cli.images import upload_to
from protocol.errors import Unavailable, Unsupported
from protocol.messages import ImageList, ImageResolved, ListImages, ResolveImage
from scheduler.store import EmbeddedEtcd, Layout
from tests.helpers.in_process_cluster import ask, scheduler
from tests.helpers.store_fixtures import Runner
from worker.images.testimage import build_layout


def test_the_leader_keeps_images_and_a_standby_names_it(run: Runner[None], etcd: EmbeddedEtcd,
                                                        layout: Layout, tmp_path: Path) -> None:
    source = build_layout(tmp_path / "layout")

    async def body() -> None:
        async with scheduler(etcd, layout, "s1", state_dir=tmp_path / "s1") as s1:
            await s1.leading.wait()
            imported = await asyncio.to_thread(upload_to, s1.address, source)
            [image] = imported.images
            assert image.tags == ["busybox:latest"]
            listed = await ask(s1.address, lambda r: ListImages(reply=r))
            assert isinstance(listed, ImageList) and [i.id for i in listed.images] == [image.id]
            resolved = await ask(s1.address, lambda r: ResolveImage(ref="busybox", reply=r))
            assert isinstance(resolved, ImageResolved)
            assert (resolved.id, resolved.manifest_digest, resolved.tags) == \
                (image.id, image.digest, ["busybox:latest"])
            assert (tmp_path / "s1" / "images" / "oci" / "index.json").is_file()
            async with scheduler(etcd, layout, "s2", state_dir=tmp_path / "s2") as s2:
                await s2.leader_known.wait()
                for make in (lambda r: ListImages(reply=r),
                             lambda r: ResolveImage(ref="busybox", reply=r)):
                    with pytest.raises(Unavailable) as err:
                        await ask(s2.address, make)
                    assert err.value.details["leader"] == s1.address

    run(body)


def test_a_scheduler_without_a_state_dir_keeps_no_images(run: Runner[None], etcd: EmbeddedEtcd,
                                                          layout: Layout) -> None:
    async def body() -> None:
        async with scheduler(etcd, layout, "s1") as s1:
            await s1.leading.wait()
            with pytest.raises(Unsupported, match="keeps no images"):
                await ask(s1.address, lambda r: ListImages(reply=r))

    run(body)
