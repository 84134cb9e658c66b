"""Where a client finds the CURVE keys to dial an address with.

Two places, looked at in this order:

- the user's own (``~/.shoal``, or ``$SHOAL_CONFIG``): ``client.key`` (the user's keypair, 0600)
  and ``clusters/<cluster key>.json`` for each cluster the user enrolled in with a client token
  (``shoal enroll``): the cluster's public key and the managers' addresses;
- the host's (``/run/shoal/local``, or ``$SHOAL_RUNTIME_DIR/local``): each daemon on this host
  publishes there, readable by root only, a client keypair it admits and the addresses it
  listens on, so root on the same host needs no enrollment (as root needs none for
  ``docker.sock``). A file whose daemon has died is passed over.

Files are JSON; keys are key text (``channels._curve.key_text``). The daemons' default state
dirs are here too, since their sockets (``STATE_DIR/shoal.sock``) are where the CLI looks
first.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from channels._user_config import user_config_dir

TYPE_CHECKING = False
if TYPE_CHECKING:
    # Loaded by the functions that use keys: every client command reads user_dir (a login,
    # the config), few need CURVE (hashlib, base64: milliseconds of each command's start).
    from channels._curve import CurveClient, Keypair

_WILDCARD_HOSTS = ("0.0.0.0", "[::]", "*", "::")
SOCKET_NAME = "shoal.sock"
MAX_SOCKET_PATH = 100  # sockaddr_un holds 108 bytes with the NUL; leave room
# Whether daemons here serve a local ipc:// socket: not on Windows, where the CLI on the host
# dials their tcp listeners with the keys they publish in the runtime dir instead.
HAS_LOCAL_SOCKET = sys.platform != "win32"


def _is_root() -> bool:
    """Root on POSIX; Windows has no uid (its daemons and clients use the user's dirs)."""
    geteuid = getattr(os, "geteuid", None)
    return geteuid is not None and geteuid() == 0


def _private_tmp() -> str:
    """A per-user place in the temporary directory: /tmp/shoal-UID on POSIX; on Windows the
    temporary directory is the user's own already."""
    geteuid = getattr(os, "geteuid", None)
    if geteuid is not None:
        return f"/tmp/shoal-{geteuid()}"
    import tempfile

    return tempfile.gettempdir()


def user_dir() -> Path:
    return Path(user_config_dir())


def runtime_dir() -> Path:
    """Where daemons leave what local clients need: root's /run/shoal, else the user's."""
    explicit = os.environ.get("SHOAL_RUNTIME_DIR")
    if explicit:
        return Path(explicit)
    if _is_root():
        return Path("/run/shoal")
    base = os.environ.get("XDG_RUNTIME_DIR") or _private_tmp()
    return Path(base) / "shoal"


def scheduler_state_dir() -> Path:
    """A scheduler's default state dir: $SHOAL_STATE_DIR, else $XDG_STATE_HOME/shoal, else
    ~/.local/state/shoal."""
    explicit = os.environ.get("SHOAL_STATE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "shoal"


def worker_state_dir() -> Path:
    """A worker's default state dir: $SHOAL_STATE_DIR/worker, else /var/lib/shoal/worker for
    root, else the user's state dir's ``shoal/worker``."""
    base = os.environ.get("SHOAL_STATE_DIR")
    if base:
        return Path(base) / "worker"
    if _is_root():
        return Path("/var/lib/shoal/worker")
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "shoal" / "worker"


def default_ipc_path(state_dir: Path) -> Path:
    """A daemon's root-only socket: ``STATE_DIR/shoal.sock``; when that path is too long for
    a unix socket, one named by the state dir's hash in the runtime directory."""
    path = state_dir.absolute() / SOCKET_NAME
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
        return path
    import hashlib

    digest = hashlib.sha256(os.fsencode(state_dir.absolute())).hexdigest()[:16]
    return runtime_dir() / "sockets" / f"{digest}.sock"


@dataclass(frozen=True, slots=True)
class Found:
    """Keys for an address, and where they came from (for error messages)."""

    curve: CurveClient
    source: str


def _matches(address: str, known: list[str]) -> bool:
    if address in known:
        return True
    scheme, _, where = address.partition("://")
    _, _, port = where.rpartition(":")
    for entry in known:
        entry_scheme, _, entry_where = entry.partition("://")
        host, _, entry_port = entry_where.rpartition(":")
        if entry_scheme == scheme and entry_port == port and host in _WILDCARD_HOSTS:
            return True
    return False


def _read(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _addresses(data: dict[str, object]) -> list[str]:
    listed = data.get("addresses")
    return [str(a) for a in listed] if isinstance(listed, list) else []


def _alive(pid: object) -> bool:
    """Whether the daemon that published a local key file still runs (a file without a pid
    is not one a daemon wrote: passed over, and removed by the next daemon that publishes)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate it there
        return _alive_on_windows(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _alive_on_windows(pid: int) -> bool:
    if sys.platform == "win32":  # for mypy: _winapi is Windows' own
        import _winapi

        try:
            handle = _winapi.OpenProcess(0x1000, False, pid)  # QUERY_LIMITED_INFORMATION
        except OSError as exc:
            return exc.winerror == 5  # access denied: it exists
        try:
            return _winapi.GetExitCodeProcess(handle) == 259  # STILL_ACTIVE
        finally:
            _winapi.CloseHandle(handle)
    return False


def find(address: str) -> Found | None:
    """The keys to dial ``address`` with CURVE, or None when none are known."""
    from channels._curve import CurveClient, Keypair, parse_key

    mine = user_dir()
    with contextlib.suppress(OSError, ValueError):
        keys = Keypair.parse((mine / "client.key").read_text())
        for path in sorted((mine / "clusters").glob("*.json")):
            data = _read(path)
            if data is None:
                continue
            addresses = _addresses(data)
            if _matches(address, addresses):
                server = parse_key(str(data.get("cluster_key", "")), str(path))
                return Found(CurveClient(server, keys), str(path))
    local = runtime_dir() / "local"
    candidates: list[tuple[float, Path]] = []
    with contextlib.suppress(OSError):
        for path in local.glob("*.json"):
            with contextlib.suppress(OSError):
                candidates.append((path.stat().st_mtime, path))
    for _, path in sorted(candidates, reverse=True):  # the newest daemon first
        data = _read(path)
        if data is None or not _alive(data.get("pid")):
            continue
        addresses = _addresses(data)
        if not _matches(address, addresses):
            continue
        with contextlib.suppress(ValueError):
            server = parse_key(str(data.get("server_key", "")), str(path))
            keys = Keypair(public=parse_key(str(data.get("public", "")), str(path)),
                           secret=parse_key(str(data.get("secret", "")), str(path)))
            return Found(CurveClient(server, keys), str(path))
    return None


def publish_local(name: str, addresses: list[str], server_key: bytes, keys: Keypair) -> Path:
    """Leave this daemon's local client keys for root's CLI on this host; returns the file
    (remove it with ``withdraw_local`` at exit). Named by the daemon and its pid, so two
    daemons of one name never remove each other's; files of daemons that died are removed."""
    from channels._curve import key_text, write_private

    local = runtime_dir() / "local"
    path = local / f"{name}-{os.getpid()}.json"
    runtime_dir().mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):
        for old in local.glob("*.json"):
            data = _read(old)
            if data is not None and not _alive(data.get("pid")):
                old.unlink(missing_ok=True)
    write_private(path, json.dumps({
        "addresses": addresses, "server_key": key_text(server_key),
        "public": key_text(keys.public), "secret": key_text(keys.secret), "pid": os.getpid(),
    }) + "\n")
    return path


def withdraw_local(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def client_keys() -> Keypair:
    """This user's client keypair, made on first use."""
    from channels._curve import load_keypair

    return load_keypair(user_dir() / "client.key")


def save_enrollment(cluster_key: bytes, addresses: list[str]) -> Path:
    """Remember a cluster this user's key is enrolled in, and where its managers are."""
    from channels._curve import key_text, write_private

    path = user_dir() / "clusters" / f"{key_text(cluster_key)}.json"
    known: list[str] = []
    data = _read(path)
    if data is not None:
        known = _addresses(data)
    merged = list(dict.fromkeys([*addresses, *known]))
    write_private(path, json.dumps({"cluster_key": key_text(cluster_key),
                                    "addresses": merged}) + "\n")
    return path
