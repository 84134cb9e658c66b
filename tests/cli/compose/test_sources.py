"""Which files a command means (-f, COMPOSE_FILE, the default file and its override, found
from the current directory up), the schema's verdict cache and the parse cache on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.compose.document import parse, text_key
from cli.compose.errors import ComposeError
from cli.compose.sources import FileSources, compose_files, load, verdict_cache_dir


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


def test_a_parsed_document_is_kept_as_it_was_parsed(tmp_path: Path) -> None:
    sources = FileSources(tmp_path / "shoal" / "compose-schema")
    text = ("x-base: &base {image: busybox, ports: ['80:80']}\n"
            "services:\n  web:\n    <<: *base\n    command: [sh, -c, 'echo 1']\n")
    key = text_key("compose.yaml", text)
    assert sources.parsed(key) is None
    document = parse("compose.yaml", text)
    sources.remember_parsed(key, document)
    again = FileSources(tmp_path / "shoal" / "compose-schema").parsed(key)
    assert again is not None
    assert (again.file, again.data, again.lines) == (document.file, document.data,
                                                     document.lines)
    assert again.line_of(("services", "web", "command")) == 5
    # A value msgpack would not bring back as it was is not kept: parsed again next time.
    odd = parse("compose.yaml", "services: {web: {image: busybox, x-f: .nan}}\n")
    sources.remember_parsed("odd", odd)
    assert sources.parsed("odd") is None
    assert FileSources(None).parsed(key) is None


def test_a_project_loads_the_same_from_the_parse_cache(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n  web:\n    image: busybox\n    environment: {A: $A}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("A", "1")
    first = load([], "", [], [])
    assert list((tmp_path / "cache" / "shoal" / "compose-parsed").iterdir())
    monkeypatch.setenv("A", "2")  # interpolation is done after the cache, every time
    second = load([], "", [], [])
    assert first.services["web"].environment == {"A": "1"}
    assert second.services["web"].environment == {"A": "2"}
