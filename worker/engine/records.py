"""What the engine keeps per container on disk, written atomically, read back at start-up.

Layout under the worker's state dir: ``containers/<id>/container.json`` (this record),
``containers/<id>/<id>-json.log`` (logs) and whatever the driver keeps beside them. A record
that does not decode is moved aside and logged, never fatal.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Literal

import msgspec
import structlog

from protocol.observed import ContainerState
from protocol.specs import ContainerSpec, HealthCheck, Labels

log = structlog.get_logger("shoal.engine")

Desired = Literal["running", "stopped"]


class ImageDefaults(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What the image config adds to a container's spec (Docker's merge rules)."""

    id: str = ""
    entrypoint: list[str] = []
    cmd: list[str] = []
    env: list[str] = []
    workdir: str = ""
    user: str = ""
    stop_signal: str = ""
    os: str = "linux"
    arch: str = ""
    healthcheck: HealthCheck | None = None
    volumes: list[str] = []  # the image's VOLUME paths


class EngineContainer(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One container as this worker knows it. Mutable: the engine updates and saves it."""

    id: str
    name: str
    spec: ContainerSpec
    image: ImageDefaults = ImageDefaults()
    created_at: float
    state: ContainerState = ContainerState()
    desired: Desired = "stopped"
    driver: str = ""
    driver_data: Labels = {}
    restart_count: int = 0
    last_delay: float = 0.0
    manually_stopped: bool = False
    restarted_at: list[float] = []  # the latest restarts' times (RestartHistory's)
    generation: int = 0  # the cluster's fencing token, when a scheduler assigned it
    # Saved True before the driver prepares anything and False once it has: a record still
    # True at start-up is a create that a crash cut short (never answered), removed then.
    creating: bool = False
    # Where each named volume it mounts has its data on this node, by volume name.
    volumes: Labels = {}

    def argv(self) -> list[str]:
        """The command line: entrypoint + command, each from the spec or else the image."""
        entrypoint = self.spec.entrypoint if self.spec.entrypoint is not None \
            else self.image.entrypoint
        command = self.spec.command or ([] if self.spec.entrypoint is not None
                                        else self.image.cmd)
        return [*entrypoint, *command]

    def env(self) -> list[str]:
        """Image env first, spec env overriding by name."""
        merged: dict[str, str] = {}
        for entry in (*self.image.env, *self.spec.env):
            key = entry.split("=", 1)[0]
            merged[key] = entry
        return list(merged.values())

    def workdir(self) -> str:
        return self.spec.workdir or self.image.workdir or "/"

    def user(self) -> str:
        return self.spec.user or self.image.user

    def stop_signal(self) -> str:
        return self.spec.stop_signal or self.image.stop_signal or "TERM"


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(EngineContainer)


class ContainerDisk:
    """Container records under ``root``; every save is atomic (temp file, fsync, rename).

    Saves and removals leave the event loop at once: ``save`` takes the record's bytes as they
    are at the call and a writer thread writes them (each record's latest, in the order of the
    calls, several records per trip); ``await durable()`` returns once everything saved or
    removed before it is on disk, which the engine awaits before it answers a verb or acts on
    a record (a create's record before its rootfs). Without a running event loop (start-up
    tools, tests) they are done at once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._pending: dict[str, bytes | None] = {}  # by id: the bytes to write, None: remove
        self._asked = 0  # saves and removals so far
        self._written = 0  # of those, how many are on disk (or failed)
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    def dir(self, container_id: str) -> Path:
        return self.root / container_id

    def log_path(self, container_id: str) -> Path:
        return self.dir(container_id) / f"{container_id}-json.log"

    def save(self, record: EngineContainer) -> None:
        self._queue(record.id, _encoder.encode(record))

    def remove(self, container_id: str) -> None:
        self._queue(container_id, None)

    async def durable(self) -> None:
        """Return once every save and removal asked so far is on disk; the writer's error
        (a full disk) if one of them failed."""
        if self._written >= self._asked:
            return
        done = asyncio.get_running_loop().create_future()
        self._waiters.append((self._asked, done))
        await done

    def _queue(self, container_id: str, data: bytes | None) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write({container_id: data})
            return
        self._pending[container_id] = data
        self._asked += 1
        if self._writer is None:
            self._writer = loop.create_task(self._write_pending())

    async def _write_pending(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, {}
                upto = self._asked
                error: Exception | None = None
                try:
                    await asyncio.to_thread(self._write, batch)
                except Exception as exc:  # a full disk: told to whoever waits for it
                    log.error("container records not saved", error=str(exc),
                              container_ids=sorted(batch))
                    error = exc
                self._written = upto
                waiting, self._waiters = self._waiters, []
                for target, done in waiting:
                    if target > upto:
                        self._waiters.append((target, done))
                    elif done.done():
                        continue
                    elif error is not None:
                        done.set_exception(error)
                    else:
                        done.set_result(None)
        finally:
            self._writer = None

    def _write(self, batch: dict[str, bytes | None]) -> None:
        for container_id, data in batch.items():
            directory = self.dir(container_id)
            if data is None:
                shutil.rmtree(directory, ignore_errors=True)
                continue
            directory.mkdir(parents=True, exist_ok=True)
            tmp = directory / "container.json.tmp"
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, directory / "container.json")

    def load_all(self) -> list[EngineContainer]:
        records = []
        for directory in sorted(self.root.iterdir()):
            path = directory / "container.json"
            if not path.is_file():
                continue
            try:
                records.append(_decoder.decode(path.read_bytes()))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                aside = path.with_name("container.json.corrupt")
                os.replace(path, aside)
                log.error("container record does not decode; moved aside",
                          path=str(path), error=str(exc))
        return records

