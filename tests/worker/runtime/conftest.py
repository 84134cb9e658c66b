"""Fixtures for the runtime tests: busybox bundles, a private state root, runc beside us."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
BUSYBOX = Path("/bin/busybox")


def _missing(what: str) -> None:
    """Skip locally, but fail in CI: a runtime test that cannot run there is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"runtime test needs {what}")
    pytest.skip(f"needs {what}")


@pytest.fixture
def need_root() -> None:
    if os.geteuid() != 0:
        _missing("root")
    if not BUSYBOX.exists():
        _missing("busybox-static (/bin/busybox)")
    if not Path("/proc/self/ns/mnt").exists():
        _missing("Linux namespaces")


@pytest.fixture
def need_runc(need_root: None) -> str:
    path = shutil.which("runc")
    if path is None:
        _missing("runc")
    assert path is not None
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


DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def base_config(args: list[str]) -> dict[str, Any]:
    """A typical runtime-spec config: new namespaces, the usual mounts and masked paths."""
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False, "user": {"uid": 0, "gid": 0}, "args": args,
            "env": ["PATH=/bin", "TERM=xterm"], "cwd": "/",
            "capabilities": {k: list(DEFAULT_CAPS) for k in
                             ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "shoaltest",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                         "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "mode=1777"]},
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware",
                            "/proc/acpi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys"],
        },
    }


class Bundle:
    def __init__(self, path: Path, config: dict[str, Any]) -> None:
        self.path = path
        self.config = config

    def write(self) -> Path:
        (self.path / "config.json").write_text(json.dumps(self.config))
        return self.path


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


def shoal_cmd(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "worker.runtime", "--root", str(root), *args]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    return e


@contextlib.contextmanager
def no_leftovers(marker: str) -> Iterator[None]:
    """Assert that no mount mentioning ``marker`` is left in the host's mount table."""
    yield
    mounts = Path("/proc/self/mountinfo").read_text()
    assert marker not in mounts
