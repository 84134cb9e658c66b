"""Registry credentials kept as docker keeps them: config.json (0600, base64 user:password or
an identity token, other keys left alone) and credential helpers (``credsStore``,
``credHelpers``) run as ``docker-credential-NAME`` with docker's JSON on stdin."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from cli.registry_credentials import (
    StoredLogin,
    erase_login,
    keeps_no_login,
    load_login,
    store_login,
)
from protocol.errors import Unavailable

HELPER = """#!{python}
import json, sys
from pathlib import Path
store = Path({store!r})
kept = json.loads(store.read_text()) if store.exists() else {{}}
action = sys.argv[1]
data = sys.stdin.read()
if action == "store":
    entry = json.loads(data)
    kept[entry["ServerURL"]] = [entry["Username"], entry["Secret"]]
elif action == "get":
    if data.strip() not in kept:
        print("credentials not found in native keychain")
        sys.exit(1)
    user, secret = kept[data.strip()]
    print(json.dumps({{"ServerURL": data.strip(), "Username": user, "Secret": secret}}))
elif action == "erase":
    kept.pop(data.strip(), None)
store.write_text(json.dumps(kept))
"""


def test_the_config_file_is_dockers(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {}, "psFormat": "table {{.ID}}"}))
    assert load_login("r.example.com", config) == StoredLogin()
    store_login("r.example.com", StoredLogin("alice", "pw:with:colons"), config)
    store_login("https://index.docker.io/v1/", StoredLogin(identity_token="tok"), config)
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    data = json.loads(config.read_text())
    assert data["psFormat"] == "table {{.ID}}"  # what docker keeps there stays
    assert data["auths"]["r.example.com"] == {"auth": "YWxpY2U6cHc6d2l0aDpjb2xvbnM="}
    assert load_login("r.example.com", config) == StoredLogin("alice", "pw:with:colons")
    assert load_login("https://index.docker.io/v1/", config) == StoredLogin(identity_token="tok")
    assert erase_login("r.example.com", config)
    assert not erase_login("r.example.com", config)
    assert load_login("r.example.com", config) == StoredLogin()


@pytest.mark.parametrize("how", ["credsStore", "credHelpers"])
def test_credential_helpers_are_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     how: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-shoaltest"
    helper.write_text(HELPER.format(python=sys.executable, store=str(tmp_path / "kept.json")))
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    config = tmp_path / "config.json"
    setting: dict[str, object] = {"credsStore": "shoaltest"} if how == "credsStore" else \
        {"credHelpers": {"r.example.com": "shoaltest"}}
    config.write_text(json.dumps(setting))
    assert store_login("r.example.com", StoredLogin("bob", "s3"), config) == \
        "docker-credential-shoaltest"
    assert "auths" not in json.loads(config.read_text())  # nothing in clear in the file
    assert load_login("r.example.com", config) == StoredLogin("bob", "s3")
    store_login("r.example.com", StoredLogin(identity_token="refresh"), config)
    assert load_login("r.example.com", config) == StoredLogin(identity_token="refresh")
    assert erase_login("r.example.com", config)
    assert load_login("r.example.com", config) == StoredLogin()


def test_a_missing_helper_is_named(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"credsStore": "nonexistent-shoal"}))
    with pytest.raises(Unavailable, match="docker-credential-nonexistent-shoal is not installed"):
        load_login("r.example.com", config)


@pytest.mark.parametrize("config", [None, {}, {"auths": {}}, {"credsStore": ""},
                                    {"proxies": {"default": {}}}])
def test_no_login_is_kept_without_auths_or_helpers(tmp_path: Path, config: object) -> None:
    path = tmp_path / "config.json"
    if config is not None:
        path.write_text(json.dumps(config))
    assert keeps_no_login(path)
    assert load_login("registry.example:5000", path) == StoredLogin()


@pytest.mark.parametrize("config", [{"credsStore": "desktop"},
                                    {"credHelpers": {"other.example": "pass"}}])
def test_a_helper_may_keep_a_login(tmp_path: Path, config: object) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert not keeps_no_login(path)


def test_a_stored_login_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    store_login("registry.example:5000", StoredLogin("ann", "pw"), path)
    assert not keeps_no_login(path)
