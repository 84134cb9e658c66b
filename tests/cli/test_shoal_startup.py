"""``shoal`` imports little before it dispatches: the runtime verbs and ``version`` run
without structlog, uvloop or the wire protocol's message types, and no client verb loads the
daemons' metrics (prometheus_client)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOT_AT_START = ["structlog", "uvloop", "asyncio", "msgspec", "protocol.messages", "rich",
                "worker.runtime", "prometheus_client"]


def _loaded_after(*args: str, check: bool = True) -> tuple[str, set[str]]:
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print(*sys.modules, file=sys.stderr))\n"
            "sys.argv[0] = 'shoal'\n"
            "from cli.main import main\n"
            "main()")
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          check=check, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    return done.stdout, set(done.stderr.split())


def test_version_imports_no_logging_no_event_loop_no_codec() -> None:
    out, loaded = _loaded_after("version")
    assert out.startswith("shoal ")
    assert sorted(loaded & set(NOT_AT_START)) == []


def test_the_help_of_the_runtime_imports_no_structlog() -> None:
    out, loaded = _loaded_after("runtime", "--help")
    assert "state" in out
    assert "structlog" not in loaded
    assert "uvloop" not in loaded


def test_ps_loads_no_metrics() -> None:
    # Run through to its connect (which fails: nobody listens there), so every module the
    # verb needs has been loaded.
    _, loaded = _loaded_after("-H", "ipc:///nonexistent/shoal.sock", "ps", check=False)
    assert "cli.containers" in loaded and "protocol.messages" in loaded
    assert "prometheus_client" not in loaded


def _loaded_by_the_program(*args: str, env: dict[str, str] | None = None
                           ) -> tuple[str, set[str]]:
    """Output and modules of ``shoal ARGS`` entered as the console script enters it
    (``cli.entry:main``, which ``python -m cli`` runs too), with ``env`` added to the
    environment; the command may fail."""
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print(*sys.modules, file=sys.stderr))\n"
            "sys.argv[0] = 'shoal'\n"
            "import runpy\n"
            "runpy.run_module('cli', run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          check=False, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
    return done.stdout, set(done.stderr.split())


def test_the_console_script_enters_before_click() -> None:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["shoal"] == "cli.entry:main"


@pytest.mark.parametrize("args", [["version"], ["runtime", "--version"], ["runtime", "-v"]])
def test_the_version_verbs_load_neither_click_nor_msgspec(args: list[str]) -> None:
    out, loaded = _loaded_by_the_program(*args)
    assert out.startswith("shoal ") and "0" in out
    heavy = {"click", "msgspec", "typing", "importlib.metadata", "structlog", "rich"}
    assert sorted(loaded & heavy) == []


# What a client verb on the local socket never needs: CURVE and hashing (tcp only), the
# credential helpers' subprocess, temporary files, the daemons' logging, event loop, metrics.
NOT_ON_A_LOCAL_RUN = ["channels._curve", "hashlib", "subprocess", "tempfile", "shutil",
                      "structlog", "rich", "asyncio", "uvloop", "prometheus_client",
                      "importlib.metadata"]
# Nor, with no registry login kept, what reading one or the image's registry needs then.
NOT_WITHOUT_A_LOGIN = ["worker.images.registry.names", "worker.images.reference",
                       "worker.images.digest", "pathlib", "base64", "json",
                       "channels.credentials"]
# Nor, without -t, the terminal's modes and the window-size signal.
NOT_WITHOUT_A_TERMINAL = ["termios", "tty", "signal"]


def test_run_on_the_local_socket_loads_only_what_it_uses(tmp_path: Path) -> None:
    _, loaded = _loaded_by_the_program("-H", "ipc:///nonexistent/shoal.sock", "run", "--rm",
                                       "busybox", "true", env={"SHOAL_CONFIG": str(tmp_path)})
    assert "cli.running" in loaded and "channels._blocking" in loaded
    assert "cli.registry_credentials" in loaded  # it looked for a login
    assert sorted(loaded & {*NOT_ON_A_LOCAL_RUN, *NOT_WITHOUT_A_LOGIN,
                            *NOT_WITHOUT_A_TERMINAL}) == []


@pytest.mark.parametrize("verb", ["run", "ps", "exec", "logs"])
def test_a_verbs_help_loads_no_daemon_machinery(verb: str) -> None:
    out, loaded = _loaded_by_the_program(verb, "--help")
    assert f"Usage: shoal {verb}" in out
    # click sizes the help to the terminal with shutil: help alone may have it.
    assert sorted(loaded & set(NOT_ON_A_LOCAL_RUN) - {"shutil"}) == []


def test_a_bug_on_the_runtimes_quick_path_is_one_line_as_on_clicks() -> None:
    code = ("import sys\n"
            "from worker.runtime import verbs\n"
            "def broken(*args, **kwargs):\n"
            "    raise RuntimeError('planted')\n"
            "verbs.state = broken\n"
            "sys.argv = ['shoal', 'runtime', '--root', sys.argv[1], 'state', 'c1']\n"
            "from cli.entry import main\n"
            "main()")
    done = subprocess.run([sys.executable, "-c", code, "/nonexistent-root"], capture_output=True,
                          text=True, check=False, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 1
    assert done.stderr == ("Error: internal error: RuntimeError: planted (--log-level debug "
                           "shows where)\n")


# A module-level object that says so when the interpreter's teardown finalizes it, and an
# atexit function: what a client verb's end skips and what it keeps.
_TEARDOWN_PROBE = ("import atexit, sys\n"
                   "class Probe:\n"
                   "    def __del__(self):\n"
                   "        sys.stderr.write('torn down\\n')\n"
                   "probe = Probe()\n"
                   "atexit.register(lambda: sys.stderr.write('atexit ran\\n'))\n"
                   "sys.stdout.write('unflushed ')\n"
                   "sys.argv[0] = 'shoal'\n"
                   "from cli.entry import main\n"
                   "main()")


def _ended(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _TEARDOWN_PROBE, *args], capture_output=True,
                          text=True, check=False, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def test_a_client_verb_ends_without_the_teardown_but_with_atexit_and_its_output() -> None:
    done = _ended("-H", "ipc:///nonexistent/shoal.sock", "ps")
    assert done.returncode == 1
    assert done.stdout == "unflushed "
    assert done.stderr.splitlines() == [
        "Error: ConnectFailed: cannot reach a shoal service: tried "
        "ipc:///nonexistent/shoal.sock (no such socket)", "atexit ran"]


def test_a_usage_error_keeps_its_status_and_a_help_its_output() -> None:
    done = _ended("run", "--no-such-flag", "busybox")
    assert done.returncode == 2 and "No such option '--no-such-flag'" in done.stderr
    assert "torn down" not in done.stderr
    done = _ended("ps", "--help")
    assert done.returncode == 0 and "Usage: shoal ps" in done.stdout


def test_the_daemons_and_the_bare_command_end_as_python_does() -> None:
    # No verb (the help), and a daemon verb refused at once: the ordinary exit, teardown and all.
    assert "torn down" in _ended().stderr
    done = _ended("worker", "--no-such-flag")
    assert done.returncode == 2 and "torn down" in done.stderr


# What pip's console script runs (with site), as ``shoal``.
PIPS_SCRIPT = ("import sys\nsys.argv[0] = 'shoal'\nfrom cli.entry import main\n"
               "sys.exit(main())")


def test_the_shoal_start_script_runs_the_command_without_site(tmp_path: Path) -> None:
    """deploy/setup.sh writes .venv/bin/shoal over pip's console script: ``python -S`` with
    the module path written in. Every kind of verb runs through it as through pip's script
    (the quick runtime path, click's verbs, a client verb that fails), and site is not
    loaded."""
    from worker.runtime import start_script

    script = tmp_path / "shoal"
    start_script.write(str(script), command=True)
    assert script.read_text().splitlines()[0] == f"#!{sys.executable} -S"
    for args in (["version"], ["runtime", "--version"], ["runtime", "--help"], ["ps", "--help"],
                 ["-H", "ipc:///nonexistent/shoal.sock", "ps"]):
        ours = subprocess.run([str(script), *args], capture_output=True, text=True,
                              timeout=60, check=False, stdin=subprocess.DEVNULL)
        theirs = subprocess.run([sys.executable, "-c", PIPS_SCRIPT, *args],
                                capture_output=True, text=True, timeout=60, check=False,
                                cwd=REPO, stdin=subprocess.DEVNULL)
        assert (ours.returncode, ours.stdout, ours.stderr) == (
            theirs.returncode, theirs.stdout, theirs.stderr), args
    probe = subprocess.run(
        [sys.executable, "-S", "-c", script.read_text().split("from cli.entry")[0]
         + "import cli.entry; print('site' in sys.modules)"],
        capture_output=True, text=True, timeout=60, check=True)
    assert probe.stdout == "False\n"
