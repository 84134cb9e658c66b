"""The file verbs' parts on a directory standing in for a container's root: paths looked up
without leaving it, trees written as tars (names, links, hardlinks), tars extracted into it
with every escape refused, whatever the links already inside point at."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from protocol.errors import Conflict, InvalidArgument, NotFound
from worker.files.extract import Extraction
from worker.files.inroot import lstat_at, parse, resolve
from worker.files.tarwrite import write_path, write_root
from worker.images.errors import LayerRejected
from worker.images.tarsafety import LayerLimits

pytestmark = pytest.mark.root  # extraction sets the tar's owners


@pytest.fixture
def root(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A container root with an absolute symlink to / and one out through ``..``, and a
    sibling directory that stands for the host."""
    top = tmp_path / "rootfs"
    (top / "etc").mkdir(parents=True)
    (top / "etc" / "hostname").write_text("box\n")
    (top / "tmp").mkdir()
    (top / "tmp" / "to-root").symlink_to("/")
    (top / "tmp" / "up").symlink_to("../../../..")
    (top / "etc" / "link").symlink_to("/etc/hostname")
    (tmp_path / "host").mkdir()
    fd = os.open(top, os.O_PATH | os.O_DIRECTORY)
    try:
        yield top, fd
    finally:
        os.close(fd)


