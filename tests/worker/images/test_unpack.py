"""Unpacking layers for real: valid ones round-trip in both forms, hostile ones are refused
with nothing written outside the store and nothing of the layer left behind."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.image_layers import E, diff_id, gz, make_tar, snapshot
from worker.images.blobs import BlobStore
from worker.images.errors import LayerRejected
from worker.images.layers import LayerRef, LayerStore
from worker.images.tarsafety import LayerLimits
from worker.images.unpack import OPAQUE_XATTR, Form

FORMS = [Form.OVERLAY, Form.APPLIED]


class Env:
    """A store under ``root/store`` and an ``outside`` directory that must never change."""

    def __init__(self, root: Path, form: Form, limits: LayerLimits | None = None) -> None:
        self.root = root
        self.outside = root / "outside"
        self.outside.mkdir()
        (self.outside / "sentinel").write_text("untouched")
        self.blobs = BlobStore(root / "store" / "oci", root / "store" / "ingest")
        self.layers = LayerStore(root / "store" / "layers", self.blobs, form, limits)
        self.form = form
        self.before = snapshot(self.outside)

    def ref(self, tar: bytes, compress: Callable[[bytes], bytes] = lambda b: b) -> LayerRef:
        return LayerRef(self.blobs.put_bytes(compress(tar)), diff_id(tar))

    def ensure(self, *refs: LayerRef) -> list[Path]:
        return self.layers.ensure(list(refs))

    def assert_clean(self, complete: int) -> None:
        """Outside untouched, nothing but ``complete`` finished chains in the layer store."""
        assert snapshot(self.outside) == self.before
        assert sorted(os.listdir(self.root)) == ["outside", "store"]
        assert len(os.listdir(self.layers.dir)) == complete
        assert len(self.layers.chains()) == complete


@pytest.fixture(params=FORMS, ids=lambda f: f.value)
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Env:
    return Env(tmp_path, request.param)


def zstd(data: bytes) -> bytes:
    try:
        import zstandard
    except ImportError:  # an optional dependency, but CI must have it
        if os.environ.get("CI") == "true":
            pytest.fail("zstd layers need the zstandard package")
        pytest.skip("needs the zstandard package")
    return bytes(zstandard.ZstdCompressor().compress(data))


BASE = [E("bin", "dir"), E("bin/tool", data=b"#!tool\n", mode=0o4755), E("bin/alias", "symlink",
        link="tool"), E("bin/hard", "hardlink", link="bin/tool"), E("etc", "dir", mode=0o750),
        E("etc/conf", data=b"a=1\n"), E("etc/old", data=b"old"), E("run", "dir"),
        E("run/pipe", "fifo", mode=0o600), E("cache", "dir"), E("cache/stale", data=b"x"),
        E("cache/sub", "dir"), E("cache/sub/deep", data=b"y")]
CHANGES = [E("etc/.wh.old"), E("cache", "dir"), E("cache/.wh..wh..opq"),
           E("cache/new", data=b"new"), E("etc/added", data=b"added")]


@pytest.mark.parametrize("compress", [lambda b: b, gz, zstd], ids=["plain", "gzip", "zstd"])
def test_valid_layers_round_trip(env: Env, compress: Callable[[bytes], bytes]) -> None:
    dirs = env.ensure(env.ref(make_tar(BASE), compress), env.ref(make_tar(CHANGES), compress))
    top = dirs[-1]
    bottom = dirs[0]
    tool = bottom / "bin" / "tool"
    assert tool.read_bytes() == b"#!tool\n"
    assert stat.S_IMODE(tool.stat().st_mode) == 0o4755
    assert os.readlink(bottom / "bin" / "alias") == "tool"
    assert (bottom / "bin" / "hard").stat().st_ino == tool.stat().st_ino
    assert stat.S_ISFIFO((bottom / "run" / "pipe").lstat().st_mode)
    assert stat.S_IMODE((bottom / "etc").stat().st_mode) == 0o750
    assert int(tool.stat().st_mtime) == 1_600_000_000
    if env.form is Form.OVERLAY:
        assert len(dirs) == 2
        old = (top / "etc" / "old").lstat()
        assert stat.S_ISCHR(old.st_mode) and old.st_rdev == 0
        assert os.getxattr(top / "cache", OPAQUE_XATTR) == b"y"
        assert sorted(os.listdir(top / "cache")) == ["new"]
    else:
        assert len(dirs) == 1
        tree = snapshot(top)
        assert "etc/old" not in tree
        assert "etc/added" in tree and "etc/conf" in tree
        assert sorted(os.listdir(top / "cache")) == ["new"]
    env.assert_clean(complete=2)
    # Unpacked once per chain: a second ensure reuses what is there.
    assert env.ensure(env.ref(make_tar(BASE), compress),
                      env.ref(make_tar(CHANGES), compress)) == dirs


def test_whiteout_in_same_layer_hides_nothing_of_its_own(env: Env) -> None:
    lower = env.ref(make_tar([E("keep", data=b"lower"), E("d", "dir"), E("d/low", data=b"l")]))
    upper = env.ref(make_tar([E("keep", data=b"upper"), E(".wh.keep"), E("d", "dir"),
                              E("d/mine", data=b"m"), E("d/.wh..wh..opq")]))
    top = env.ensure(lower, upper)[-1]
    assert (top / "keep").read_bytes() == b"upper"
    assert sorted(os.listdir(top / "d")) == ["mine"]


def test_symlink_from_lower_layer_is_not_followed(env: Env) -> None:
    lower = env.ref(make_tar([E("l", "symlink", link=str(env.outside)),
                              E("r", "symlink", link="../../../../../../" + str(env.outside))]))
    upper = env.ref(make_tar([E("l/pwned", data=b"x"), E("r/deep/pwned", data=b"x"),
                              E(".wh.sentinel")]))
    top = env.ensure(lower, upper)[-1]
    # The upper layer's directory replaces the link, as overlayfs would show it.
    assert (top / "l").is_dir() and not (top / "l").is_symlink()
    assert (top / "l" / "pwned").read_bytes() == b"x"
    env.assert_clean(complete=2)


@pytest.mark.parametrize(("entries", "entry", "reason"), [
    ([E("../evil", data=b"x")], "../evil", "traversal"),
    ([E("a/../../evil", data=b"x")], "a/../../evil", "traversal"),
    ([E("ok", data=b"x"), E("/abs-evil", data=b"x")], "/abs-evil", "absolute"),
    ([E("l", "symlink", link="OUTSIDE"), E("l/pwned", data=b"x")], "l/pwned", "symlink"),
    ([E("l", "symlink", link="../../.."), E("l/x", "dir")], "l/x", "symlink"),
    ([E("f", data=b"x"), E("h", "hardlink", link="../outside/sentinel")], "h", "traversal"),
    ([E("h", "hardlink", link="OUTSIDE_FILE")], "h", "absolute"),
    ([E("l", "symlink", link="OUTSIDE_FILE"), E("h", "hardlink", link="l")], "h", "hardlink"),
    ([E("null", "char", dev=(1, 3))], "null", "device node"),
    ([E("sda", "block", dev=(8, 0))], "sda", "device node"),
    ([E("big", data=b"x" * 2000)], "big", "limit"),
    ([E("a", data=b"x" * 900), E("b", data=b"x" * 900)], "b", "exceed"),
])
def test_hostile_entries_rejected_leaving_nothing(env: Env, entries: list[E], entry: str,
                                                  reason: str) -> None:
    env.layers.limits = LayerLimits(max_file_bytes=1000, max_total_bytes=1500)
    fixed = [E(e.name, e.kind, e.data,
               e.link.replace("OUTSIDE_FILE", str(env.outside / "sentinel"))
               .replace("OUTSIDE", str(env.outside)), e.mode) for e in entries]
    ok = env.ref(make_tar([E("base", data=b"fine")]))
    with pytest.raises(LayerRejected) as info:
        env.ensure(ok, env.ref(make_tar(fixed)))
    assert info.value.entry == entry
    assert reason in info.value.reason
    assert entry in str(info.value)
    env.assert_clean(complete=1)


def test_absolute_path_never_written(env: Env) -> None:
    target = env.root / "abs-target"
    with pytest.raises(LayerRejected, match="absolute"):
        env.ensure(env.ref(make_tar([E(str(target), data=b"x")])))
    assert not target.exists()


def _broken(env: Env, what: str) -> LayerRef:
    tar = make_tar(BASE)
    if what == "truncated gzip":
        return LayerRef(env.blobs.put_bytes(gz(tar)[:-40]), diff_id(tar))
    if what == "garbage after gzip magic":
        return LayerRef(env.blobs.put_bytes(b"\x1f\x8b" + os.urandom(3000)), diff_id(tar))
    if what == "garbage":
        return LayerRef(env.blobs.put_bytes(b"not a tar " * 300), diff_id(tar))
    if what == "truncated tar":
        return LayerRef(env.blobs.put_bytes(tar[:1000]), diff_id(tar))
    if what == "wrong diff id":
        return LayerRef(env.blobs.put_bytes(gz(tar)), diff_id(tar + b"\0"))
    if what == "empty":
        return LayerRef(env.blobs.put_bytes(b""), diff_id(b""))
    assert what == "tampered blob"
    ref = LayerRef(env.blobs.put_bytes(gz(tar)), diff_id(tar))
    path = env.blobs.path(ref.blob)
    path.write_bytes(gz(make_tar([*BASE, E("extra", data=b"sneaky")])))
    return ref


@pytest.mark.parametrize("what", ["truncated gzip", "garbage after gzip magic", "garbage",
                                  "truncated tar", "wrong diff id", "tampered blob", "empty"])
def test_corrupt_layers_rejected(env: Env, what: str) -> None:
    with pytest.raises(LayerRejected) as info:
        env.ensure(_broken(env, what))
    assert info.value.code == "request.invalid_argument.layer"
    env.assert_clean(complete=0)


def test_recover_removes_partial_unpacks(env: Env) -> None:
    (env.layers.dir / ".tmp-abc-123" / "diff").mkdir(parents=True)
    (env.layers.dir / ("0" * 64)).mkdir()  # a chain dir without its record: incomplete
    ref = env.ref(make_tar(BASE))
    env.ensure(ref)
    assert sorted(env.layers.recover()) == [".tmp-abc-123", "0" * 64]
    env.assert_clean(complete=1)
    assert env.layers.prune([]) == [ref.diff_id]
    env.assert_clean(complete=0)


# --- fuzz: whatever the entries, nothing escapes and a refusal leaves nothing --------------
NAMES = st.sampled_from(["a", "b", "a/b", "a/b/c", "l", "l/x", "l/x/y", "../x", "/abs", "./a",
                         ".wh.a", "a/.wh..wh..opq", "a/.wh.b", "x/../../y", "outside/s"])
ENTRY = st.builds(
    lambda name, kind, link: E(name, kind, b"data" if kind == "file" else b"", link),
    NAMES, st.sampled_from(["file", "dir", "symlink", "hardlink", "fifo", "char"]),
    st.sampled_from(["a", "a/b", "l", "OUTSIDE", "../../..", "/", "a/b/c", "../outside"]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ENTRY, max_size=8), st.lists(ENTRY, max_size=6), st.sampled_from(FORMS))
def test_fuzz_nothing_escapes(lower: list[E], upper: list[E], form: Form) -> None:
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        env = Env(Path(tmp), form)

        def fix(es: list[E]) -> list[E]:
            return [E(e.name, e.kind, e.data, e.link.replace("OUTSIDE", str(env.outside)))
                    for e in es]

        refs = [env.ref(make_tar(fix(lower))), env.ref(make_tar(fix(upper)))]
        done = 0
        for i in range(2):
            try:
                env.ensure(*refs[: i + 1])
                done = i + 1
            except LayerRejected:
                break
        env.assert_clean(complete=done)
