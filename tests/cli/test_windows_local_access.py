"""How the CLI on a Windows host finds its daemons without a local socket: no ipc:// default,
the daemons' tcp addresses instead, and a runtime dir without uids (checked here by taking
away what Windows lacks)."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

import pytest

from channels import credentials, local
from cli.client import default_hosts
from protocol.addresses import DEFAULT_SCHEDULER, DEFAULT_WORKER
from protocol.errors import AddressError


def test_without_local_sockets_the_cli_dials_the_daemons_tcp_defaults(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_hosts().startswith("ipc://")  # this host: the sockets first
    monkeypatch.setattr(credentials, "HAS_LOCAL_SOCKET", False)
    assert default_hosts() == f"{DEFAULT_SCHEDULER},{DEFAULT_WORKER}"


def test_a_local_socket_is_refused_where_there_is_none(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    monkeypatch.setattr(local, "HAS_LOCAL_SOCKET", False)
    with pytest.raises(AddressError, match="no local socket on this host"):
        asyncio.run(local.listen_local(str(tmp_path / "shoal.sock")))
    assert not (tmp_path / "shoal.sock").exists()


def test_the_runtime_and_state_dirs_need_no_uid(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SHOAL_RUNTIME_DIR", "XDG_RUNTIME_DIR", "SHOAL_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delattr(os, "geteuid")  # as on Windows
    assert credentials.runtime_dir() == Path(tempfile.gettempdir()) / "shoal"
    assert credentials.worker_state_dir().parts[-2:] == ("shoal", "worker")