def tar_of(*entries: tuple[str, bytes | None, Callable[[tarfile.TarInfo], None] | None]
           ) -> io.BytesIO:
    """A tar of (name, data or None for a directory, a tweak of the header)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data, tweak in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            else:
                info.size = len(data)
            if tweak is not None:
                tweak(info)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    out.seek(0)
    return out


def extract(fd: int, dest: str, stream: io.BytesIO, **options: object) -> int:
    run = Extraction(fd, dest, no_overwrite_dir_non_dir=bool(options.get("no_overwrite")),
                     owner=None, limits=LayerLimits())
    return run.run(stream)


@pytest.mark.parametrize(("path", "clean", "base", "as_dir", "current"), [
    ("/etc/hostname", "/etc/hostname", "hostname", False, False),
    ("etc/", "/etc", "etc", True, False),
    ("/etc/.", "/etc", "etc", True, True),
    ("/../../etc", "/etc", "etc", False, False),
    ("/", "/", "", True, False),
])
def test_paths_are_cleaned_as_docker_cleans_them(path: str, clean: str, base: str,
                                                 as_dir: bool, current: bool) -> None:
    where = parse(path)
    assert (where.path, where.base, where.as_directory, where.current_dir) == \
        (clean, base, as_dir, current)


def test_links_resolve_inside_the_root(root: tuple[Path, int]) -> None:
    _, fd = root
    assert resolve(fd, "/etc/link") == "/etc/hostname"
    assert resolve(fd, "/tmp/up/etc/hostname") == "/etc/hostname"  # .. stops at the root
    assert resolve(fd, "/tmp/to-root/etc/nothing") == "/etc/nothing"
    dir_fd, name, info = lstat_at(fd, parse("/tmp/to-root/etc/hostname"))
    os.close(dir_fd)
    assert name == "hostname" and info.st_size == 4
    with pytest.raises(NotFound):
        lstat_at(fd, parse("/tmp/up/host"))  # the host's sibling is not reachable


def test_a_path_written_as_a_directory_must_be_one(root: tuple[Path, int]) -> None:
    _, fd = root
    with pytest.raises(InvalidArgument, match="not a directory"):
        lstat_at(fd, parse("/etc/hostname/"))


def test_tars_out_name_entries_from_the_path(root: tuple[Path, int]) -> None:
    top, fd = root
    os.link(top / "etc" / "hostname", top / "etc" / "again")
    out = io.BytesIO()
    write_path(fd, parse("/etc"), out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert set(members) == {"etc", "etc/again", "etc/hostname", "etc/link"}
    assert members["etc/link"].linkname == "/etc/hostname"
    assert members["etc/hostname"].islnk() and members["etc/hostname"].linkname == "etc/again"
    contents = io.BytesIO()
    write_path(fd, parse("/etc/."), contents)
    with tarfile.open(fileobj=io.BytesIO(contents.getvalue())) as tar:
        assert sorted(tar.getnames()) == [".", "./again", "./hostname", "./link"]
    whole = io.BytesIO()
    write_root(fd, whole)
    with tarfile.open(fileobj=io.BytesIO(whole.getvalue())) as tar:
        assert "etc/hostname" in tar.getnames() and "tmp/to-root" in tar.getnames()


def test_extraction_follows_the_containers_links_inside_its_root(
        root: tuple[Path, int], tmp_path: Path) -> None:
    top, fd = root
    count = extract(fd, "/tmp/to-root/tmp", tar_of(("dir", None, None),
                                                   ("dir/a.txt", b"a", None),
                                                   ("implied/b.txt", b"b", None)))
    assert count == 3
    assert (top / "tmp" / "dir" / "a.txt").read_bytes() == b"a"
    assert (top / "tmp" / "implied" / "b.txt").read_bytes() == b"b"
    extract(fd, "/tmp/up", tar_of(("host-file", b"x", None)))
    assert (top / "host-file").exists() and not (tmp_path / "host-file").exists()
    # an entry whose parent is a container link to / lands in the root's /etc
    extract(fd, "/tmp", tar_of(("to-root/etc/added", b"y", None)))
    assert (top / "etc" / "added").read_bytes() == b"y"


def _symlink(target: str) -> Callable[[tarfile.TarInfo], None]:
    def tweak(info: tarfile.TarInfo) -> None:
        info.type, info.linkname = tarfile.SYMTYPE, target
    return tweak


def _hardlink(target: str) -> Callable[[tarfile.TarInfo], None]:
    def tweak(info: tarfile.TarInfo) -> None:
        info.type, info.linkname = tarfile.LNKTYPE, target
    return tweak


def _device(info: tarfile.TarInfo) -> None:
    info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3


@pytest.mark.parametrize(("entries", "refusal"), [
    ([("../escape", b"x", None)], "path traversal"),
    ([("/abs", b"x", None)], "absolute path"),
    ([("out", b"", _symlink("/")), ("out/etc/x", b"x", None)], "symlink created earlier"),
    ([("link", b"", _hardlink("/etc/hostname"))], "absolute path"),
    ([("link", b"", _hardlink("etc/hostname"))], "hardlink target"),
    ([("null", b"", _device)], "device node"),
    ([(".wh.hostname", b"", None)], "whiteout"),
])
def test_escapes_are_refused(root: tuple[Path, int], tmp_path: Path,
                             entries: list[tuple[str, bytes, Callable[[tarfile.TarInfo], None]
                                                 | None]], refusal: str) -> None:
    _, fd = root
    with pytest.raises((LayerRejected, InvalidArgument), match=refusal):
        extract(fd, "/tmp", tar_of(*entries))
    assert not (tmp_path / "host" / "x").exists()


def test_hardlinks_and_owners_are_kept(root: tuple[Path, int]) -> None:
    top, fd = root

    def owned(info: tarfile.TarInfo) -> None:
        info.uid, info.gid, info.mode = 1234, 99, 0o640

    extract(fd, "/etc", tar_of(("first", b"same", owned), ("second", b"", _hardlink("first"))))
    first, second = top / "etc" / "first", top / "etc" / "second"
    assert first.stat().st_ino == second.stat().st_ino
    info = first.stat()
    assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (1234, 99, 0o640)


def test_no_overwrite_dir_non_dir(root: tuple[Path, int]) -> None:
    top, fd = root
    with pytest.raises(Conflict, match="cannot overwrite directory"):
        extract(fd, "/", tar_of(("etc", b"file now", None)), no_overwrite=True)
    with pytest.raises(Conflict, match="cannot overwrite non-directory"):
        extract(fd, "/etc", tar_of(("hostname", None, None)), no_overwrite=True)
    assert (top / "etc" / "hostname").read_text() == "box\n"
    extract(fd, "/etc", tar_of(("hostname", None, None)))  # without it: replaced
    assert (top / "etc" / "hostname").is_dir()


def test_garbage_is_not_a_tar(root: tuple[Path, int]) -> None:
    _, fd = root
    with pytest.raises(InvalidArgument, match="not a valid tar"):
        extract(fd, "/tmp", io.BytesIO(b"\x01" * 1024))
    with pytest.raises(NotFound):
        extract(fd, "/no/such/dir", tar_of(("x", b"x", None)))


def test_an_entry_below_a_file_is_refused(root: tuple[Path, int]) -> None:
    _, fd = root
    with pytest.raises(InvalidArgument, match="not a directory"):
        extract(fd, "/etc", tar_of(("hostname/inside", b"x", None)))
