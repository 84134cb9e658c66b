"""Where save and export write: a file that appears only whole, or stdout, never a terminal."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from cli.output import archive_output


def test_a_file_appears_only_whole_and_not_at_all_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.tar"
    with archive_output(target, "save") as out:
        out.write(b"first")
        assert not target.exists() and (tmp_path / ".out.tar.part").exists()
        out.write(b" second")
    assert target.read_bytes() == b"first second"
    assert list(tmp_path.iterdir()) == [target]
    with pytest.raises(RuntimeError, match="broke"):
        _write_then_fail(tmp_path / "failed.tar")
    assert list(tmp_path.iterdir()) == [target]


def _write_then_fail(path: Path) -> None:
    with archive_output(path, "save") as out:
        out.write(b"half")
        raise RuntimeError("the stream broke")


def test_stdout_unless_it_is_a_terminal(capfdbinary: pytest.CaptureFixture[bytes],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    with archive_output(None, "export") as out:
        out.write(b"tar bytes")
    assert capfdbinary.readouterr().out == b"tar bytes"
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    with pytest.raises(click.UsageError, match="refusing to export to a terminal"), \
            archive_output(None, "export"):
        pass
