"""Compile the placement engine with mypyc into ``<sys.prefix>/placement-native``.

Run by ``deploy/setup.sh`` with the virtualenv's Python (``.venv/bin/python
deploy/compile_placement.py``); ``--check`` only says whether the compiled engine is current.
What is compiled: every module of ``scheduler/placement`` but the package ``__init__`` modules
(they choose between the compiled and the interpreted modules), ``native`` (the module that
chooses) and ``checker`` (the independent checker stays interpreted, so that it checks the
compiled engine with code no compiler touched). The engine loads the compiled modules only
while every source still hashes as in the manifest written here (scheduler/placement/native.py).

Why mypyc: the engine is strictly typed Python already (mypy --strict), and mypy's own compiler
turns it into a C extension from the same source, with the same choices and measurably faster
(bench/PLACEMENT.md), where each further rewrite in Python had gained 5-20 %.

A build goes to a temporary directory and replaces the installed one only once complete, with
its manifest; after a failed build the engine loads interpreted (an older compiled tree no
longer matches the sources) and this script exits 1 with the reason.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from scheduler.placement.native import MANIFEST, manifest_text, native_root

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "scheduler" / "placement"
# Not compiled: the package faces, the module choosing, and the independent checker.
INTERPRETED = {"__init__.py", "native.py", "checker.py"}
GROUP = "scheduler.placement.native_group"  # the shared library: native_group__mypyc


def sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name not in INTERPRETED)


def manifest_for(paths: list[Path]) -> str:
    import mypy.version

    return manifest_text([(str(p.relative_to(ROOT)), p.read_bytes()) for p in paths],
                         mypy.version.__version__)


def current(manifest: str) -> bool:
    try:
        return (Path(native_root()) / MANIFEST).read_text(encoding="utf-8") == manifest
    except (OSError, ValueError):
        return False


def build(paths: list[Path], manifest: str) -> None:
    from mypyc.build import mypycify
    from setuptools import setup

    target = Path(native_root())
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="placement-native.", dir=target.parent) as tmp:
        work = Path(tmp)
        stage = work / "stage"
        # setuptools reads a pyproject.toml in its working directory: build where there is
        # none, and give mypy the project's configuration by name.
        cwd = Path.cwd()
        os.chdir(work)
        try:
            modules = mypycify(
                [*(str(p) for p in paths), "--config-file", str(ROOT / "pyproject.toml")],
                opt_level="3", group_name=GROUP, target_dir=str(work / "c"))
            setup(name="shoal-placement-native", ext_modules=modules, script_args=[
                "-q", "build_ext", "--build-lib", str(stage), "--build-temp", str(work / "o")])
        finally:
            os.chdir(cwd)
        (stage / MANIFEST).write_text(manifest, encoding="utf-8")
        old = work / "old"
        if target.exists():
            target.rename(old)
        stage.rename(target)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 0 if the compiled engine is current, 1 if not; build nothing")
    args = parser.parse_args(argv)
    paths = sources()
    manifest = manifest_for(paths)
    if current(manifest):
        return 0
    if args.check:
        print("the compiled placement engine is missing or older than its sources",
              file=sys.stderr)
        return 1
    try:
        build(paths, manifest)
    except (Exception, SystemExit) as e:  # the compiler's own output is above
        print(f"compile_placement: the build failed ({type(e).__name__}: {e}); until it "
              "succeeds the engine loads interpreted", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
