"""Registry credentials as docker keeps them: a ``config.json`` in the CLI's config directory
(``~/.shoal``, or ``$SHOAL_CONFIG``), 0600, with ``auths`` (``{"auth": base64(user:pass)}`` or
an ``identitytoken`` per registry key), and credential helpers: ``credHelpers`` per registry,
else ``credsStore`` for all, run as ``docker-credential-NAME get|store|erase`` with docker's
JSON on stdin. Keys other than these are kept as found, so docker's own file can be shared.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from channels._user_config import user_config_dir
from protocol.errors import InvalidArgument, Unavailable
from protocol.messages import RegistryOptions

if TYPE_CHECKING:
    # Loaded when a login is read or kept (pathlib, base64, json): ``keeps_no_login``, which
    # every run asks, needs none of them when there is no config file.
    from pathlib import Path

CONFIG_NAME = "config.json"
TOKEN_USER = "<token>"  # docker's username for an identity token kept by a helper
HELPER_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class StoredLogin:
    username: str = ""
    password: str = ""
    identity_token: str = ""

    def options(self, *, ca_pem: str = "", insecure: bool = False) -> RegistryOptions:
        return RegistryOptions(username=self.username, password=self.password,
                               identity_token=self.identity_token, ca_pem=ca_pem,
                               insecure=insecure)


def config_file() -> str:
    return os.path.join(user_config_dir(), CONFIG_NAME)


def config_path() -> Path:
    from pathlib import Path

    return Path(config_file())


def _load(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            import json  # once there is a file: most runs find none

            data = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidArgument(f"{path}: not a JSON object")
    return data


def _save(path: Path, data: dict[str, Any]) -> None:
    import json
    import tempfile  # here, as shutil and subprocess below: every `run` reads a login, few save

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent="\t")
            out.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _helper(data: dict[str, Any], key: str) -> str | None:
    helpers = data.get("credHelpers") or {}
    name = helpers.get(key) if isinstance(helpers, dict) else None
    name = name or data.get("credsStore")
    return name if isinstance(name, str) and name else None


def _run_helper(name: str, action: str, payload: str) -> str:
    import shutil
    import subprocess

    program = f"docker-credential-{name}"
    if shutil.which(program) is None:
        raise Unavailable(f"credential helper {program} is not installed (named in "
                          f"{config_path()})")
    done = subprocess.run([program, action], input=payload, capture_output=True, text=True,
                          timeout=HELPER_TIMEOUT, check=False)
    if done.returncode != 0:
        text = (done.stdout.strip() or done.stderr.strip())[:500]
        if action == "get" and "credentials not found" in text.lower():
            return ""
        raise Unavailable(f"{program} {action}: {text or f'exit status {done.returncode}'}")
    return done.stdout


def keeps_no_login(path: Path | None = None) -> bool:
    """Whether no registry has a login here (no config file, or one without ``auths`` and
    credential helpers): ``load_login`` is anonymous whatever the key."""
    data = _load(path or config_file())
    return not (data.get("auths") or data.get("credHelpers") or data.get("credsStore"))


def load_login(key: str, path: Path | None = None) -> StoredLogin:
    """The credentials kept for registry ``key``; anonymous when there are none."""
    data = _load(path or config_path())
    helper = _helper(data, key)
    if helper is not None:
        answer = _run_helper(helper, "get", key)
        if not answer:
            return StoredLogin()
        import json

        try:
            found = json.loads(answer)
        except ValueError as exc:
            raise Unavailable(f"docker-credential-{helper} get: not JSON") from exc
        user, secret = str(found.get("Username", "")), str(found.get("Secret", ""))
        if user == TOKEN_USER:
            return StoredLogin(identity_token=secret)
        return StoredLogin(user, secret)
    entry = (data.get("auths") or {}).get(key) or {}
    if not isinstance(entry, dict):
        return StoredLogin()
    if entry.get("identitytoken"):
        return StoredLogin(identity_token=str(entry["identitytoken"]))
    encoded = entry.get("auth")
    if not encoded:
        return StoredLogin()
    import base64

    try:
        user, _, password = base64.b64decode(encoded).decode().partition(":")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"{path or config_path()}: the auth of {key} is not "
                              "base64(user:password)") from exc
    return StoredLogin(user, password)


def store_login(key: str, login: StoredLogin, path: Path | None = None) -> str:
    """Keep ``login`` for ``key``: in its helper if one is configured, else in the file.
    Returns where it went (for the message ``login`` prints)."""
    path = path or config_path()
    data = _load(path)
    helper = _helper(data, key)
    if helper is not None:
        user = TOKEN_USER if login.identity_token else login.username
        secret = login.identity_token or login.password
        import json

        _run_helper(helper, "store", json.dumps({"ServerURL": key, "Username": user,
                                                 "Secret": secret}))
        return f"docker-credential-{helper}"
    auths = data.setdefault("auths", {})
    if login.identity_token:
        auths[key] = {"identitytoken": login.identity_token}
    else:
        import base64

        raw = f"{login.username}:{login.password}".encode()
        auths[key] = {"auth": base64.b64encode(raw).decode()}
    _save(path, data)
    return str(path)


def erase_login(key: str, path: Path | None = None) -> bool:
    """Forget ``key``'s credentials; whether there were any."""
    path = path or config_path()
    data = _load(path)
    helper = _helper(data, key)
    if helper is not None:
        _run_helper(helper, "erase", key)
        return True
    auths = data.get("auths") or {}
    if key not in auths:
        return False
    del auths[key]
    _save(path, data)
    return True
