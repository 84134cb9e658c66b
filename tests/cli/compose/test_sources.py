"""Which files a command means (-f, COMPOSE_FILE, the default file and its override, found
from the current directory up), and the schema's verdict cache on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.compose.errors import ComposeError
from cli.compose.sources import FileSources, compose_files, verdict_cache_dir


def test_the_default_file_and_its_override_are_found_from_below(tmp_path: Path) -> None:
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    (tmp_path / "docker-compose.override.yml").write_text("services: {}\n")
    below = tmp_path / "src" / "deep"
    below.mkdir(parents=True)
    assert compose_files([], {}, str(below)) == [str(tmp_path / "docker-compose.yml"),
                                                 str(tmp_path / "docker-compose.override.yml")]
    (tmp_path / "compose.yaml").write_text("services: {}\n")
    assert compose_files([], {}, str(tmp_path))[0] == str(tmp_path / "compose.yaml")


def test_dash_f_and_compose_file(tmp_path: Path) -> None:
    for name in ("a.yml", "b.yml"):
        (tmp_path / name).write_text("services: {}\n")
    assert compose_files(["a.yml", "b.yml"], {"COMPOSE_FILE": "x"}, str(tmp_path)) == \
        [str(tmp_path / "a.yml"), str(tmp_path / "b.yml")]
    assert compose_files([], {"COMPOSE_FILE": "b.yml:a.yml"}, str(tmp_path)) == \
        [str(tmp_path / "b.yml"), str(tmp_path / "a.yml")]
    assert compose_files([], {"COMPOSE_FILE": "b.yml;a.yml", "COMPOSE_PATH_SEPARATOR": ";"},
                         str(tmp_path)) == [str(tmp_path / "b.yml"), str(tmp_path / "a.yml")]
    with pytest.raises(ComposeError, match=r"^nope\.yml: no such file$"):
        compose_files(["nope.yml"], {}, str(tmp_path))


def test_no_file_anywhere(tmp_path: Path) -> None:
    with pytest.raises(ComposeError, match="no configuration file provided"):
        compose_files([], {}, str(tmp_path))


def test_verdicts_are_kept_in_the_cache_dir(tmp_path: Path) -> None:
    cache = verdict_cache_dir({"XDG_CACHE_HOME": str(tmp_path)})
    assert cache == tmp_path / "shoal" / "compose-schema"
    sources = FileSources(cache)
    assert not sources.known_valid("k")
    sources.remember_valid("k")
    assert FileSources(cache).known_valid("k")
    assert verdict_cache_dir({}) is None and not FileSources(None).known_valid("k")
