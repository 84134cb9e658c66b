"""The pure entry checker: what each tar entry becomes, and which are refused and why."""

from __future__ import annotations

import tarfile

import pytest

from worker.images.errors import LayerRejected
from worker.images.tarsafety import Action, Header, Kind, LayerChecker, LayerLimits

F, D, S, H = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE


def run(*headers: Header, limits: LayerLimits | None = None) -> list[Action]:
    checker = LayerChecker(limits or LayerLimits())
    return [checker.check(h) for h in headers]


@pytest.mark.parametrize(("headers", "last"), [
    ([Header("./etc/", D)], Action(Kind.DIR, ("etc",))),
    ([Header("a//b/./c", F)], Action(Kind.FILE, ("a", "b", "c"))),
    ([Header("./", D)], Action(Kind.SKIP, ())),
    ([Header("l", S, linkname="/etc/shadow")], Action(Kind.SYMLINK, ("l",), target="/etc/shadow")),
    ([Header("l", S, linkname="../../..")], Action(Kind.SYMLINK, ("l",), target="../../..")),
    ([Header("f", F), Header("g", H, linkname="./f")], Action(Kind.HARDLINK, ("g",), link=("f",))),
    ([Header("p", tarfile.FIFOTYPE)], Action(Kind.FIFO, ("p",))),
    ([Header("etc/.wh.passwd", F)], Action(Kind.WHITEOUT, ("etc", "passwd"))),
    ([Header("etc/.wh..wh..opq", F)], Action(Kind.OPAQUE, ("etc",))),
    ([Header(".wh..wh..opq", F)], Action(Kind.OPAQUE, ())),
    ([Header("etc/.wh..wh.plnk", D)], Action(Kind.SKIP, ("etc", ".wh..wh.plnk"))),
    # A whiteout of something this same layer made hides nothing of its own.
    ([Header("x", F), Header(".wh.x", F)], Action(Kind.SKIP, ("x",))),
    # A directory replacing an earlier symlink makes the path safe to write below again.
    ([Header("d", S, linkname="/"), Header("d", D), Header("d/f", F)],
     Action(Kind.FILE, ("d", "f"))),
])
def test_actions(headers: list[Header], last: Action) -> None:
    assert run(*headers)[-1] == last


@pytest.mark.parametrize(("headers", "reason"), [
    ([Header("/etc/passwd", F)], "absolute path"),
    ([Header("../x", F)], "traversal"),
    ([Header("a/../../x", F)], "traversal"),
    ([Header("a/..", D)], "traversal"),
    ([Header("f", F), Header("x", H, linkname="../f")], "traversal"),
    ([Header("x", H, linkname="/etc/passwd")], "absolute path"),
    ([Header("x", H, linkname="nothere")], "hardlink target"),
    ([Header("d", D), Header("x", H, linkname="d")], "hardlink target"),
    ([Header("l", S, linkname="/etc"), Header("x", H, linkname="l")], "hardlink target"),
    ([Header("x", F), Header("x", H, linkname="x")], "hardlink target"),
    # A file whose directory was then replaced by a symlink is no longer a target.
    ([Header("d/f", F), Header("d", S, linkname="/etc"), Header("x", H, linkname="d/f")],
     "hardlink target"),
    ([Header("l", S, linkname="/etc"), Header("l/passwd", F)], "parent 'l' is a symlink"),
    ([Header("l", S, linkname="../.."), Header("l/a/b", D)], "parent 'l' is a symlink"),
    ([Header("l", S, linkname="/"), Header("l/.wh.etc", F)], "parent 'l' is a symlink"),
    ([Header("f", F), Header("f/x", F)], "parent 'f' is a file"),
    ([Header("null", tarfile.CHRTYPE, devmajor=1, devminor=3)], "device node (char 1:3)"),
    ([Header("sda", tarfile.BLKTYPE, devmajor=8)], "device node (block 8:0)"),
    ([Header("wh", tarfile.CHRTYPE)], "device node (char 0:0)"),
    ([Header("l", S)], "empty target"),
    ([Header("x", b"Z")], "unsupported entry type"),
    ([Header(".wh.", F)], "whiteout names no file"),
    ([Header(".wh...", F)], "whiteout names no file"),
    ([Header("./", F)], "layer root"),
    ([Header("a" * 5000, F)], "longer than"),
    ([Header("a\x00b", F)], "NUL"),
])
def test_rejections_name_entry_and_reason(headers: list[Header], reason: str) -> None:
    with pytest.raises(LayerRejected) as info:
        run(*headers)
    err = info.value
    assert reason in err.reason
    assert err.entry == headers[-1].name[:300]
    assert err.code == "request.invalid_argument.layer"
    assert err.details["entry"] == err.entry


def test_devices_allowed_when_asked() -> None:
    limits = LayerLimits(allow_devices=True)
    assert run(Header("null", tarfile.CHRTYPE, devmajor=1, devminor=3),
               limits=limits)[0].kind is Kind.CHAR


def test_size_limits() -> None:
    limits = LayerLimits(max_file_bytes=100, max_total_bytes=150, max_entries=3)
    run(Header("a", F, size=100), limits=limits)
    with pytest.raises(LayerRejected, match="over the 100-byte limit"):
        run(Header("a", F, size=101), limits=limits)
    with pytest.raises(LayerRejected, match="exceed 150 bytes"):
        run(Header("a", F, size=100), Header("b", F, size=51), limits=limits)
    with pytest.raises(LayerRejected, match="more than 3 entries"):
        run(*(Header(f"d{i}", D) for i in range(4)), limits=limits)
