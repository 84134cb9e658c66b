"""The runtime's command line where it needs no container: help pages, version lines, unknown
verbs and flags, spec, features, logging flags; compared with runc's where the shape matters."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.runtime_harness import cli, env
from worker.runtime import start_script
from worker.runtime.cli_info import table
from worker.runtime.default_config import default_config, make_rootless

VERBS = ["create", "start", "run", "exec", "state", "kill", "delete", "pause", "resume",
         "list", "ps", "spec", "features", "version", "help", "checkpoint", "restore"]


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_is_runc_shaped_for_the_runtime_and_every_verb(tmp_path: Path, flag: str) -> None:
    top = cli(tmp_path, flag).stdout.splitlines()
    assert top[0] == "NAME:"
    assert re.match(r"\s+shoal runtime - ", top[1])
    for verb in VERBS:
        page = cli(tmp_path, verb, flag).stdout.splitlines()
        assert page[0] == "NAME:", verb
        assert re.match(rf"\s+shoal runtime {verb} - \S", page[1]), page[1]
        assert "USAGE:" in page
    assert cli(tmp_path, "help", "list").stdout == cli(tmp_path, "list", "-h").stdout


@pytest.mark.parametrize("args", [["help", "foo"], ["foo", "-h"], ["foo"]])
def test_an_unknown_verb_has_no_help_topic(tmp_path: Path, args: list[str]) -> None:
    done = cli(tmp_path, *args, check=False)
    assert done.returncode == 3  # runc's status for it
    assert "No help topic for 'foo'" in done.stderr
    assert "Usage:" in done.stderr


@pytest.mark.parametrize("args", [
    ["--bogus", "list"], ["list", "--bogus"], ["state", "--bogus", "c1"],
    ["exec", "--bogus", "c1", "true"], ["kill", "c1", "--bogus"], ["pause", "--bogus", "c1"],
    ["ps", "--bogus", "c1"], ["spec", "--bogus"],
])
def test_an_unknown_flag_is_a_usage_error_not_an_id(tmp_path: Path, args: list[str]) -> None:
    done = cli(tmp_path, *args, check=False)
    assert done.returncode == 2
    assert "Usage:" in done.stderr
    assert "No such option" in done.stderr
    assert "--bogus'" in done.stderr  # named as the flag it is, not checked as an id
    assert "must be 1-128" not in done.stderr


def test_systemd_cgroup_is_refused_not_ignored(tmp_path: Path) -> None:
    done = cli(tmp_path, "--systemd-cgroup", "list", check=False)
    assert done.returncode == 1
    assert "--systemd-cgroup is not supported" in done.stderr


def test_version_lines_have_runcs_shape(tmp_path: Path, need_runc: str) -> None:
    theirs = subprocess.run([need_runc, "-v"], capture_output=True, text=True,
                            check=True).stdout.splitlines()
    for args in (["-v"], ["--version"], ["version"]):
        ours = cli(tmp_path, *args).stdout.splitlines()
        assert re.fullmatch(r"shoal runtime version \S+", ours[0])
        assert re.fullmatch(r"runc version \S+", theirs[0])
        spec_line = next(line for line in ours if line.startswith("spec: "))
        assert re.fullmatch(r"spec: \d+\.\d+\.\d+", spec_line)
        assert any(re.fullmatch(r"spec: \d+\.\d+\.\d+(-dev)?", t) for t in theirs)


def _drop_in(tmp_path: Path) -> Path:
    """An executable file named runc that runs the runtime, as setup.sh installs shoal-runtime
    and run-runc-bats.sh its drop-in."""
    path = tmp_path / "bin" / "runc"
    path.parent.mkdir()
    start_script.write(str(path))
    return path


def test_a_drop_in_named_runc_answers_to_runc_and_says_it_is_shoal(tmp_path: Path) -> None:
    runc = _drop_in(tmp_path)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(runc), "--root", str(tmp_path / "s"), *args], env=env(),
                              capture_output=True, text=True, timeout=60, check=False)

    for flag in ("-h", "--help"):
        page = run(flag).stdout.splitlines()
        assert page[:2] == ["NAME:", "  runc - Open Container Initiative runtime"]
    assert re.match(r"\s+runc delete - \S", run("delete", "-h").stdout.splitlines()[1])
    version = run("-v").stdout.splitlines()
    # runc's shape (runc's own tests read the first three lines), shoal's version, named.
    assert re.fullmatch(r"runc version \d+\.\d+\.\d+\S* \(shoal runtime\)", version[0])
    if (Path(__file__).resolve().parents[3] / ".git").exists():  # a git checkout: its commit
        assert re.fullmatch(r"commit: [0-9a-f]{40}(-dirty)?", version.pop(1))
    assert not any(line.startswith("commit:") for line in version)
    assert re.fullmatch(r"spec: \d+\.\d+\.\d+", version[1])
    failed = run("state", "nothere")
    assert failed.returncode == 1 and failed.stderr.startswith("runc: "), failed.stderr
    # Under its own name it stays shoal runtime.
    assert cli(tmp_path, "-h").stdout.splitlines()[1] == (
        "  shoal runtime - Open Container Initiative runtime")


def _normal(config: dict[str, Any]) -> dict[str, Any]:
    """What may differ between two runtimes' default configs: the name and the spec version."""
    return {**config, "hostname": "", "ociVersion": ""}


