"""``shoal build`` end to end against a native worker: a three-stage build whose image runs,
the layer cache and its invalidation, ``.dockerignore``, build-arg scoping, errors naming the
Dockerfile line, a failing RUN that leaves nothing behind; ``save``/``load`` round trips;
``image prune``, ``rmi`` of shared layers and the collection of a blob no image references."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvloop

from tests.helpers.worker_process import Worker
from worker.images import ImageStore, testimage
from worker.images.testimage import import_test_image
from worker.storage import mounts
from worker.teardown import tear_down_worker

pytestmark = pytest.mark.root

THREE_STAGES = """\
ARG GREETING=hello
FROM busybox AS base
ARG GREETING
WORKDIR /src
COPY greeting.txt ./
RUN echo "$GREETING from $(cat greeting.txt)" > message

FROM base AS tools
RUN mkdir -p /out && cp /src/message /out/message && echo tool > /out/tool

FROM busybox
LABEL org.example.stage=final
COPY --from=tools /out/ /app/
COPY --from=base /src/greeting.txt /app/
ENV WHO=shoal
CMD ["sh", "-c", "cat /app/message /app/tool /app/greeting.txt; echo $WHO"]
"""


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    root = tmp_path_factory.mktemp("build")
    import_test_image(ImageStore(root / "worker" / "images"))
    node = Worker(root / "worker", "native")
    node.start()
    try:
        yield node
    finally:
        if node.proc is None:
            node.start()
        for ref in node.shoal("ps", "-aq", check=False).stdout.split():
            node.shoal("rm", "-f", ref, check=False)
        node.kill(signal.SIGTERM)
        uvloop.run(tear_down_worker(root / "worker"))


def make_context(path: Path, dockerfile: str, files: dict[str, str]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "Dockerfile").write_text(dockerfile)
    for name, content in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(content)
    return path


def build(worker: Worker, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return worker.shoal("build", *args, check=check)


def blobs(worker: Worker) -> set[str]:
    return {p.name for p in (worker.state_dir / "images" / "oci" / "blobs" / "sha256").iterdir()}


def steps_cached(output: str) -> list[bool]:
    """For each step after a FROM-less start: whether it said ``Using cache``."""
    parts = re.split(r"^Step \d+/\d+ : ", output, flags=re.M)[1:]
    return [" ---> Using cache" in part for part in parts]


def test_three_stage_build_runs(worker: Worker, tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "ctx", THREE_STAGES, {"greeting.txt": "the context\n"})
    out = build(worker, "-t", "three:1", str(ctx)).stdout
    assert "Step 1/14 : ARG GREETING=hello" in out
    assert "Successfully tagged three:1" in out
    ran = worker.shoal("run", "--rm", "three:1").stdout
    assert ran.splitlines() == ["hello from the context", "tool", "the context", "shoal"]
    info = worker.shoal("image", "inspect", "three:1").stdout
    assert "org.example.stage" in info
    # the final image has busybox's two layers plus the two COPYs, nothing of stage 1 or 2
    assert len(json.loads(info)[0]["layers"]) == 4


def test_cache_reuses_layers_and_a_changed_file_invalidates_from_its_step(
        worker: Worker, tmp_path: Path) -> None:
    dockerfile = ("FROM busybox\nRUN echo one > /one\nCOPY data.txt /data.txt\n"
                  "RUN cat /data.txt > /copy\nCMD [\"cat\", \"/copy\"]\n")
    ctx = make_context(tmp_path / "ctx", dockerfile, {"data.txt": "first\n"})
    first = build(worker, "-q", "-t", "cached:1", str(ctx)).stdout.strip()
    again = build(worker, "-t", "cached:1", str(ctx)).stdout
    assert steps_cached(again) == [False, True, True, True, True]  # FROM never says it
    assert first[7:19] in again  # the same image id: history times come from the cache
    (ctx / "data.txt").write_text("second\n")
    changed = build(worker, "-t", "cached:1", str(ctx)).stdout
    assert steps_cached(changed) == [False, True, False, False, False]
    assert worker.shoal("run", "--rm", "cached:1").stdout == "second\n"
    no_cache = build(worker, "--no-cache", "-t", "cached:1", str(ctx)).stdout
    assert not any(steps_cached(no_cache))


def test_dockerignore_keeps_files_out_of_the_context(worker: Worker, tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "ctx", "FROM busybox\nCOPY . /ctx\nCMD [\"find\", \"/ctx\"]\n",
                       {"keep.txt": "k", "secret.key": "s", "logs/a.log": "a",
                        "logs/keep.log": "b", "sub/deep/secret.key": "s",
                        ".dockerignore": "**/*.key\nlogs/*.log\n!logs/keep.log\n"})
    build(worker, "-t", "ignored:1", str(ctx))
    found = set(worker.shoal("run", "--rm", "ignored:1").stdout.split())
    assert "/ctx/keep.txt" in found and "/ctx/logs/keep.log" in found
    assert not {"/ctx/secret.key", "/ctx/logs/a.log", "/ctx/sub/deep/secret.key"} & found


def test_build_args_are_scoped_per_stage(worker: Worker, tmp_path: Path) -> None:
    dockerfile = ("ARG V=global\n"
                  "FROM busybox AS first\n"
                  "RUN echo \"unscoped=[$V]\"\n"
                  "ARG V\n"
                  "RUN echo \"scoped=[$V]\"\n"
                  "ARG W=default\n"
                  "RUN echo \"w=[$W]\"\n"
                  "FROM busybox\n"
                  "RUN echo \"second=[$V]\"\n")
    ctx = make_context(tmp_path / "ctx", dockerfile, {})
    out = build(worker, "--no-cache", str(ctx)).stdout
    assert "unscoped=[]" in out and "scoped=[global]" in out and "w=[default]" in out
    assert "second=[]" in out
    out = build(worker, "--no-cache", "--build-arg", "V=cli", "--build-arg", "W=given",
                "--build-arg", "UNUSED=1", str(ctx)).stdout
    assert "scoped=[cli]" in out and "w=[given]" in out and "second=[]" in out
    assert "[Warning] One or more build-args ['UNUSED'] were not consumed" in out
    # an ARG is in a RUN's environment but not in the image's config
    assert "second=[]" in out


def test_a_dockerfile_error_names_its_line(worker: Worker, tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "ctx", "FROM busybox\n\nRUN true\nRUNN false\n", {})
    result = build(worker, str(ctx), check=False)
    assert result.returncode == 1
    assert "Dockerfile:4: unknown instruction: RUNN" in result.stderr
    ctx = make_context(tmp_path / "ctx2", "FROM busybox\nCOPY missing.txt /\n", {})
    result = build(worker, str(ctx), check=False)
    assert "Dockerfile:2: COPY failed: file not found in build context" in result.stderr
    ctx = make_context(tmp_path / "ctx3", "FROM busybox\nADD http://example.com/x /x\n", {})
    result = build(worker, str(ctx), check=False)
    assert "Dockerfile:2: ADD http://example.com/x: downloading needs the internet" \
        in result.stderr


def test_a_failing_run_reports_its_exit_code_and_leaves_nothing(
        worker: Worker, tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "ctx", "FROM busybox\nRUN echo partial > /file && "
                       "echo said-before && exit 7\n", {})
    before = blobs(worker)
    result = build(worker, "-t", "broken:1", str(ctx), check=False)
    assert result.returncode == 1
    assert "said-before" in result.stdout
    assert "Dockerfile:2: The command '/bin/sh -c echo partial > /file && echo said-before " \
        "&& exit 7' returned a non-zero code: 7" in result.stderr
    assert blobs(worker) == before
    # nothing but the context the worker keeps for the next build to unpack over
    assert {p.name for p in (worker.state_dir / "build").iterdir()} <= {"context"}
    assert mounts.mounts_under(worker.state_dir / "build") == []
    assert "broken" not in worker.shoal("images").stdout
    listed = worker.shoal("runtime", "--root", str(worker.state_dir / "runtime"), "list",
                          "--format", "json").stdout
    assert "shoal-build" not in listed and listed.strip().startswith("[")


def test_add_unpacks_an_archive_copy_chowns_by_name_and_copies_from_an_image(
        worker: Worker, tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "ctx", "FROM busybox\nADD files.tar /unpacked/\n"
                       "COPY --chown=nobody:nogroup plain.txt /owned\n"
                       "COPY --from=busybox:latest /etc/motd /motd-from-image\n"
                       "CMD [\"sh\", \"-c\", \"cat /unpacked/inner/a.txt; stat -c %u:%g "
                       "/owned; cat /motd-from-image\"]\n",
                       {"plain.txt": "p", "inner/a.txt": "from the archive\n"})
    with tarfile.open(ctx / "files.tar", "w") as tar:
        tar.add(ctx / "inner", arcname="inner")
    build(worker, "-t", "added:1", str(ctx))
    assert worker.shoal("run", "--rm", "added:1").stdout.split("\n")[:3] == [
        "from the archive", "65534:65534", testimage.MOTD.strip()]


@pytest.mark.parametrize("fmt", ["docker", "oci"])
def test_save_and_load_round_trip(worker: Worker, tmp_path: Path, fmt: str) -> None:
    ctx = make_context(tmp_path / "ctx", "FROM busybox\nRUN echo saved > /saved\n"
                       "CMD [\"cat\", \"/saved\"]\n", {})
    image_id = build(worker, "-q", "-t", f"saved-{fmt}:1", str(ctx)).stdout.strip()
    archive = tmp_path / "saved.tar"
    worker.shoal("save", "--format", fmt, "-o", str(archive), f"saved-{fmt}:1")
    worker.shoal("rmi", f"saved-{fmt}:1")
    loaded = worker.shoal("load", "-i", str(archive)).stdout
    assert f"Loaded image: saved-{fmt}:1" in loaded
    assert worker.shoal("images", "-q").stdout.split().count(image_id[7:19]) == 1
    assert worker.shoal("run", "--rm", f"saved-{fmt}:1").stdout == "saved\n"
    # import (the older verb) reads the same archive to the same image
    worker.shoal("rmi", f"saved-{fmt}:1")
    worker.shoal("image", "import", str(archive))
    assert image_id[7:19] in worker.shoal("images", "-q").stdout


def test_prune_rmi_of_shared_layers_and_gc(worker: Worker, tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "ctx", "FROM busybox\nRUN echo a > /a\n", {})
    build(worker, "-t", "shared:a", str(ctx))
    ctx_b = make_context(tmp_path / "ctxb", "FROM busybox\nRUN echo b > /b\n", {})
    build(worker, "-t", "shared:b", str(ctx_b))
    build(worker, str(make_context(tmp_path / "dangling", "FROM busybox\nENV X=1\n", {})))
    pruned = worker.shoal("image", "prune").stdout
    assert "deleted: sha256:" in pruned and "Total reclaimed space" in pruned
    assert "<none>" not in worker.shoal("images").stdout
    before = blobs(worker)
    worker.shoal("rmi", "shared:a")
    after = blobs(worker)
    gone = before - after
    assert len(gone) == 3  # shared:a's config, manifest and its own layer; nothing shared
    for ref in ("busybox", "shared:b"):
        assert worker.shoal("run", "--rm", ref, "true", check=False).returncode == 0
    # a blob left by an import killed before it recorded its image is collected at start
    stray = os.urandom(64)
    name = hashlib.sha256(stray).hexdigest()
    blob_dir = worker.state_dir / "images" / "oci" / "blobs" / "sha256"
    worker.kill(signal.SIGKILL)
    (blob_dir / name).write_bytes(stray)
    worker.start()
    assert not (blob_dir / name).exists()
    assert "shared" in worker.shoal("images").stdout


REPRODUCIBLE = """\
FROM busybox
COPY data.txt /data/
RUN mkdir /made && echo made > /made/file
ENV STAGE=done
"""


def test_source_date_epoch_makes_one_image_of_one_context(worker: Worker,
                                                          tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "ctx", REPRODUCIBLE, {"data.txt": "data\n"})
    epoch = 1_700_000_000  # before the context's file was written: its time is clamped too
    first = build(worker, "-q", "--no-cache", "--build-arg", f"SOURCE_DATE_EPOCH={epoch}",
                  "-t", "repro:1", str(ctx)).stdout.strip()
    second = worker.shoal("build", "-q", "--no-cache", "-t", "repro:2", str(ctx),
                          env={"SOURCE_DATE_EPOCH": str(epoch)}).stdout.strip()
    assert first == second  # the CLI passes its environment's epoch as the build argument
    assert build(worker, "-q", "--no-cache", "-t", "repro:3", str(ctx)).stdout.strip() != first
    store = worker.state_dir / "images" / "oci" / "blobs" / "sha256"
    config = json.loads((store / first.removeprefix("sha256:")).read_bytes())
    assert config["created"] == "2023-11-14T22:13:20Z"
    assert {entry["created"] for entry in config["history"][-3:]} == {config["created"]}
    built = config["rootfs"]["diff_ids"][-2:]  # the COPY's and the RUN's (stored uncompressed)
    for diff_id in built:
        with tarfile.open(store / diff_id.removeprefix("sha256:")) as layer:
            mtimes = {member.name: member.mtime for member in layer}
        assert max(mtimes.values()) == epoch, mtimes
    bad = build(worker, "--build-arg", "SOURCE_DATE_EPOCH=yesterday", str(ctx), check=False)
    assert bad.returncode != 0 and "SOURCE_DATE_EPOCH='yesterday'" in bad.stderr
