"""The runtime-spec config.json as typed records (``worker.runtime.records``), decoded and
checked at the boundary.

Unknown fields and wrong types are refused with the JSON path of the offending field, so a
typo in a bundle is an error that names it rather than a silently ignored setting.
"""

from __future__ import annotations

from worker.runtime.errors import BundleInvalid
from worker.runtime.records import DecodeFailed, Record, decode_into, field, loads

TYPE_CHECKING = False  # typing and pathlib cost a runtime command milliseconds to import
if TYPE_CHECKING:
    from pathlib import Path

MAX_CONFIG_BYTES = 4 * 1024 * 1024


class _Struct(Record, forbid_unknown_fields=True, omit_defaults=True, rename="camel",
              fold_case=True):
    pass


class User(_Struct):
    uid: int = 0
    gid: int = 0
    umask: int | None = None
    additional_gids: list[int] = []
    username: str | None = None


class Capabilities(_Struct):
    bounding: list[str] | None = None
    effective: list[str] | None = None
    inheritable: list[str] | None = None
    permitted: list[str] | None = None
    ambient: list[str] | None = None


class Rlimit(_Struct):
    type: str
    hard: int
    soft: int


class ConsoleSize(_Struct):
    height: int
    width: int


class Process(_Struct):
    args: list[str] = []
    cwd: str = "/"
    env: list[str] = []
    terminal: bool = False
    console_size: ConsoleSize | None = None
    user: User = field(default_factory=User)
    capabilities: Capabilities | None = None
    rlimits: list[Rlimit] = []
    no_new_privileges: bool = False
    apparmor_profile: str | None = None
    oom_score_adj: int | None = None
    selinux_label: str | None = None


class Root(_Struct):
    path: str
    readonly: bool = False


class Mount(_Struct):
    destination: str
    type: str | None = None
    source: str | None = None
    options: list[str] = []


class Hook(_Struct):
    path: str
    args: list[str] = []
    env: list[str] = []
    timeout: int | None = None


class Hooks(_Struct):
    prestart: list[Hook] = []
    create_runtime: list[Hook] = []
    create_container: list[Hook] = []
    start_container: list[Hook] = []
    poststart: list[Hook] = []
    poststop: list[Hook] = []


class Namespace(_Struct):
    type: str
    path: str | None = None


class IDMapping(Record, forbid_unknown_fields=True, fold_case=True):
    containerID: int
    hostID: int
    size: int


class Device(_Struct):
    type: str
    path: str
    major: int = 0
    minor: int = 0
    file_mode: int | None = None
    uid: int | None = None
    gid: int | None = None


class DeviceRule(_Struct):
    allow: bool
    type: str | None = None
    major: int | None = None
    minor: int | None = None
    access: str | None = None


class Memory(_Struct):
    limit: int | None = None
    reservation: int | None = None
    swap: int | None = None
    kernel: int | None = None
    kernel_TCP: int | None = None
    swappiness: int | None = None
    disable_OOM_killer: bool | None = None
    use_hierarchy: bool | None = None
    check_before_update: bool | None = None


class CPU(_Struct):
    shares: int | None = None
    quota: int | None = None
    burst: int | None = None
    period: int | None = None
    realtime_runtime: int | None = None
    realtime_period: int | None = None
    cpus: str | None = None
    mems: str | None = None
    idle: int | None = None


class Pids(_Struct):
    limit: int


class BlockIO(_Struct):
    """Only the weight is applied; the per-device lists are refused (cgroups.v1_writes)."""

    weight: int | None = None
    leaf_weight: int | None = None
    weight_device: list[dict[str, object]] = []
    throttle_read_bps_device: list[dict[str, object]] = []
    throttle_write_bps_device: list[dict[str, object]] = []
    throttle_read_IOPS_device: list[dict[str, object]] = []
    throttle_write_IOPS_device: list[dict[str, object]] = []


class Resources(_Struct):
    devices: list[DeviceRule] = []
    memory: Memory | None = None
    cpu: CPU | None = None
    pids: Pids | None = None
    block_IO: BlockIO | None = None
    unified: dict[str, str] | None = None


class Linux(_Struct):
    namespaces: list[Namespace] = []
    uid_mappings: list[IDMapping] = []
    gid_mappings: list[IDMapping] = []
    devices: list[Device] = []
    cgroups_path: str | None = None
    resources: Resources | None = None
    rootfs_propagation: str | None = None
    masked_paths: list[str] = []
    readonly_paths: list[str] = []
    sysctl: dict[str, str] = {}
    mount_label: str | None = None
    # Any JSON value (None when absent): worker.runtime.seccomp checks it, and caches the
    # compiled filter by a digest of it.
    seccomp: object = None


class Spec(_Struct):
    oci_version: str
    root: Root | None = None
    process: Process | None = None
    hostname: str | None = None
    domainname: str | None = None
    mounts: list[Mount] = []
    hooks: Hooks | None = None
    annotations: dict[str, str] = {}
    linux: Linux | None = None


def decode_spec(data: bytes) -> Spec:
    """Decode config.json bytes; a bad document raises BundleInvalid naming the field."""
    if len(data) > MAX_CONFIG_BYTES:
        raise BundleInvalid("config.json", f"larger than {MAX_CONFIG_BYTES} bytes")
    try:
        doc = loads(data)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise BundleInvalid("config.json", f"not valid JSON: {exc}") from exc
    try:
        return decode_into(Spec, doc)
    except DecodeFailed as exc:
        raise BundleInvalid(exc.path or "config.json", exc.reason) from exc


def load_spec(bundle: str | Path) -> Spec:
    """Read and decode ``bundle/config.json``."""
    path = f"{bundle}/config.json"
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise BundleInvalid("config.json", f"cannot read {path}: {exc.strerror}") from exc
    return decode_spec(data)
