"""The hot verbs (create, start, run, state, kill, delete) import what this file lists and
nothing else: a runtime command runs once per container operation, and beyond the interpreter
(~7 ms) what it imports is most of what it costs. A module that joins a hot verb's set must be
added here on purpose (and measured: ``python -m bench runtime``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.runtime_harness import Bundle

# What every hot verb imports beyond the bare interpreter (``python -IS -c pass``).
STDLIB = {"__future__", "_collections_abc", "_json", "_stat", "atexit", "errno", "gc",
          "genericpath", "os", "posixpath", "stat"}
OURS = {"protocol", "protocol.errors", "protocol.lazyface", "protocol.process_end",
        "protocol.signals", "worker",
        "worker.runtime", "worker.runtime.cgroups", "worker.runtime.errors",
        "worker.runtime.freezer", "worker.runtime.hooks", "worker.runtime.jsontext",
        "worker.runtime.lazylog", "worker.runtime.oci_version", "worker.runtime.ops",
        "worker.runtime.procstat", "worker.runtime.quick", "worker.runtime.records",
        "worker.runtime.spec", "worker.runtime.state", "worker.runtime.verbs"}
# What forking a container adds (create and run): ctypes for the calls os lacks, the socket
# pair to the init, the planner and what the init runs, and the cgroup move's warm-up.
FORKING = {"_ctypes", "_socket", "_struct", "ctypes", "ctypes._endian", "struct", "types",
           "worker.runtime.attach_warmup", "worker.runtime.caps", "worker.runtime.init",
           "worker.runtime.launcher",
           "worker.runtime.mountinfo", "worker.runtime.mountopts", "worker.runtime.paths",
           "worker.runtime.plan", "worker.runtime.planner", "worker.runtime.process",
           "worker.runtime.rootfs", "worker.runtime.syscalls"}
# delete waits for the init's end on a pidfd.
DELETING = {"select"}

# Each costs a runtime command milliseconds; none is needed by a hot verb on a plain bundle.
NEVER = {"msgspec", "typing", "dataclasses", "inspect", "json", "re", "enum", "socket",
         "signal", "contextlib", "collections", "functools", "pathlib", "subprocess",
         "structlog", "click", "importlib", "seccomp", "pyseccomp", "worker.runtime.seccomp",
         "worker.runtime.device_bpf", "worker.runtime.enter", "shutil", "logging"}


def _modules(argv: list[str], log: Path) -> set[str]:
    """The modules a ``python -IS -X importtime`` command imported. Its stderr goes to a file,
    never a pipe: a created container's init inherits it and would hold a pipe open."""
    with open(log, "w") as err:
        subprocess.run([sys.executable, "-IS", "-X", "importtime", *argv],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                       timeout=60, check=False)
    text = log.read_text()
    lines = [line for line in text.splitlines() if line.startswith("import time:")]
    assert lines, text
    return {line.rpartition("|")[2].strip() for line in lines[1:]}


def _plain(cfg: dict[str, Any]) -> None:
    """No rlimits, no network namespace: what ``python -m bench runtime`` runs (rlimits
    import resource, a network namespace fcntl, each for its own steps)."""
    del cfg["process"]["rlimits"]
    cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"]
                                  if ns["type"] != "network"]


@pytest.mark.root
def test_the_hot_verbs_import_their_set_and_nothing_else(
        launcher: Path, tmp_path: Path, make_bundle: Callable[..., Bundle]) -> None:
    bare = _modules(["-c", "pass"], tmp_path / "bare")
    root = str(tmp_path / "state")
    bundle = str(make_bundle(["true"], _plain).path)
    created, ran = f"hotc{os.getpid()}", f"hotr{os.getpid()}"  # cgroups are the host's
    verbs = [("create", ["create", "-b", bundle, created], FORKING),
             ("state", ["state", created], set()),
             ("start", ["start", created], set()),
             ("kill", ["kill", created, "KILL"], set()),
             ("delete", ["delete", "--force", created], DELETING),
             ("run", ["run", "-b", bundle, ran], FORKING)]
    try:
        for verb, args, extra in verbs:
            loaded = _modules([str(launcher), "--root", root, *args],
                              tmp_path / f"{verb}.imports") - bare
            assert sorted(loaded & NEVER) == [], verb
            assert sorted(loaded - (STDLIB | OURS | extra)) == [], verb
            assert sorted((STDLIB | OURS | extra) - loaded) == [], verb  # the list stays exact
    finally:
        for cid in (created, ran):
            subprocess.run([str(launcher), "--root", root, "delete", "--force", cid],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
                           check=False)
    assert not (tmp_path / "state" / created).exists()


# The zygote's modules are in every init's address space (worker.runtime.zygote): what it
# loads, each clone copies the page tables of and each exec tears down. (It needs the exec
# side, and _pickle brings collections and functools.)
NEVER_IN_INITS = (NEVER - {"worker.runtime.enter", "collections", "functools"}) | {
    "pickle", "selectors", "ast", "dis", "tokenize", "array"}


def test_the_zygote_loads_none_of_the_heavy_modules(tmp_path: Path) -> None:
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "from worker.runtime.zygote import main")
    loaded = _modules(["-c", code, str(Path(__file__).resolve().parents[3])],
                      tmp_path / "zygote")
    assert "worker.runtime.init" in loaded
    assert sorted(loaded & NEVER_IN_INITS) == []
