"""docker's mount flags, each parsed strictly into ``Mount``s: ``-v`` (a bind when the source
is a path, else a named volume), ``--tmpfs PATH[:OPTIONS]`` and ``--mount KEY=VALUE,...``; an
unknown key or a bad value is a usage error naming the flag."""

from __future__ import annotations

import re

import click

from cli.arguments import parse_memory
from protocol.specs import Mount

# docker's volume names: a letter or digit first, then letters, digits, '_', '.', '-'.
VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


def parse_volume(text: str) -> Mount:
    """``SOURCE:/CONTAINER/PATH[:ro|rw]``: SOURCE an absolute host path (a bind) or a volume
    name (a named volume, made on first use on the node, filled from the image)."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
        raise click.BadParameter(f"bad volume {text!r}: expected SOURCE:/CONTAINER[:ro|rw] "
                                 "(SOURCE a /host/path or a volume name)", param_hint="-v")
    source, target = parts[0], parts[1]
    if not target.startswith("/"):
        raise click.BadParameter(f"bad volume {text!r}: the container path must be "
                                 "absolute", param_hint="-v")
    read_only = len(parts) == 3 and parts[2] == "ro"
    if source.startswith("/"):
        return Mount(type="bind", source=source, target=target, read_only=read_only)
    check_volume_name(source, "-v")
    return Mount(type="volume", source=source, target=target, read_only=read_only)


def check_volume_name(name: str, hint: str) -> str:
    if not VOLUME_NAME.match(name) or len(name) > 255:
        raise click.BadParameter(f"{name!r} is not a volume name: letters, digits, '_', '.', "
                                 "'-', starting with a letter or digit (a host path must be "
                                 "absolute)", param_hint=hint)
    return name


def parse_tmpfs(text: str) -> Mount:
    """``/PATH[:size=64m,mode=1770,ro]``, docker's ``--tmpfs``."""
    target, _, options = text.partition(":")
    if not target.startswith("/"):
        raise click.BadParameter(f"bad tmpfs {text!r}: the path must be absolute",
                                 param_hint="--tmpfs")
    size, mode, read_only = 0, 0, False
    for option in filter(None, options.split(",")):
        key, sep, value = option.partition("=")
        if key in ("ro", "rw") and not sep:
            read_only = key == "ro"
        elif key == "size" and sep:
            size = _size(value, "--tmpfs")
        elif key == "mode" and sep:
            mode = _mode(value, "--tmpfs")
        elif key in ("nosuid", "nodev", "noexec", "exec", "suid", "dev") and not sep:
            raise click.BadParameter(f"tmpfs option {key!r} is not supported (a tmpfs is "
                                     "always nosuid,nodev)", param_hint="--tmpfs")
        else:
            raise click.BadParameter(f"unknown tmpfs option {option!r}: expected size=, "
                                     "mode=, ro or rw", param_hint="--tmpfs")
    return Mount(type="tmpfs", target=target, read_only=read_only, tmpfs_size=size,
                 tmpfs_mode=mode)


_MOUNT_KEYS = {
    "bind": {"source", "target", "readonly", "bind-propagation"},
    "volume": {"source", "target", "readonly", "volume-nocopy", "volume-driver"},
    "tmpfs": {"target", "readonly", "tmpfs-size", "tmpfs-mode"},
}
_ALIASES = {"src": "source", "dst": "target", "destination": "target", "ro": "readonly"}


def parse_mount(text: str) -> Mount:
    """docker's ``--mount type=volume|bind|tmpfs,source=…,target=…[,readonly][,…]``."""
    fields: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = _ALIASES.get(key.strip(), key.strip())
        if not key:
            raise click.BadParameter(f"bad mount {text!r}: an empty field", param_hint="--mount")
        if key in fields:
            raise click.BadParameter(f"bad mount {text!r}: {key} given twice",
                                     param_hint="--mount")
        fields[key] = value if sep else ""
        if not sep and key not in ("readonly", "volume-nocopy"):
            raise click.BadParameter(f"bad mount {text!r}: {key!r} needs a value",
                                     param_hint="--mount")
    kind = fields.pop("type", "volume")
    if kind not in _MOUNT_KEYS:
        raise click.BadParameter(f"bad mount {text!r}: type {kind!r} is not volume, bind or "
                                 "tmpfs", param_hint="--mount")
    unknown = sorted(set(fields) - _MOUNT_KEYS[kind])
    if unknown:
        raise click.BadParameter(f"bad mount {text!r}: {', '.join(unknown)} not allowed for "
                                 f"type={kind}", param_hint="--mount")
    target = fields.get("target", "")
    if not target.startswith("/"):
        raise click.BadParameter(f"bad mount {text!r}: target must be an absolute path",
                                 param_hint="--mount")
    read_only = _flag(fields.get("readonly"), "readonly")
    if kind == "tmpfs":
        return Mount(type="tmpfs", target=target, read_only=read_only,
                     tmpfs_size=_size(fields["tmpfs-size"], "--mount")
                     if "tmpfs-size" in fields else 0,
                     tmpfs_mode=_mode(fields["tmpfs-mode"], "--mount")
                     if "tmpfs-mode" in fields else 0)
    source = fields.get("source", "")
    if kind == "bind":
        if not source.startswith("/"):
            raise click.BadParameter(f"bad mount {text!r}: a bind's source must be an absolute "
                                     "path", param_hint="--mount")
        if fields.get("bind-propagation", "rprivate") != "rprivate":
            raise click.BadParameter(f"bad mount {text!r}: only bind-propagation=rprivate is "
                                     "supported", param_hint="--mount")
        return Mount(type="bind", source=source, target=target, read_only=read_only)
    if not source:
        raise click.BadParameter(f"bad mount {text!r}: a volume needs a source (anonymous "
                                 "volumes are not supported)", param_hint="--mount")
    if fields.get("volume-driver", "local") != "local":
        raise click.BadParameter(f"bad mount {text!r}: only the local volume driver is "
                                 "supported", param_hint="--mount")
    return Mount(type="volume", source=check_volume_name(source, "--mount"), target=target,
                 read_only=read_only, no_copy=_flag(fields.get("volume-nocopy"),
                                                    "volume-nocopy"))


def _flag(value: str | None, key: str) -> bool:
    if value is None:
        return False
    if value in ("", "1", "true"):
        return True
    if value in ("0", "false"):
        return False
    raise click.BadParameter(f"{key}={value!r}: expected true or false", param_hint="--mount")


def _size(value: str, hint: str) -> int:
    try:
        return parse_memory(value)
    except click.BadParameter as exc:
        raise click.BadParameter(exc.message, param_hint=hint) from None


def _mode(value: str, hint: str) -> int:
    try:
        mode = int(value, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o7777:
        raise click.BadParameter(f"mode {value!r} is not an octal mode like 1777",
                                 param_hint=hint)
    return mode