@pytest.mark.parametrize("rootless", [False, True])
def test_spec_writes_what_runc_spec_writes(tmp_path: Path, need_runc: str,
                                           rootless: bool) -> None:
    extra = ["--rootless"] if rootless else []
    (tmp_path / "ours").mkdir()
    (tmp_path / "theirs").mkdir()
    cli(tmp_path / "state", "spec", "--bundle", str(tmp_path / "ours"), *extra)
    subprocess.run([need_runc, "spec", "--bundle", str(tmp_path / "theirs"), *extra],
                   check=True, capture_output=True)
    ours = json.loads((tmp_path / "ours" / "config.json").read_text())
    theirs = json.loads((tmp_path / "theirs" / "config.json").read_text())
    assert _normal(ours) == _normal(theirs)


def test_spec_refuses_to_overwrite_and_defaults_to_the_cwd(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "worker.runtime", "--root", str(tmp_path / "s"), "spec"]
    subprocess.run(argv, cwd=tmp_path, env=env(), check=True, capture_output=True)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config == default_config()
    again = subprocess.run(argv, cwd=tmp_path, env=env(), capture_output=True, text=True,
                           check=False)
    assert again.returncode == 1
    assert "exists" in again.stderr
    missing = cli(tmp_path / "s", "spec", "-b", str(tmp_path / "nowhere"), check=False)
    assert missing.returncode == 1
    assert "No such file" in missing.stderr


def test_rootless_maps_the_caller_and_drops_what_needs_privilege() -> None:
    config = make_rootless(default_config(), 1234, 5678)
    linux = config["linux"]
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": 1234, "size": 1}]
    assert linux["gidMappings"] == [{"containerID": 0, "hostID": 5678, "size": 1}]
    assert [ns["type"] for ns in linux["namespaces"]] == ["pid", "ipc", "uts", "mount", "user"]
    assert "resources" not in linux
    sys_mount = next(m for m in config["mounts"] if m["destination"] == "/sys")
    assert sys_mount["type"] == "none" and "rbind" in sys_mount["options"]
    assert not any(o.startswith(("uid=", "gid=")) for m in config["mounts"]
                   for o in m.get("options", []))


def test_features_has_runcs_shape_and_claims_only_what_shoal_does(tmp_path: Path,
                                                                  need_runc: str) -> None:
    ours = json.loads(cli(tmp_path, "features").stdout)
    theirs = json.loads(subprocess.run([need_runc, "features"], capture_output=True,
                                       text=True, check=True).stdout)
    assert set(ours) <= set(theirs)
    assert set(ours["linux"]) <= set(theirs["linux"])
    assert set(ours["linux"]["cgroup"]) <= set(theirs["linux"]["cgroup"])
    assert ours["hooks"] == theirs["hooks"]
    assert set(ours["linux"]["namespaces"]) == set(theirs["linux"]["namespaces"])
    assert set(ours["linux"]["capabilities"]) == set(theirs["linux"]["capabilities"])
    # What the planner refuses is not claimed.
    assert ours["linux"]["seccomp"]["enabled"] is True
    # Every action and operator claimed is runc's too; runc's notify is refused here.
    theirs_seccomp = theirs["linux"]["seccomp"]
    assert set(ours["linux"]["seccomp"]["actions"]) == (
        set(theirs_seccomp["actions"]) - {"SCMP_ACT_NOTIFY"})
    assert set(ours["linux"]["seccomp"]["operators"]) == set(theirs_seccomp["operators"])
    assert ours["linux"]["cgroup"]["systemd"] is False
    # Every mount option claimed is one the runtime knows (not passed on as fs data).
    assert {"ro", "nosuid", "rbind", "rprivate", "strictatime"} <= set(ours["mountOptions"])
    assert "tmpcopyup" not in ours["mountOptions"]


