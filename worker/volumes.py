"""Named volumes of docker's ``local`` driver on this worker: ``STATE_DIR/volumes/<name>/`` holds
``volume.json`` (the spec and when it was made, saved atomically) and ``_data/``, the directory
containers mount. With options (``type``, ``device``, ``o``, as ``mount -t TYPE -o O DEVICE``)
``_data`` is a mount point instead: mounted when a container first needs it, unmounted when the
volume is removed. Who uses a volume is the engine's to say; this module only keeps them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import subprocess
import time
from pathlib import Path

import msgspec
import structlog

from protocol.errors import Conflict, InvalidArgument, NotFound, ShoalError
from protocol.specs import VolumeInfo, VolumeSpec
from worker.runtime.mountinfo import unescape

log = structlog.get_logger("shoal.volumes")

VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}$")
LOCAL_OPTIONS = ("type", "device", "o")


class _Stored(msgspec.Struct, frozen=True, kw_only=True):
    spec: VolumeSpec
    created_at: float
    # False until the image's content has been copied in (docker's copy-up happens once, into
    # an empty volume); a volume made by ``volume create`` or mounted ``nocopy`` starts empty.
    filled: bool = False


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(_Stored).decode


def check_volume_spec(spec: VolumeSpec) -> None:
    """InvalidArgument for a bad name or a local-driver option docker's local driver refuses."""
    if not VOLUME_NAME.match(spec.name):
        raise InvalidArgument(f"invalid volume name {spec.name!r}: letters, digits, '_', '.', "
                              "'-', starting with a letter or digit")
    unknown = sorted(set(spec.options) - set(LOCAL_OPTIONS))
    if unknown:
        raise InvalidArgument(f"invalid option(s) for the local volume driver: "
                              f"{', '.join(unknown)} (known: type, device, o)")
    if spec.options and "type" not in spec.options:
        raise InvalidArgument("the local volume driver needs type= with device= or o=")
    if spec.options.get("type") not in (None, "tmpfs") and not spec.options.get("device"):
        raise InvalidArgument(f"type={spec.options['type']} needs device=")
    for key, value in spec.options.items():
        if "\x00" in value or (key == "device" and value.startswith("-")):
            raise InvalidArgument(f"invalid value for volume option {key}: {value!r}")


