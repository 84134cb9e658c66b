"""The compiled placement engine (scheduler/placement/native.py, deploy/compile_placement.py):
used only when built from the very sources beside it, and choosing what the interpreted engine
chooses."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scheduler.placement import native

ROOT = Path(__file__).resolve().parents[3]
UNDER_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _fake_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A source tree with one engine module and a compiled tree whose manifest matches it."""
    src = tmp_path / "src"
    module = src / "scheduler" / "placement" / "engine.py"
    module.parent.mkdir(parents=True)
    module.write_text("X = 1\n")
    built = tmp_path / "placement-native"
    built.mkdir()
    digest = hashlib.sha256(module.read_bytes()).hexdigest()
    (built / native.MANIFEST).write_text(
        f"cache_tag {sys.implementation.cache_tag}\nmypy 0\n"
        f"{digest} scheduler/placement/engine.py\n")
    monkeypatch.setattr(native, "native_root", lambda: str(built))
    monkeypatch.setattr(native, "package_root", lambda: str(src))
    monkeypatch.delenv(native.ENVIRONMENT, raising=False)
    return module, built


def test_a_matching_manifest_puts_the_compiled_tree_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, built = _fake_tree(tmp_path, monkeypatch)
    assert native._check() == (str(built), "0")
    monkeypatch.setattr(native, "_verdict", None)
    assert native.compiled_path("scheduler.placement.filters", ["/src/filters"]) == [
        f"{built}/scheduler/placement/filters", "/src/filters"]


def test_a_source_edited_since_the_build_loads_interpreted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module, _ = _fake_tree(tmp_path, monkeypatch)
    module.write_text("X = 2\n")
    assert native._check() == ("", "")
    monkeypatch.setattr(native, "_verdict", None)
    assert native.compiled_path("scheduler.placement", ["/src"]) == ["/src"]


def test_a_missing_source_another_interpreter_or_a_bad_manifest_loads_interpreted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module, built = _fake_tree(tmp_path, monkeypatch)
    manifest = built / native.MANIFEST
    text = manifest.read_text()
    manifest.write_text(text.replace(sys.implementation.cache_tag, "cpython-399"))
    assert native._check() == ("", "")
    manifest.write_text(text.rsplit(" ", 1)[0])  # a manifest cut short in its last line
    assert native._check() == ("", "")
    manifest.write_text(text)
    module.unlink()
    assert native._check() == ("", "")
    manifest.unlink()
    assert native._check() == ("", "")


def test_the_environment_keeps_the_interpreted_engine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_tree(tmp_path, monkeypatch)
    monkeypatch.setenv(native.ENVIRONMENT, "0")
    assert native._check() == ("", "")


def test_this_checkout_loads_the_compiled_engine() -> None:
    """deploy/setup.sh compiles it; under CI a missing or stale build is a failure."""
    import scheduler.placement.engine as engine

    if not native.in_use():
        if UNDER_CI:
            pytest.fail("the compiled placement engine is not in use: run deploy/setup.sh "
                        "(deploy/compile_placement.py --check says why)")
        pytest.skip("the compiled placement engine is not built for these sources")
    assert engine.__file__ is not None and not engine.__file__.endswith(".py")


_DIGESTS = """
import sys
from bench.placement import QUICK, c1m, sweep_with_rules
from scheduler.placement import native
big, _ = c1m(QUICK, 3)
sweep = sweep_with_rules(QUICK, 3)
print(native.in_use(), big.digest, big.violations, sweep.digest, sweep.violations)
"""


def test_compiled_and_interpreted_engines_choose_the_same() -> None:
    """The bench's quick C1M shape and sweep with rules (preferences, max per node, image
    affinity, host ports), every answer's digest, in both engines."""
    if not native.in_use() and not UNDER_CI:
        pytest.skip("the compiled placement engine is not built for these sources")
    out = {}
    for compiled in ("1", "0"):
        env = {**os.environ, native.ENVIRONMENT: compiled}
        out[compiled] = subprocess.run(
            [sys.executable, "-c", _DIGESTS], cwd=ROOT, env=env, capture_output=True,
            text=True, check=True, timeout=120).stdout.split()
    assert out["1"][0] == "True" and out["0"][0] == "False"
    assert out["1"][1:] == out["0"][1:]
    assert out["1"][2] == out["1"][4] == "0"
