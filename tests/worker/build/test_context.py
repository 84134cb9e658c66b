"""COPY/ADD path rules on a real context directory (no root): Docker's destination rules,
wildcards, directories copied by content, refusals, and what keys the cache."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from worker.build.context import content_digest, plan_copy, unpack_context
from worker.build.errors import BuildContextError, BuildFailed


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    (root / "src" / "sub").mkdir(parents=True)
    (root / "src" / "a.py").write_text("a")
    (root / "src" / "sub" / "b.py").write_text("b")
    (root / "one.txt").write_text("1")
    (root / "two.txt").write_text("2")
    return root


def targets(root: Path, sources: list[str], dest: str, workdir: str = "/",
            dirs: tuple[str, ...] = ()) -> list[str]:
    items = plan_copy(root, sources, dest, workdir, keyword="COPY",
                      is_dir_in_image=lambda p: p in dirs)
    return [item.target for item in items]


@pytest.mark.parametrize(("sources", "dest", "workdir", "dirs", "expected"), [
    (["one.txt"], "/x", "/", (), ["/x"]),
    (["one.txt"], "/x/", "/", (), ["/x/one.txt"]),
    (["one.txt"], "/etc", "/", ("/etc",), ["/etc/one.txt"]),  # an existing directory
    (["one.txt"], "rel", "/app", (), ["/app/rel"]),
    (["one.txt"], ".", "/app", (), ["/app/one.txt"]),
    (["one.txt"], "./", "/app", (), ["/app/one.txt"]),
    (["*.txt"], "/d/", "/", (), ["/d/one.txt", "/d/two.txt"]),
    (["src"], "/s", "/", (), ["/s", "/s/a.py", "/s/sub", "/s/sub/b.py"]),
    (["src/sub/"], "/s/", "/", (), ["/s", "/s/b.py"]),
    (["../one.txt"], "/x", "/", (), ["/x"]),  # clamped to the context, as Docker does
])
def test_destination_rules(ctx: Path, sources: list[str], dest: str, workdir: str,
                           dirs: tuple[str, ...], expected: list[str]) -> None:
    assert targets(ctx, sources, dest, workdir, dirs) == expected


def test_refusals(ctx: Path, tmp_path: Path) -> None:
    with pytest.raises(BuildFailed, match="the destination must be a directory and end with"):
        targets(ctx, ["one.txt", "two.txt"], "/x")
    with pytest.raises(BuildFailed, match="no source files were specified"):
        targets(ctx, ["*.md"], "/x/")
    with pytest.raises(BuildFailed, match="file not found in build context"):
        targets(ctx, ["missing"], "/x")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("s")
    os.symlink(tmp_path / "outside", ctx / "escape")
    with pytest.raises(BuildFailed, match="outside the build context"):
        targets(ctx, ["escape/secret"], "/x")
    items = plan_copy(ctx, ["escape"], "/x", "/", keyword="COPY",
                      is_dir_in_image=lambda p: False)
    assert [i.target for i in items] == ["/x"]  # the link itself is copied, not followed


def test_content_digest_follows_content_mode_and_owner_not_times(ctx: Path) -> None:
    def key(owner: tuple[int, int] | None = None) -> str:
        return content_digest(plan_copy(ctx, ["src"], "/s", "/", keyword="COPY",
                                        is_dir_in_image=lambda p: False), owner, None)

    first = key()
    os.utime(ctx / "src" / "a.py", (1, 1))
    assert key() == first
    assert key((1000, 1000)) != first
    os.chmod(ctx / "src" / "a.py", 0o755)
    assert key() != first
    os.chmod(ctx / "src" / "a.py", 0o644)
    (ctx / "src" / "a.py").write_text("changed")
    assert key() != first


def test_a_context_entry_that_climbs_out_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "ctx.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("link")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc"
        tar.addfile(info)
        data = b"owned"
        info = tarfile.TarInfo("link/passwd")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    before = Path("/etc/passwd").read_bytes()
    with pytest.raises(BuildContextError, match="link/passwd"), archive.open("rb") as stream:
        unpack_context(stream, tmp_path / "out")
    assert Path("/etc/passwd").read_bytes() == before
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("../up")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(BuildContextError, match="outside the context"), \
            archive.open("rb") as stream:
        unpack_context(stream, tmp_path / "out2")
