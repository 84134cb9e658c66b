"""Running one RUN instruction: the stage's layers as overlay lowerdirs under a fresh upper,
an OCI bundle with Docker's isolation defaults and the stage's env/user/workdir, the native
runtime's helper to create, start and wait; the output goes to ``emit`` as it comes. The
upper directory is what the step changed; the caller turns it into a layer. Everything made
here (mount, container, directories) is gone when ``run_in_container`` returns or raises.

RUN uses the host's network (``docker build --network host``): a build needs no address of
its own, and there is no internet to reach anyway; no resolv.conf is bound in (it would be
committed into the layer).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker.engine.bundle import (
    DEFAULT_PATH,
    MASKED,
    READ_ONLY,
    host_nofile,
    resolve_user,
)
from worker.engine.privileges import DENY_ALL_DEVICES, DOCKER_CAPS
from worker.images.layers import LayerRef
from worker.images.store import ImageStore
from worker.images.unpack import Form
from worker.runtime.docker_seccomp import default_profile
from worker.storage import mounts

if TYPE_CHECKING:  # the native runtime is Linux's; a worker imports this anywhere
    from worker.runtime.client import RuntimeHelper

READ_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class RunRequest:
    argv: list[str]
    env: list[str]
    user: str
    workdir: str


@contextlib.asynccontextmanager
async def mounted_stage(store: ImageStore, scratch: Path, layers: list[LayerRef],
                        ) -> AsyncIterator[tuple[Path, Path]]:
    """(merged rootfs, upper) of a writable overlay over ``layers``, unmounted and deleted
    afterwards."""
    overlay = store.layer_store(Form.OVERLAY)
    lowers = await asyncio.to_thread(overlay.ensure, layers)
    work = Path(tempfile.mkdtemp(prefix="step-", dir=scratch))
    try:
        empty = work / "empty"
        for sub in ("upper", "work", "merged", "empty"):
            (work / sub).mkdir()
        (work / "upper").chmod(0o755)
        (work / "merged").chmod(0o755)
        lower_dirs = list(reversed(lowers)) or [empty]
        await asyncio.to_thread(mounts.mount_overlay, lower_dirs, work / "upper", work / "work",
                                work / "merged")
        try:
            yield work / "merged", work / "upper"
        finally:
            await asyncio.to_thread(mounts.unmount, work / "merged")
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)


def bundle_config(rootfs: Path, request: RunRequest, hostname: str) -> dict[str, Any]:
    env = list(request.env)
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, f"PATH={DEFAULT_PATH}")
    env.append(f"HOSTNAME={hostname}")
    uid, gid, extra = resolve_user(request.user, rootfs)
    caps = list(DOCKER_CAPS)
    nofile = host_nofile()
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": uid, "gid": gid, **({"additionalGids": extra} if extra else {})},
            "args": request.argv, "env": env, "cwd": request.workdir or "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile}],
            "noNewPrivileges": False,
        },
        "root": {"path": str(rootfs), "readonly": False},
        "hostname": hostname,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount")],
            "maskedPaths": list(MASKED), "readonlyPaths": list(READ_ONLY),
            "seccomp": default_profile(caps, None),
            "resources": {"devices": DENY_ALL_DEVICES},
        },
    }


async def run_in_container(runtime: RuntimeHelper, rootfs: Path, bundle_dir: Path,
                           container_id: str, request: RunRequest,
                           emit: Callable[[bytes], Awaitable[None]]) -> int:
    """Run ``request`` on ``rootfs``; returns its exit code (128+N when killed by signal N)."""
    workdir = rootfs / request.workdir.lstrip("/")
    if request.workdir and not workdir.exists():
        workdir.mkdir(parents=True, mode=0o755)  # WORKDIR makes the directory, as in Docker
    bundle_dir.mkdir(parents=True, exist_ok=True)
    config = bundle_config(rootfs, request, container_id[:12])
    (bundle_dir / "config.json").write_text(json.dumps(config))
    read_end, write_end = os.pipe()
    try:
        try:
            await runtime.create(container_id, bundle_dir, stdin=None, stdout=write_end,
                                 stderr=write_end)
        finally:
            os.close(write_end)
        try:
            await runtime.start(container_id)
            reader = asyncio.ensure_future(_pump(read_end, emit))
            try:
                status = await runtime.wait(container_id)
                await reader
            finally:
                reader.cancel()
        finally:
            with contextlib.suppress(Exception):
                await runtime.kill(container_id, "SIGKILL", all_processes=True)
            with contextlib.suppress(Exception):
                await runtime.delete(container_id, force=True)
    finally:
        os.close(read_end)
    if status.code is None:
        return 255
    return status.code


async def _pump(fd: int, emit: Callable[[bytes], Awaitable[None]]) -> None:
    """Copy the container's output until every writer has closed the pipe."""
    while chunk := await asyncio.to_thread(os.read, fd, READ_CHUNK):
        await emit(chunk)