class VolumeStore:
    """The worker's named volumes, by name."""

    def __init__(self, root: Path, node_id: str = "") -> None:
        self.root = root
        self.node_id = node_id
        root.mkdir(parents=True, exist_ok=True)

    def _dir(self, name: str) -> Path:
        if not VOLUME_NAME.match(name):
            raise NotFound(f"no such volume: {name}", details={"volume": name})
        return self.root / name

    def data(self, name: str) -> Path:
        """The directory a container mounts for ``name``."""
        return self._dir(name) / "_data"

    def _read(self, name: str) -> _Stored:
        path = self._dir(name) / "volume.json"
        try:
            return _decode(path.read_bytes())
        except FileNotFoundError:
            raise NotFound(f"no such volume: {name}", details={"volume": name}) from None
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise NotFound(f"volume {name} has a record that does not decode: {exc}",
                           details={"volume": name}) from None

    def _write(self, stored: _Stored) -> None:
        directory = self._dir(stored.spec.name)
        tmp = directory / "volume.json.tmp"
        with open(tmp, "wb") as handle:
            handle.write(_encode(stored))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, directory / "volume.json")

    def exists(self, name: str) -> bool:
        return VOLUME_NAME.match(name) is not None and (self.root / name / "volume.json").exists()

    def create(self, spec: VolumeSpec) -> tuple[VolumeInfo, bool]:
        """Make ``spec`` (and True), or answer the volume of that name as it is (and False):
        docker's create is idempotent, but refuses other options for an existing name."""
        check_volume_spec(spec)
        if self.exists(spec.name):
            stored = self._read(spec.name)
            if spec.options and spec.options != stored.spec.options:
                raise Conflict(f"volume {spec.name} already exists with other options",
                               details={"volume": spec.name})
            return self._info(stored), False
        directory = self._dir(spec.name)
        (directory / "_data").mkdir(parents=True, exist_ok=True)
        (directory / "_data").chmod(0o755)
        stored = _Stored(spec=spec, created_at=time.time(), filled=bool(spec.options))
        self._write(stored)
        return self._info(stored), True

    def inspect(self, name: str) -> VolumeInfo:
        return self._info(self._read(name))

    def list(self) -> list[VolumeInfo]:
        infos = []
        for directory in sorted(self.root.iterdir()):
            if (directory / "volume.json").exists():
                try:
                    infos.append(self._info(self._read(directory.name)))
                except ShoalError as exc:
                    log.error("volume record unreadable; skipped", volume=directory.name,
                              error=str(exc))
        return infos

    def needs_fill(self, name: str) -> bool:
        """Whether the image's content at the mount point should be copied in (the first time
        it is mounted, and only while it is empty, as docker does)."""
        stored = self._read(name)
        return not stored.filled and not any(self.data(name).iterdir())

    def mark_filled(self, name: str) -> None:
        stored = self._read(name)
        if not stored.filled:
            self._write(msgspec.structs.replace(stored, filled=True))

    def ensure_mounted(self, name: str) -> Path:
        """``_data`` ready for a container: with options, mounted (once) as they say."""
        stored = self._read(name)
        data = self.data(name)
        options = stored.spec.options
        if options and not is_mount_point(data):
            argv = ["mount", "-t", options["type"]]
            if options.get("o"):
                argv += ["-o", options["o"]]
            argv += [options.get("device") or options["type"], str(data)]
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise InvalidArgument(f"cannot mount volume {name} ({' '.join(argv[1:])}): "
                                      f"{done.stderr.strip() or done.returncode}")
        return data

    def remove(self, name: str) -> None:
        """Remove it and its data (the caller has checked that nothing uses it)."""
        directory = self._dir(name)
        stored = self._read(name)
        data = directory / "_data"
        while is_mount_point(data):  # stacked mounts, all of them
            done = subprocess.run(["umount", str(data)], capture_output=True, text=True,
                                  check=False)
            if done.returncode != 0:
                raise Conflict(f"cannot unmount volume {name}: {done.stderr.strip()}")
        os.replace(directory / "volume.json", directory / "volume.json.removing")
        if stored.spec.options:
            # A mount point: its content was the device's (a bind's host directory, which
            # must survive). Never walk into it: only the empty directory goes.
            with contextlib.suppress(OSError):
                data.rmdir()
            with contextlib.suppress(OSError):
                (directory / "volume.json.removing").unlink()
                directory.rmdir()
            return
        shutil.rmtree(directory, ignore_errors=True)

    def size(self, name: str) -> int:
        total = 0
        for base, _, files in os.walk(self.data(name)):
            for file in files:
                with contextlib.suppress(OSError):  # gone meanwhile
                    total += os.lstat(os.path.join(base, file)).st_size
        return total

    def _info(self, stored: _Stored) -> VolumeInfo:
        return VolumeInfo(spec=stored.spec, node_id=self.node_id,
                          mountpoint=str(self.data(stored.spec.name)),
                          created_at=stored.created_at)


def is_mount_point(path: Path) -> bool:
    """Whether something is mounted on ``path`` (from /proc/self/mountinfo: ``os.path.ismount``
    misses a bind mount of a directory on the same file system)."""
    wanted = os.path.realpath(path)
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as handle:
        for line in handle:
            fields = line.split(" ")
            if len(fields) > 4 and unescape(fields[4]) == wanted:
                return True
    return False


def image_path(rootfs: Path, target: str) -> Path | None:
    """``target`` inside ``rootfs`` if every component of it is a real directory there (no
    symlink is followed: an image's link could point anywhere on the host); else None."""
    path = rootfs
    for part in Path(target).parts[1:]:
        path = path / part
        if path.is_symlink() or not path.is_dir():
            return None
    return path


def copy_up(source: Path, target: Path) -> None:
    """Docker's copy-up: what the image has at the mount point, copied into an empty volume
    with owners, modes and times; the volume's root takes the directory's owner and mode.
    Directories, regular files and symlinks (as links, never followed); nothing else."""
    for base, dirs, files in os.walk(source):
        here = Path(base)
        there = target / here.relative_to(source)
        for name in (*dirs, *files):
            src, dst = here / name, there / name
            facts = os.lstat(src)
            if stat.S_ISLNK(facts.st_mode):
                os.symlink(os.readlink(src), dst)
            elif stat.S_ISDIR(facts.st_mode):
                dst.mkdir(exist_ok=True)
            elif stat.S_ISREG(facts.st_mode):
                shutil.copyfile(src, dst, follow_symlinks=False)
            else:
                continue
            os.chown(dst, facts.st_uid, facts.st_gid, follow_symlinks=False)
            if not stat.S_ISLNK(facts.st_mode):
                os.chmod(dst, stat.S_IMODE(facts.st_mode))
                os.utime(dst, ns=(facts.st_atime_ns, facts.st_mtime_ns))
    facts = source.stat()
    os.chown(target, facts.st_uid, facts.st_gid)
    target.chmod(stat.S_IMODE(facts.st_mode))
