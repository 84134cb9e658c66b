"""The builder's config-only instructions, without root: what each writes into the image
config (Docker's shapes), the history, scoping of ENV over ARG, and a rebuild from the cache
giving the same image id."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from worker.build.builder import Builder, BuildOptions
from worker.build.errors import BuildFailed, DockerfileError
from worker.images import testimage
from worker.images.oci import ImageHealthcheck
from worker.images.store import Image, ImageStore

DOCKERFILE = """\
FROM busybox
MAINTAINER someone@example.com
ARG PORT=8080
ENV PORT=9090 HOME=/home/app
ENV LEGACY a value with spaces
LABEL a=1 "b c"="two words"
WORKDIR /srv
WORKDIR app
USER nobody:nogroup
EXPOSE ${PORT} 53/udp
VOLUME ["/data", "/logs"]
STOPSIGNAL SIGINT
SHELL ["/bin/sh", "-ec"]
HEALTHCHECK --interval=30s --timeout=1m30s --retries=3 CMD wget -q localhost || exit 1
ENTRYPOINT ["/bin/app"]
CMD serve --port $PORT
"""


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    if not testimage.BUSYBOX.exists():
        pytest.fail("the test image needs busybox-static (/bin/busybox)")
    store = ImageStore(tmp_path / "images")
    testimage.import_test_image(store)
    return store


def build(store: ImageStore, tmp_path: Path, dockerfile: str, **options: object) -> tuple[
        Image, str]:
    output: list[str] = []

    async def emit(text: str) -> None:
        output.append(text)

    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    builder = Builder(store, None, scratch, emit)
    image = asyncio.run(builder.build(BuildOptions(dockerfile, **options),  # type: ignore[arg-type]
                                      tmp_path))
    return image, "".join(output)


def test_metadata_instructions_write_dockers_config(store: ImageStore, tmp_path: Path) -> None:
    image, output = build(store, tmp_path, DOCKERFILE, tags=("meta:1",))
    config = image.config.config
    assert config is not None
    assert image.config.author == "someone@example.com"
    assert config.env is not None and config.env[-3:] == [
        "PORT=9090", "HOME=/home/app", "LEGACY=a value with spaces"]
    assert config.labels == {"org.shoal.test-image": "busybox",  # the base's, inherited
                             "a": "1", "b c": "two words"}
    assert config.working_dir == "/srv/app"
    assert config.user == "nobody:nogroup"
    assert config.exposed_ports == {"9090/tcp": {}, "53/udp": {}}  # ENV wins over ARG
    assert config.volumes == {"/data": {}, "/logs": {}}
    assert config.stop_signal == "SIGINT"
    assert config.shell == ["/bin/sh", "-ec"]
    assert config.healthcheck == ImageHealthcheck(
        test=["CMD-SHELL", "wget -q localhost || exit 1"], interval=30_000_000_000,
        timeout=90_000_000_000, retries=3)
    assert config.entrypoint == ["/bin/app"]
    assert config.cmd == ["/bin/sh", "-ec", "serve --port $PORT"]  # the shell expands it
    history = image.config.history or []
    assert [h.created_by for h in history[-3:]] == [
        "HEALTHCHECK --interval=30s --timeout=1m30s --retries=3 CMD wget -q localhost || "
        "exit 1", 'ENTRYPOINT ["/bin/app"]', "CMD serve --port $PORT"]
    assert len(history) == 17, [h.created_by for h in history]
    assert all(h.empty_layer for h in history[-15:])
    assert len(image.layers) == 2  # busybox's own: no instruction here makes a layer
    assert "Step 16/16 : CMD serve --port $PORT" in output
    assert output.endswith(f"Successfully built {image.short_id}\nSuccessfully tagged meta:1\n")
    again, output = build(store, tmp_path, DOCKERFILE, tags=("meta:1",))
    assert again.id == image.id
    assert output.count(" ---> Using cache") == 15
    fresh, _ = build(store, tmp_path, DOCKERFILE, no_cache=True)
    assert fresh.id != image.id  # new history times
    raw = msgspec.json.decode(store.blobs.read(image.id, 1 << 20))
    assert raw["config"]["Healthcheck"]["Test"][0] == "CMD-SHELL"


def test_entrypoint_drops_an_inherited_cmd_but_not_its_own(store: ImageStore,
                                                            tmp_path: Path) -> None:
    image, _ = build(store, tmp_path, "FROM busybox\nENTRYPOINT [\"top\"]\n")
    assert image.config.config is not None and image.config.config.cmd is None
    image, _ = build(store, tmp_path, "FROM busybox\nCMD [\"-b\"]\nENTRYPOINT [\"top\"]\n")
    assert image.config.config is not None and image.config.config.cmd == ["-b"]


def test_target_and_stage_errors(store: ImageStore, tmp_path: Path) -> None:
    two = "FROM busybox AS first\nLABEL stage=first\nFROM first\nLABEL stage=second\n"
    image, output = build(store, tmp_path, two, target="first")
    assert image.config.config is not None
    assert (image.config.config.labels or {})["stage"] == "first"
    assert "Step 2/2" in output
    with pytest.raises(DockerfileError, match="target stage 'nope' could not be found"):
        build(store, tmp_path, two, target="nope")
    with pytest.raises(BuildFailed, match=r"Dockerfile:1: the base image 'absent' is not in"):
        build(store, tmp_path, "FROM absent\n")
    with pytest.raises(BuildFailed, match="Dockerfile:2: RUN needs the native runtime"):
        build(store, tmp_path, "FROM busybox\nRUN true\n")
    with pytest.raises(DockerfileError, match="Dockerfile:2: SHELL requires the arguments"):
        build(store, tmp_path, "FROM busybox\nSHELL /bin/bash -c\n")
    with pytest.raises(DockerfileError, match=r"Dockerfile:2: HEALTHCHECK --interval=soon"):
        build(store, tmp_path, "FROM busybox\nHEALTHCHECK --interval=soon CMD true\n")


def test_scratch_with_arg_in_from(store: ImageStore, tmp_path: Path) -> None:
    image, _ = build(store, tmp_path, "ARG BASE=scratch\nFROM $BASE\nENV A=1\n",
                     build_args={"BASE": "scratch"})
    assert image.layers == []
    assert image.config.config is not None and "A=1" in (image.config.config.env or [])
