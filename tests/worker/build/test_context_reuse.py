"""A context unpacked over the previous one ends exactly as a fresh unpack would (names,
types, content, modes, times, link targets), keeps the inodes of what did not change, and
refuses what a fresh unpack refuses, leaving nothing of either context behind then."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from worker.build.context import unpack_context
from worker.build.context_reuse import unpack_over
from worker.build.errors import BuildContextError

Entry = tuple[str, str, str]  # name, kind (file, dir, symlink, hardlink), content or target

BASE: list[Entry] = [("d", "dir", ""), ("d/a", "file", "alpha"), ("d/b", "file", "beta"),
                     ("keep", "file", "same"), ("l", "symlink", "d/a"), ("x", "dir", ""),
                     ("x/deep", "file", "deep"), ("twin", "hardlink", "d/b")]
CHANGES: dict[str, list[Entry]] = {
    "unchanged": BASE,
    "a file becomes a directory and a directory a file": [
        ("d", "file", "now a file"), ("keep", "file", "same"), ("x", "file", "flat")],
    "a link becomes a directory with entries": [
        ("keep", "file", "same"), ("l", "dir", ""), ("l/inside", "file", "in")],
    "hard-linked names become two files": [
        ("d", "dir", ""), ("d/b", "file", "beta"), ("twin", "file", "other")],
    "a file becomes a link": [("keep", "symlink", "elsewhere")],
    "files change content, longer, shorter, same size": [
        ("d", "dir", ""), ("d/a", "file", "ALPHA"), ("d/b", "file", "b"),
        ("keep", "file", "same, and then some")],
    "everything goes": [],
    "entries without their directories": [("x/deep", "file", "new"), ("n/e/w", "file", "w")],
}


def _tar(entries: list[Entry]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for number, (name, kind, text) in enumerate(entries):
            info = tarfile.TarInfo(name)
            info.mtime = 1_600_000_000 + number
            info.mode = 0o750 if kind == "dir" else 0o640
            if kind == "file":
                info.size = len(text)
                tar.addfile(info, io.BytesIO(text.encode()))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                         "hardlink": tarfile.LNKTYPE}[kind]
            info.linkname = text
            tar.addfile(info)
    return buffer.getvalue()


def _snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    found: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                found[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                found[rel] = ("dir", stat.S_IMODE(st.st_mode), int(st.st_mtime))
            else:
                found[rel] = ("file", stat.S_IMODE(st.st_mode), int(st.st_mtime),
                              path.read_bytes(), st.st_nlink)
    return found


def _inodes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.lstat().st_ino for p in root.rglob("*")}


@pytest.mark.parametrize("change", CHANGES)
def test_unpacking_over_the_last_context_is_a_fresh_unpack(tmp_path: Path, change: str) -> None:
    kept = tmp_path / "kept"
    kept.mkdir()
    unpack_over(io.BytesIO(_tar(BASE)), kept)
    before = _inodes(kept)
    new = _tar(CHANGES[change])
    unpack_over(io.BytesIO(new), kept)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    unpack_context(io.BytesIO(new), fresh)
    assert _snapshot(kept) == _snapshot(fresh)
    after = _inodes(kept)
    if "keep" in after and _snapshot(kept)["keep"][0] == "file":
        assert after["keep"] == before["keep"]  # written over in place: no new inode
    if change == "unchanged":  # all but the hard-linked pair, which is made again
        assert {k: v for k, v in after.items() if k not in ("d/b", "twin")} == \
            {k: v for k, v in before.items() if k not in ("d/b", "twin")}


@pytest.mark.parametrize(("entries", "refusal"), [
    ([("link", "symlink", "/etc"), ("link/passwd", "file", "owned")], "link/passwd"),
    ([("../up", "file", "")], "outside the context"),
    # the last context had d/a; a fresh unpack has nothing to link to
    ([("stray", "hardlink", "d/a")], "comes nowhere before it"),
])
def test_what_a_fresh_unpack_refuses_is_refused_and_nothing_is_left(
        tmp_path: Path, entries: list[Entry], refusal: str) -> None:
    kept = tmp_path / "kept"
    kept.mkdir()
    unpack_over(io.BytesIO(_tar(BASE)), kept)
    before = Path("/etc/passwd").read_bytes()
    with pytest.raises(BuildContextError, match=refusal):
        unpack_over(io.BytesIO(_tar(entries)), kept)
    assert Path("/etc/passwd").read_bytes() == before
    assert list(kept.iterdir()) == []


def test_an_old_link_out_of_the_context_does_not_refuse_a_good_one(tmp_path: Path) -> None:
    kept = tmp_path / "kept"
    kept.mkdir()
    unpack_over(io.BytesIO(_tar([("etc", "symlink", "/etc")])), kept)
    unpack_over(io.BytesIO(_tar([("etc", "dir", ""), ("etc/passwd", "file", "mine")])), kept)
    assert (kept / "etc" / "passwd").read_text() == "mine"
    assert not (kept / "etc").is_symlink()
