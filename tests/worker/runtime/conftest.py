"""Fixtures for the runtime tests: busybox bundles, a private state root, runc beside us.
(Root, namespaces and busybox are the ``root`` marker's to check: tests/conftest.py.)"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.requirements import BUSYBOX, missing
from tests.helpers.runtime_harness import Bundle, base_config, shoal_cmd
from worker.runtime import start_script


@pytest.fixture
def need_runc() -> str:
    path = shutil.which("runc")
    if path is None:
        missing("runc")
    return path


@pytest.fixture(scope="session")
def rootfs_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A busybox rootfs, built once; bundles copy it."""
    root = tmp_path_factory.mktemp("image") / "rootfs"
    for d in ("bin", "etc", "tmp", "proc", "sys", "dev", "root"):
        (root / d).mkdir(parents=True)
    if BUSYBOX.exists():
        shutil.copy2(BUSYBOX, root / "bin" / "busybox")
        applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True,
                                 check=True).stdout.split()
        for applet in applets:
            if applet != "busybox":
                (root / "bin" / applet).symlink_to("busybox")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    (root / "tmp").chmod(0o1777)
    return root


@pytest.fixture
def make_bundle(tmp_path: Path, rootfs_image: Path) -> Callable[..., Bundle]:
    counter = iter(range(1000))

    def make(args: list[str], edit: Callable[[dict[str, Any]], None] | None = None) -> Bundle:
        path = tmp_path / f"bundle{next(counter)}"
        path.mkdir()
        # Symlinks to one shared image keep bundles cheap; the rootfs itself is a real copy
        # only where a test changes it.
        shutil.copytree(rootfs_image, path / "rootfs", symlinks=True)
        config = copy.deepcopy(base_config(args))
        if edit is not None:
            edit(config)
        bundle = Bundle(path, config)
        bundle.write()
        return bundle

    return make


@pytest.fixture
def state_root(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "state"
    yield root
    # Whatever a test left behind: kill and delete it.
    if root.is_dir():
        for entry in root.iterdir():
            if entry.name.startswith("."):  # the helper's socket and lock
                continue
            subprocess.run(shoal_cmd(root, "delete", "--force", entry.name),
                           capture_output=True, check=False, timeout=30)


@pytest.fixture
def helper_pids(state_root: Path) -> Iterator[list[int]]:
    """Pids of runtime helpers a test started: killed (and reaped) if the test left them."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"worker.runtime.helper" not in cmdline:
            continue  # it ended and the pid is someone else's now
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


@pytest.fixture
def runc_root(tmp_path: Path, need_runc: str) -> Iterator[Path]:
    root = tmp_path / "runc"
    yield root
    if root.is_dir():
        for entry in root.iterdir():
            subprocess.run(["runc", "--root", str(root), "delete", "--force", entry.name],
                           capture_output=True, check=False, timeout=30)


@pytest.fixture
def launcher(tmp_path: Path) -> Path:
    """``shoal-runtime`` as deploy/setup.sh writes it (``python -IS``, the quick command line),
    in a scratch directory."""
    path = tmp_path / "bin" / "shoal-runtime"
    path.parent.mkdir()
    start_script.write(str(path))
    return path
