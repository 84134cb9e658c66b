"""Terminals through the command line: ``run`` proxying a pty, ``create --console-socket``
handing its master over, and ``exec -t``."""

from __future__ import annotations

import json
import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.runtime_harness import Bundle, cli, read_all

pytestmark = pytest.mark.root


def _terminal(cfg: dict[str, Any]) -> None:
    cfg["process"]["terminal"] = True


def test_run_proxies_the_pty(make_bundle: Callable[..., Bundle],
                             state_root: Path) -> None:
    bundle = make_bundle(["sh", "-c", "tty; [ -t 1 ] && echo out-tty; exit 6"], _terminal)
    done = cli(state_root, "run", "-b", str(bundle.path), "tr1", check=False)
    assert done.returncode == 6, done.stderr
    assert done.stdout == "/dev/pts/0\r\nout-tty\r\n"  # a terminal's line endings
    assert not (state_root / "tr1").exists()


def test_console_socket_and_exec_tty(make_bundle: Callable[..., Bundle],
                                     state_root: Path) -> None:
    bundle = make_bundle(["sh", "-c", "tty; read x; echo got $x; exec sleep 1000"], _terminal)
    # Unix socket paths are short (108 bytes): not under pytest's long tmp_path.
    sock_dir = tempfile.mkdtemp(prefix="shoal-cs-")
    path = os.path.join(sock_dir, "console.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
        listener.listen(1)
        listener.settimeout(30)
        cli(state_root, "create", "--console-socket", path, "-b", str(bundle.path), "cs1")
        conn, _ = listener.accept()
        with conn:
            _msg, fds, _flags, _addr = socket.recv_fds(conn, 1024, 1)
        master = fds[0]
        cli(state_root, "start", "cs1")
        seen = b""
        # The shell's tty first: input typed before it would be echoed ahead of it.
        while b"\n" not in seen:
            chunk = os.read(master, 4096)
            assert chunk, seen
            seen += chunk
        assert seen == b"/dev/pts/0\r\n"
        os.write(master, b"hello\n")
        while b"got hello" not in seen:
            chunk = os.read(master, 4096)
            assert chunk, seen
            seen += chunk
        done = cli(state_root, "exec", "-t", "cs1", "sh", "-c", "tty; [ -t 0 ] && echo in-tty",
                   check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout == "/dev/pts/1\r\nin-tty\r\n"  # the init has pts/0
        cli(state_root, "delete", "--force", "cs1")
        read_all(master)  # the init is gone: the master reads EIO, and is closed
    finally:
        listener.close()
        os.unlink(path)
        os.rmdir(sock_dir)


def test_terminal_belongs_to_the_processs_user_and_exec_p_sets_its_size(
        make_bundle: Callable[..., Bundle], state_root: Path, tmp_path: Path) -> None:
    """As runc: the pty is the process's user's (its group stays devpts's tty group), for
    run and exec; exec -p process.json gives the new pty its consoleSize."""
    def edit(cfg: dict[str, Any]) -> None:
        _terminal(cfg)
        cfg["process"]["user"] = {"uid": 1000, "gid": 100}  # devpts is mounted gid=5

    bundle = make_bundle(["sh", "-c", "stat -c %u:%g $(tty)"], edit)
    done = cli(state_root, "run", "-b", str(bundle.path), "to1")
    assert done.stdout == "1000:5\r\n"
    bundle.config["process"]["args"] = ["sleep", "1000"]
    bundle.config["process"]["terminal"] = False
    bundle.write()
    cli(state_root, "run", "-d", "-b", str(bundle.path), "to2")
    process = tmp_path / "process.json"
    process.write_text(json.dumps({
        "terminal": True, "consoleSize": {"height": 10, "width": 110}, "cwd": "/",
        "user": {"uid": 1000, "gid": 100}, "env": ["PATH=/bin"],
        "args": ["sh", "-c", "stat -c %u:%g $(tty); stty size"]}))
    seen = cli(state_root, "exec", "-p", str(process), "to2")
    assert seen.stdout == "1000:5\r\n10 110\r\n"
    cli(state_root, "delete", "--force", "to2")
