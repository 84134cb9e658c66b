"""The placement engine compiled with mypyc, used when it was built from these very sources.

``deploy/compile_placement.py`` (run by ``deploy/setup.sh``) compiles the engine's modules
(every module of this package but the ``__init__`` modules and ``checker``, which stays
interpreted so that it checks the compiled engine independently) into
``<sys.prefix>/placement-native``, beside a manifest of the sources it compiled, each with its
sha256. Each package of the engine puts that directory first on its ``__path__`` through
``compiled_path``, so its modules load compiled, only when every source still hashes as in the
manifest and the interpreter is the one that built them: a source edited since, or a checkout
of other code, loads the interpreted modules, never stale ones. The compiled and the
interpreted modules are the same code and choose the same (the bench and a test compare every
answer of both); the compiled ones place faster (bench/PLACEMENT.md has the figures).

``SHOAL_PLACEMENT_COMPILED=0`` in the environment keeps the interpreted modules.

The check reads this package's own files and the manifest once per process, at import, as the
import system reads bytecode (the import walls allow this module, alone of the engine, ``os``);
it reads nothing else and no placement decision depends on it.
"""

from __future__ import annotations

import os
import sys

try:  # the C hash alone: hashlib loads OpenSSL (~3 ms at every start)
    from _sha256 import sha256  # type: ignore[import-not-found]
except ImportError:  # a Python built without it
    from hashlib import sha256

MANIFEST = "manifest.txt"  # "cache_tag TAG", "mypy VERSION", then "SHA256 PATH" per source
ENVIRONMENT = "SHOAL_PLACEMENT_COMPILED"

# Once per process: the compiled tree's root and the mypyc version that built it when it may
# be used, ("", "") when not.
_verdict: tuple[str, str] | None = None


def native_root() -> str:
    """Where ``deploy/compile_placement.py`` writes the compiled engine for this interpreter."""
    return sys.prefix + "/placement-native"


def package_root() -> str:
    """The directory holding the ``scheduler`` package these modules were loaded from."""
    return __file__.rsplit("/scheduler/placement/", 1)[0]


def manifest_text(sources: list[tuple[str, bytes]], mypyc_version: str) -> str:
    """The manifest of a build from ``sources`` (each a path from ``package_root`` and its
    bytes), as ``deploy/compile_placement.py`` writes it and ``compiled_path`` checks it."""
    lines = [f"cache_tag {sys.implementation.cache_tag}", f"mypy {mypyc_version}"]
    lines += [f"{sha256(data).hexdigest()} {name}" for name, data in sources]
    return "\n".join(lines) + "\n"


def compiled_path(package: str, path: list[str]) -> list[str]:
    """``path`` (a package's ``__path__``) with the compiled engine's directory for
    ``package`` first when the compiled engine may be used, else ``path`` as it is."""
    root = _usable()[0]
    if not root:
        return path
    return [root + "/" + package.replace(".", "/"), *path]


def in_use() -> bool:
    """Whether this process loads the compiled engine."""
    return bool(_usable()[0])


def description() -> str:
    """"compiled with mypyc VERSION" or "interpreted", for reports."""
    root, version = _usable()
    return f"compiled with mypyc {version}" if root else "interpreted"


def _usable() -> tuple[str, str]:
    global _verdict
    if _verdict is None:
        _verdict = _check()
    return _verdict


def _check() -> tuple[str, str]:
    if os.environ.get(ENVIRONMENT, "1") == "0":
        return "", ""
    root = native_root()
    try:
        with open(root + "/" + MANIFEST, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, ValueError):
        return "", ""
    if len(lines) < 3 or lines[0] != "cache_tag " + str(sys.implementation.cache_tag):
        return "", ""
    sources = [line.split(" ", 1) for line in lines[2:]]
    if any(len(source) != 2 for source in sources):  # cut short
        return "", ""
    base = package_root()
    for digest, name in sources:
        try:
            with open(base + "/" + name, "rb") as f:
                if sha256(f.read()).hexdigest() != digest:
                    return "", ""
        except OSError:
            return "", ""
    return root, lines[1].partition(" ")[2]
