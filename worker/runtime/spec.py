"""The runtime-spec config.json as typed structs, decoded and checked at the boundary.

Unknown fields and wrong types are refused with the JSON path of the offending field, so a
typo in a bundle is an error that names it rather than a silently ignored setting.
"""

# No postponed annotations: msgspec reads them when it builds a decoder, and a string costs an
# eval there (~140 of them, milliseconds of every runtime command), as in protocol's wire types.

import re
from pathlib import Path

import msgspec

from worker.runtime.errors import BundleInvalid

MAX_CONFIG_BYTES = 4 * 1024 * 1024


class _Struct(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, rename="camel"):
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
    user: User = msgspec.field(default_factory=User)
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


class IDMapping(msgspec.Struct, forbid_unknown_fields=True):
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
    # Kept as the JSON text (empty when absent): worker.runtime.seccomp checks it, and caches the
    # compiled filter by a digest of it. (msgspec cannot decode ``Raw | None``.)
    seccomp: msgspec.Raw = msgspec.Raw()


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


_AT_PATH = re.compile(r"^(.*?)(?: - at `\$(.*)`)?$", re.S)


def fold_keys(doc: object, typ: object) -> object:
    """``doc`` with each key of a struct's object renamed to the field name it matches
    case-insensitively (exact names first); maps and lists are walked by their value type."""
    import typing

    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if isinstance(typ, type) and issubclass(typ, msgspec.Struct) and isinstance(doc, dict):
        fields = {str(f.encode_name): f.type for f in msgspec.structs.fields(typ)}
        folded = {name.lower(): name for name in fields}
        out: dict[str, object] = {}
        for key, value in doc.items():
            name = str(key)
            name = name if name in fields else folded.get(name.lower(), name)
            out[name] = fold_keys(value, fields.get(name))
        return out
    if origin is list and isinstance(doc, list) and args:
        return [fold_keys(item, args[0]) for item in doc]
    if origin is dict and isinstance(doc, dict) and len(args) == 2:
        return {key: fold_keys(value, args[1]) for key, value in doc.items()}
    if args and origin is not None:  # X | None and the like: the struct member, if any
        for arg in args:
            if isinstance(arg, type) and issubclass(arg, msgspec.Struct):
                return fold_keys(doc, arg)
    return doc


def decode_spec(data: bytes) -> Spec:
    """Decode config.json bytes; a bad document raises BundleInvalid naming the field."""
    if len(data) > MAX_CONFIG_BYTES:
        raise BundleInvalid("config.json", f"larger than {MAX_CONFIG_BYTES} bytes")
    try:
        try:
            return msgspec.json.decode(data, type=Spec)
        except msgspec.ValidationError as exc:
            if "unknown field" not in str(exc):
                raise
            # Go's encoding/json (runc's) matches field names case-insensitively: a config
            # that runc takes ("CPU" for "cpu") is read again with its keys folded.
            return msgspec.convert(fold_keys(msgspec.json.decode(data), Spec), type=Spec)
    except msgspec.ValidationError as exc:
        match = _AT_PATH.match(str(exc))
        reason, where = (match.group(1), match.group(2)) if match else (str(exc), None)
        field = where.lstrip(".") if where else ""
        unknown = re.search(r"unknown field `([^`]*)`", reason)
        if unknown:
            field = f"{field}.{unknown.group(1)}" if field else unknown.group(1)
        missing = re.search(r"missing required field `([^`]*)`", reason)
        if missing:
            field = f"{field}.{missing.group(1)}" if field else missing.group(1)
        raise BundleInvalid(field or "config.json", reason) from exc
    except msgspec.DecodeError as exc:
        raise BundleInvalid("config.json", f"not valid JSON: {exc}") from exc


def load_spec(bundle: str | Path) -> Spec:
    """Read and decode ``bundle/config.json``."""
    path = Path(bundle) / "config.json"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BundleInvalid("config.json", f"cannot read {path}: {exc.strerror}") from exc
    return decode_spec(data)
