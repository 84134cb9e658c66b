"""Interactive sessions through the real CLI and a standalone worker: exec -i/-t, run -i/-t,
and --init (a real PID 1 that reaps and forwards signals). Both drivers where they apply."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.helpers.worker_process import ROOT, Worker, wait_pid_exit


def cli_env(node: Worker) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "SHOAL_HOST": node.address}


def in_pty(node: Worker, args: list[str], typed: bytes, *, until: bytes = b"") -> tuple[int, str]:
    """Run the CLI on a new pseudo-terminal as a user would; type ``typed`` once ``until`` has
    been seen on the terminal; (exit code, everything the terminal showed)."""
    pid, master = pty.fork()
    if pid != 0:
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    if pid == 0:  # the child: the CLI, with the pty as its controlling terminal
        os.chdir(ROOT)
        os.execve(sys.executable, [sys.executable, "-m", "cli", *args], cli_env(node))
    seen = b""
    sent = False
    try:
        while True:
            if not sent and until in seen:
                os.write(master, typed)
                sent = True
            readable, _, _ = select.select([master], [], [], 30)
            assert readable, f"the CLI said nothing for 30 s; so far: {seen!r}"
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the CLI has exited and closed the terminal
                break
            if not data:
                break
            seen += data
    finally:
        os.close(master)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), seen.decode(errors="replace")


def shown_lines(shown: str) -> list[str]:
    """The lines a terminal showed; without -i the user's terminal is not raw, so each line
    break has gone through two terminals (\\r\\r\\n)."""
    return [line.strip() for line in shown.splitlines() if line.strip()]


def running(node: Worker, name: str) -> None:
    node.shoal("run", "-d", "--name", name, "busybox", "sh", "-c",
               "trap 'exit 0' TERM; while :; do sleep 0.05; done")


def test_exec_with_piped_stdin(worker: Worker) -> None:
    running(worker, "c")
    result = subprocess.run([sys.executable, "-m", "cli", "exec", "-i", "c", "cat"],
                            input="a\nb\n", capture_output=True, text=True, timeout=30,
                            cwd=ROOT, env=cli_env(worker))
    assert (result.returncode, result.stdout) == (0, "a\nb\n")
    split = worker.shoal("exec", "c", "sh", "-c", "echo out; echo err >&2; exit 4", check=False)
    assert (split.returncode, split.stdout, split.stderr) == (4, "out\n", "err\n")


def test_exec_with_a_terminal(worker: Worker) -> None:
    running(worker, "c")
    code, shown = in_pty(worker, ["exec", "-i", "-t", "c", "sh"], b"tty; echo hi; exit 3\n")
    assert code == 3, shown
    assert "hi\r\n" in shown
    assert "/dev/pts/" in shown
    # The terminal has the user's window size from the start: the program looks at once.
    code, shown = in_pty(worker, ["exec", "-i", "-t", "c", "stty", "size"], b"")
    assert (code, shown.split()) == (0, ["30", "100"]), shown


def test_exec_dash_t_without_dash_i(worker: Worker) -> None:
    # Docker's -t alone: stdin, stdout and stderr are all the terminal, of the user's size,
    # but what the user types is not forwarded (the read gives up after 1 s with nothing).
    running(worker, "c")
    script = ('[ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-tty; stty size; echo ready; '
              'got=$(timeout 1 head -n 1); echo "got[$got]"; exit 5')
    code, shown = in_pty(worker, ["exec", "-t", "c", "sh", "-c", script], b"typed\n",
                         until=b"ready")
    assert code == 5, shown
    lines = shown_lines(shown)
    assert lines[:3] == ["all-tty", "30 100", "ready"], shown
    assert "got[]" in lines, shown


def test_dash_t_needs_a_terminal(worker: Worker) -> None:
    running(worker, "c")
    result = worker.shoal("exec", "-i", "-t", "c", "sh", check=False)
    assert result.returncode == 1
    assert "the input device is not a TTY" in result.stderr


def test_a_client_killed_mid_exec_leaves_no_process(worker: Worker) -> None:
    running(worker, "c")
    marker = f"{os.getpid()}{id(worker)}"  # a sleep nobody else runs
    # The marker is in the exec'd process's environment from the start; the shell keeps its
    # pid when it replaces itself with the sleep, so the process is found as soon as it speaks.
    client = subprocess.Popen(
        [sys.executable, "-m", "cli", "exec", "-i", "-e", f"SHOAL_TEST_MARK={marker}",
         "c", "sh", "-c", "echo ready; exec sleep 3600"], cwd=ROOT, env=cli_env(worker),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert client.stdout is not None
    assert client.stdout.readline() == b"ready\n"  # the exec'd shell runs
    pids = [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()
            and f"SHOAL_TEST_MARK={marker}".encode() in _environ(entry)
            and int(entry.name) != client.pid]
    assert len(pids) == 1
    client.kill()
    client.wait(10)
    for pid in pids:
        wait_pid_exit(pid)  # the worker notices the client is gone and kills the process
    assert client.stdin is not None
    client.stdin.close()
    client.stdout.close()


def _environ(entry: Path) -> bytes:
    try:
        return (entry / "environ").read_bytes()
    except OSError:
        return b""


# The process driver has no namespaces for --init: these run on the native driver only.
native_driver = pytest.mark.parametrize("worker", ["native"], indirect=True)
process_driver = pytest.mark.parametrize("worker", ["process"], indirect=True)


def test_run_interactive_with_a_terminal(worker: Worker) -> None:
    code, shown = in_pty(worker, ["run", "-i", "-t", "--name", "shell", "busybox", "sh"],
                         b"echo hi; exit 3\n", until=b"# ")  # root's prompt, no newline
    assert code == 3, shown
    assert "hi\r\n" in shown
    assert "hi\n" in worker.shoal("logs", "shell").stdout  # the engine logs the terminal
    info = json.loads(worker.shoal("inspect", "shell").stdout)[0]
    assert info["spec"]["tty"] and info["spec"]["stdin_open"]


def test_run_dash_t_has_a_sized_terminal_on_every_stdio(worker: Worker) -> None:
    code, shown = in_pty(worker, ["run", "-t", "--rm", "busybox", "sh", "-c",
                                  "[ -t 0 ] && [ -t 1 ] && echo all-tty; stty size; exit 4"], b"")
    assert code == 4, shown
    assert shown_lines(shown) == ["all-tty", "30 100"], shown


@process_driver
def test_a_terminal_survives_a_worker_killed_with_kill_9(worker: Worker, tmp_path: Path) -> None:
    # The shim holds the pty master: the container gets no hangup when the worker dies, and
    # what its terminal shows meanwhile reaches the log.
    gate = tmp_path / "gate"
    worker.shoal("run", "-d", "-i", "-t", "--name", "term", "busybox", "sh", "-c",
                 f"trap 'echo hangup; exit 9' HUP; echo up; while [ ! -e {gate} ]; do "
                 "sleep 0.02; done; [ -t 0 ] && echo still-a-tty; exit 5")
    pid = json.loads(worker.shoal("inspect", "term").stdout)[0]["state"]["pid"]
    worker.kill()
    gate.touch()
    wait_pid_exit(pid)  # it ends while no worker runs
    worker.start()
    assert worker.shoal("wait", "term").stdout.strip() == "5"
    assert shown_lines(worker.shoal("logs", "term").stdout) == ["up", "still-a-tty"]


@native_driver
def test_a_terminal_keeps_its_session_while_the_worker_restarts(worker: Worker) -> None:
    # The runtime helper keeps a copy of the pty master: a worker killed with kill -9 does not
    # hang up the container's terminal, and the next worker takes the terminal back.
    worker.shoal("run", "-d", "-i", "-t", "--name", "term", "busybox", "sh", "-c",
                 "trap 'echo hangup; exit 9' HUP; echo up; while [ ! -e /tmp/gate ]; do "
                 "sleep 0.02; done; [ -t 0 ] && echo still-a-tty; exit 5")
    pid = json.loads(worker.shoal("inspect", "term").stdout)[0]["state"]["pid"]
    worker.kill()
    worker.start()
    assert Path(f"/proc/{pid}").exists()  # no hangup took it
    worker.shoal("exec", "term", "touch", "/tmp/gate")  # the gate, inside the container
    assert worker.shoal("wait", "term").stdout.strip() == "5"
    assert shown_lines(worker.shoal("logs", "term").stdout) == ["up", "still-a-tty"]


def test_run_interactive_with_a_pipe(worker: Worker) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli", "run", "-i", "busybox", "sh", "-c",
         "[ -t 0 ] || echo no-tty; cat; exit 2"], input="a\nb\n", capture_output=True,
        text=True, timeout=30, cwd=ROOT, env=cli_env(worker))
    assert (result.returncode, result.stdout) == (2, "no-tty\na\nb\n"), result.stderr


@native_driver
def test_without_init_the_command_is_pid_1(worker: Worker) -> None:
    assert worker.shoal("run", "--rm", "busybox", "sh", "-c", "echo $$").stdout == "1\n"
    shown = worker.shoal("run", "--rm", "--init", "busybox", "sh", "-c",
                         "echo $$; cat /proc/1/cmdline | tr '\\0' ' '").stdout.split("\n")
    assert shown[0] != "1"
    assert shown[1].startswith("/sbin/shoal-init -- sh -c")


def zombies(node: Worker, name: str) -> list[str]:
    listed = node.shoal("exec", name, "sh", "-c",
                        "grep -l '^State:.*Z' /proc/[0-9]*/status; true").stdout
    return listed.split()


@native_driver
def test_init_reaps_orphans(worker: Worker) -> None:
    # The inner shell exits at once, so `sleep 0` is orphaned and re-parented to PID 1; under
    # --init that is tini, which must reap it: PID 1 is left with the command as its only
    # child (a zombie would stay listed there for good) and no process is a zombie.
    worker.shoal("run", "-d", "--init", "--name", "reaped", "busybox", "sh", "-c",
                 "sh -c 'sleep 0 &'; exec sleep 1000")
    deadline = time.monotonic() + 20
    while len(worker.shoal("exec", "reaped", "cat", "/proc/1/task/1/children").stdout.split()
              ) != 1:
        assert time.monotonic() < deadline, "PID 1 still has the orphan as a child"
    assert zombies(worker, "reaped") == []


@native_driver
def test_init_forwards_signals(worker: Worker) -> None:
    # sleep as PID 1 ignores SIGTERM: stop must fall back to SIGKILL (137)...
    worker.shoal("run", "-d", "--name", "bare", "busybox", "sleep", "1000")
    worker.shoal("stop", "-t", "1", "bare")
    assert worker.shoal("wait", "bare").stdout.strip() == "137"
    # ...tini passes SIGTERM on, sleep dies of it, tini exits 128 + 15, well before 30 s.
    worker.shoal("run", "-d", "--init", "--name", "inited", "busybox", "sleep", "1000")
    worker.shoal("stop", "-t", "30", "inited")
    assert worker.shoal("wait", "inited").stdout.strip() == "143"
