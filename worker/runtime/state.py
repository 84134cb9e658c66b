"""Per-container state on disk under the runtime root, written atomically, and status detection.

``ROOT/ID/state.json`` says where the container's init is (pid and its start time, so a reused
pid is never mistaken for it), its bundle, cgroups and hooks; ``ROOT/ID/exec.fifo`` exists
while the container waits for start; ``ROOT/ID/exit.json`` holds the exit status once a reaper
saw it; a frozen freezer cgroup means paused. Any process can read these to find, inspect,
kill and delete a container.
"""

from __future__ import annotations

import os
import time

from worker.runtime import freezer
from worker.runtime.errors import ContainerExists, ContainerNotFound
from worker.runtime.oci_version import OCI_VERSION as OCI_VERSION
from worker.runtime.procstat import proc_start_time as proc_start_time
from worker.runtime.records import Record, decode_json, encode_json
from worker.runtime.spec import Hook as Hook

TYPE_CHECKING = False  # typing and pathlib cost a runtime command milliseconds to import
if TYPE_CHECKING:
    from pathlib import Path

_ID_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_ID_REST = _ID_FIRST | frozenset("_.+-")


class SeccompRecord(Record):
    """The container's compiled seccomp filter, which every exec'd process gets too."""

    program: bytes
    flags: int
    digest: str


class ExecDefaults(Record):
    """The container's process settings that an exec starts from."""

    env: list[str]
    cwd: str
    uid: int
    gid: int
    additional_gids: list[int]
    caps: list[int] | None  # bounding, effective, permitted, inheritable, ambient
    no_new_privileges: bool
    rlimits: list[tuple[int, int, int]]
    seccomp: SeccompRecord | None = None


class RuntimeRecord(Record):
    """What the runtime remembers about one container (state.json)."""

    id: str
    pid: int
    pid_start: int
    bundle: str
    rootfs: str
    created: str
    annotations: dict[str, str]
    cgroup_dirs: list[str]
    cgroup_made: list[str]
    namespaces: list[str]  # /proc/PID/ns names the container owns (new or joined)
    owns_pid_ns: bool
    poststart: list[Hook]
    poststop: list[Hook]
    exec_defaults: ExecDefaults


class ExitRecord(Record):
    """exit.json. ``status``: exit code or 128 + signal; None when the init was seen to exit
    but nobody could reap it (the helper that was its reaper had died)."""

    status: int | None
    signal: int | None = None


class OciState(Record, rename="camel"):
    """The runtime-spec state document, as ``state`` prints it and hooks read it."""

    oci_version: str
    id: str
    status: str
    pid: int
    bundle: str
    annotations: dict[str, str] = {}
    created: str | None = None
    rootfs: str | None = None


def check_id(container_id: str) -> str:
    """``container_id`` if it is 1-128 of [A-Za-z0-9_.+-], the first not one of _.+-."""
    if not (0 < len(container_id) <= 128 and container_id[0] in _ID_FIRST
            and _ID_REST.issuperset(container_id)):
        from worker.runtime.errors import BundleInvalid
        raise BundleInvalid("id", f"{container_id!r} must be 1-128 of [A-Za-z0-9_.+-]")
    return container_id


def atomic_write(path: str, data: bytes) -> None:
    """Write via a temporary file and rename, so a reader sees the old or the new, never half.

    No fsync: the state must survive the runtime's or the worker's death, which the page cache
    does; it need not survive the machine's, which no container survives either.
    """
    os.rename(write_aside(path, data), path)


def write_aside(path: str, data: bytes) -> str:
    """Write ``data`` to a temporary file beside ``path``, to be renamed over it (the second
    half of ``atomic_write``, for a writer with something to do in between); its path."""
    head, name = os.path.split(path)
    tmp = os.path.join(head, f".{name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return tmp


def now_rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class StateDir:
    """One container's directory under the runtime root (paths as text: pathlib costs a runtime
    command milliseconds to import)."""

    def __init__(self, root: str | Path, container_id: str) -> None:
        self.id = check_id(container_id)
        self.root = os.fspath(root)
        self.path = os.path.join(self.root, container_id)
        self.fifo = os.path.join(self.path, "exec.fifo")
        self.record_path = os.path.join(self.path, "state.json")
        self.exit_path = os.path.join(self.path, "exit.json")

    def make(self) -> None:
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        try:
            os.mkdir(self.path, 0o700)
        except FileExistsError:
            raise ContainerExists(f"container {self.id!r} already exists") from None
        os.mkfifo(self.fifo, 0o600)

    def remove(self) -> None:
        # The directory is flat (record, exit status, fifo, temporary files): unlinking them
        # spares every `run` and `delete` the import of shutil, which loads zlib, bz2 and lzma.
        try:
            with os.scandir(self.path) as entries:
                for entry in entries:
                    os.unlink(entry.path)
            os.rmdir(self.path)
        except OSError:  # something else in there, or a race with another remover
            import shutil

            shutil.rmtree(self.path, ignore_errors=True)

    def save(self, record: RuntimeRecord) -> None:
        atomic_write(self.record_path, encode_json(record))

    def stage(self, record: RuntimeRecord) -> str:
        """Write the record aside, for ``commit`` to put in place (nothing reads it before)."""
        return write_aside(self.record_path, encode_json(record))

    def commit(self, staged: str) -> None:
        os.rename(staged, self.record_path)

    def load(self) -> RuntimeRecord:
        try:
            data = _read(self.record_path)
        except FileNotFoundError:
            raise ContainerNotFound(f"container {self.id!r} does not exist") from None
        return decode_json(RuntimeRecord, data)

    def save_exit(self, record: ExitRecord) -> None:
        try:  # noqa: SIM105 - contextlib is not on a command's path
            atomic_write(self.exit_path, encode_json(record))
        except FileNotFoundError:
            pass  # the container's directory is gone: deleted already

    def load_exit(self) -> ExitRecord | None:
        try:
            return decode_json(ExitRecord, _read(self.exit_path))
        except (FileNotFoundError, ValueError):
            return None

    def status(self, record: RuntimeRecord) -> str:
        """created, running, paused (its cgroup frozen, from either of the others) or stopped."""
        alive = proc_start_time(record.pid) == record.pid_start
        if not alive:
            return "stopped"
        found = freezer.find(record.cgroup_dirs)
        if found is not None and freezer.is_frozen(found):
            return "paused"
        return "created" if os.path.exists(self.fifo) else "running"

    def oci_state(self, record: RuntimeRecord, status: str | None = None) -> OciState:
        """The OCI state of the container: with ``status`` as given, else as it is now."""
        if status is None:
            status = self.status(record)
        return OciState(oci_version=OCI_VERSION, id=record.id, status=status,
                        pid=record.pid if status != "stopped" else 0, bundle=record.bundle,
                        annotations=record.annotations, created=record.created,
                        rootfs=record.rootfs)
