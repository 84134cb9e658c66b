"""Secrets and configs whose value is not a file on the host (a config's ``content``, a secret's
or config's ``environment`` variable): the compose client writes each to a file of the project's
own, one per owner and mode asked, which the service's containers bind-mount read-only. Compose
without a swarm copies such a value into the container with the ``uid``, ``gid`` and ``mode`` the
service gives (default root, root, 0444); the file here carries the same owner and mode, which a
bind mount shows inside as they are.

The files live in the client's runtime directory (``$XDG_RUNTIME_DIR/shoal/compose/PROJECT``, or
``/run/shoal/compose/PROJECT`` for root: tmpfs, so a secret is never written to a disk), which
``down`` removes. A worker sees them where it shares the client's filesystem, as it sees a
``file:`` secret's file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cli.compose.errors import ComposeError
from cli.compose.model import Project

DEFAULT_MODE = 0o444  # compose's, for a value it copies in


@dataclass(frozen=True)
class ProjectFile:
    """One value as a file: where it is written, what it holds, and its owner and mode."""

    path: str
    content: str
    uid: int
    gid: int
    mode: int


def files_dir(project_name: str, environ: Mapping[str, str]) -> str:
    runtime = environ.get("XDG_RUNTIME_DIR") or (
        "/run" if os.geteuid() == 0 else os.path.join(tempfile.gettempdir(),
                                                      f"shoal-{os.geteuid()}"))
    return os.path.join(runtime, "shoal", "compose", project_name)


def is_written(definition: Mapping[str, Any]) -> bool:
    """Whether a secret's or config's value is one the client writes (not a host file)."""
    return "content" in definition or "environment" in definition


def wanted_file(project: Project, kind: str, source: str, use: Mapping[str, Any]
                ) -> ProjectFile:
    """The file that gives ``use`` (a service's entry under ``kind``) its value, owner and
    mode. ValueError says why it cannot: a variable not set, a bad uid, gid or mode."""
    definition = (project.secrets if kind == "secrets" else project.configs)[source]
    if "content" in definition:
        content = str(definition["content"])
    else:
        variable = str(definition["environment"])
        if variable not in project.environment:
            raise ValueError(f"the environment variable {variable!r} that {kind[:-1]} "
                             f"{source!r} is read from is not set")
        content = project.environment[variable]
    uid, gid = (_id(use.get(key, "0"), key) for key in ("uid", "gid"))
    mode = _mode(use.get("mode", DEFAULT_MODE))
    name = f"{source}.{uid}.{gid}.{mode:o}"  # one file per owner and mode asked
    path = os.path.join(files_dir(project.name, project.environment), kind, name)
    return ProjectFile(path=path, content=content, uid=uid, gid=gid, mode=mode)


def project_files(project: Project, services: list[str]) -> list[ProjectFile]:
    """Every file ``services`` mount, each once (``check_project`` has refused the bad)."""
    found: dict[str, ProjectFile] = {}
    for name in services:
        config = project.services[name].config
        for kind, defined in (("secrets", project.secrets), ("configs", project.configs)):
            for use in config.get(kind) or []:
                source = str(use.get("source", ""))
                if is_written(defined.get(source) or {}):
                    wanted = wanted_file(project, kind, source, use)
                    found[wanted.path] = wanted
    return list(found.values())


def write_files(files: list[ProjectFile]) -> None:
    """Write each file whole (a new inode, renamed into place), with its owner and mode."""
    for wanted in files:
        directory = os.path.dirname(wanted.path)
        project = os.path.dirname(directory)
        os.makedirs(project, exist_ok=True)
        os.chmod(project, 0o700)  # the values are readable only through their mounts
        os.makedirs(directory, exist_ok=True)
        handle, partial = tempfile.mkstemp(dir=directory, prefix=".partial-")
        try:
            with os.fdopen(handle, "w") as out:
                out.write(wanted.content)
            if (wanted.uid, wanted.gid) != (os.geteuid(), os.getegid()):
                try:
                    os.chown(partial, wanted.uid, wanted.gid)
                except PermissionError:
                    raise ComposeError("", 0, (), f"{wanted.path}: cannot give it to "
                                                  f"{wanted.uid}:{wanted.gid} (uid and gid "
                                                  "need root)") from None
            os.chmod(partial, wanted.mode)
            os.replace(partial, wanted.path)
        except BaseException:
            if os.path.exists(partial):
                os.unlink(partial)
            raise


def remove_files(project_name: str, environ: Mapping[str, str]) -> None:
    """``down``: the project's written files go with its containers."""
    shutil.rmtree(files_dir(project_name, environ), ignore_errors=True)


def _id(value: Any, key: str) -> int:
    text = str(value)
    if not text.isdigit():
        raise ValueError(f"{key} {text!r}: expected a number")
    return int(text)


def _mode(value: Any) -> int:
    """A mode as a number (YAML's 0440 is octal already) or as octal text (``"0440"``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    elif isinstance(value, str) and value and all(c in "01234567" for c in value):
        mode = int(value, 8)
    else:
        raise ValueError(f"mode {value!r}: expected an octal mode such as 0440")
    if not 0 <= mode <= 0o7777:
        raise ValueError(f"mode {value!r}: above 07777")
    return mode
