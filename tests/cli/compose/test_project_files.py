"""The files the compose client writes for secret and config values: whole, with the owner and
mode asked, replaced on the next up, and gone with the project at down."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cli.compose.project_files import ProjectFile, files_dir, remove_files, write_files


@pytest.mark.root
def test_written_with_owner_and_mode_then_replaced_then_removed(tmp_path: Path) -> None:
    environ = {"XDG_RUNTIME_DIR": str(tmp_path)}
    where = Path(files_dir("ctfiles", environ))
    assert where == tmp_path / "shoal" / "compose" / "ctfiles"
    first = ProjectFile(path=str(where / "secrets" / "token.1000.1001.400"), content="one",
                        uid=1000, gid=1001, mode=0o400)
    write_files([first])
    status = os.stat(first.path)
    assert (status.st_uid, status.st_gid, stat.S_IMODE(status.st_mode)) == (1000, 1001, 0o400)
    assert Path(first.path).read_text() == "one"
    assert stat.S_IMODE(os.stat(where).st_mode) == 0o700
    before = status.st_ino
    write_files([ProjectFile(path=first.path, content="two", uid=1000, gid=1001, mode=0o400)])
    assert Path(first.path).read_text() == "two" and os.stat(first.path).st_ino != before
    assert sorted(p.name for p in (where / "secrets").iterdir()) == ["token.1000.1001.400"]
    remove_files("ctfiles", environ)
    assert not where.exists()