@pytest.mark.parametrize(("fmt", "pattern"), [
    ("text", r'^time=\S+ level=error event=runtime\.failed error="container \'nope\' does '
             r'not exist"$'),
    ("json", None),
])
def test_log_file_and_format_get_the_error(tmp_path: Path, fmt: str,
                                           pattern: str | None) -> None:
    log = tmp_path / "log.out"
    done = cli(tmp_path / "s", "--log", str(log), "--log-format", fmt, "--debug", "pause",
               "nope", check=False)
    assert done.returncode == 1
    assert "does not exist" in done.stderr  # still said where the caller looks
    lines = log.read_text().splitlines()
    assert any("runtime.command" in line and "debug" in line for line in lines)
    if pattern is not None:
        assert re.match(pattern, lines[-1]), lines[-1]
    else:
        event = json.loads(lines[-1])
        assert (event["level"], event["event"]) == ("error", "runtime.failed")
        assert "time" in event


def test_without_debug_the_debug_events_import_nothing(tmp_path: Path) -> None:
    # A filtered log call must not import structlog (~60 ms per runtime command).
    code = ("from worker.runtime.lazylog import LazyLogger, configure_cli\n"
            "configure_cli(30)\n"
            "LazyLogger('x').debug('e', a=1)\n"
            "import sys; print('structlog' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "False"
    assert cli(tmp_path, "list").stderr == ""


def test_table_pads_columns_as_runc_does() -> None:
    rows = [["ID", "PID", "STATUS"], ["a-rather-long-id", "1", "running"]]
    assert table(rows) == ["ID                 PID         STATUS",
                           "a-rather-long-id   1           running"]
    assert table([]) == []


@pytest.mark.parametrize(("criu", "said"), [
    (None, "needs CRIU, which is not installed (Debian package criu)"),
    ("echo 'Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds' >&2; exit 1",
     "CRIU cannot work on this host: `criu check` failed: Error (criu/vdso.c:381): vdso: "
     "Unexpected rt vDSO area bounds"),
    ("exit 0", "not implemented by shoal's runtime (CRIU works here)"),
])
@pytest.mark.parametrize("verb", ["checkpoint", "restore"])
def test_checkpoint_and_restore_refuse_saying_why(tmp_path: Path, verb: str, criu: str | None,
                                                  said: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if criu is not None:
        (bin_dir / "criu").write_text(f"#!/bin/sh\n{criu}\n")
        (bin_dir / "criu").chmod(0o755)
    environment = env()
    environment["PATH"] = str(bin_dir)  # the runtime itself runs as sys.executable -m
    done = subprocess.run([sys.executable, "-m", "worker.runtime", "--root",
                           str(tmp_path / "s"), verb, "--image-path", str(tmp_path), "c1"],
                          env=environment, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 1
    assert done.stderr.startswith("shoal runtime: ") and said in done.stderr


def test_debug_goes_to_stderr_as_runcs_text_under_shoals_own_cli(tmp_path: Path) -> None:
    """`shoal runtime --debug` (shoal's CLI logs JSON lines itself) logs runc's text."""
    done = subprocess.run([sys.executable, "-m", "cli", "runtime", "--root", str(tmp_path),
                           "--debug", "list"], env=env(), capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert re.search(r"level=debug .*runtime\.command", done.stderr), done.stderr


def test_checkpoint_names_a_bad_parent_path_first(tmp_path: Path) -> None:
    for parent in (str(tmp_path / "abs"), "./missing"):
        done = cli(tmp_path / "s", "checkpoint", "--parent-path", parent, "--image-path",
                   str(tmp_path), "c1", check=False)
        assert done.returncode == 1 and "--parent-path" in done.stderr, done.stderr
