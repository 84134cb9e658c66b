"""json-file logs: Docker's line format, partial lines, rotation, tail and since."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.engine.logfile import (
    PARTIAL_LIMIT,
    JsonFileLog,
    LogFollower,
    LogRecord,
    follow_log,
    format_time,
    log_files,
    parse_time,
    read_log,
)


def test_lines_are_docker_json_file_entries(tmp_path: Path) -> None:
    log = JsonFileLog(tmp_path / "c-json.log")
    log.write("stdout", b"hello\nwor", now=1_700_000_000.25)
    log.write("stdout", b"ld\n", now=1_700_000_001.5)
    log.write("stderr", b"oops\n", now=1_700_000_002.0)
    log.close()
    lines = [json.loads(line) for line in (tmp_path / "c-json.log").read_text().splitlines()]
    assert lines == [
        {"log": "hello\n", "stream": "stdout", "time": "2023-11-14T22:13:20.250000000Z"},
        {"log": "world\n", "stream": "stdout", "time": "2023-11-14T22:13:21.500000000Z"},
        {"log": "oops\n", "stream": "stderr", "time": "2023-11-14T22:13:22.000000000Z"},
    ]


def test_a_partial_line_is_written_when_the_stream_closes_or_grows_too_long(
        tmp_path: Path) -> None:
    log = JsonFileLog(tmp_path / "c-json.log")
    log.write("stdout", b"x" * (PARTIAL_LIMIT + 10), now=1.0)
    log.write("stderr", b"no newline", now=2.0)
    log.close()
    records = read_log(tmp_path / "c-json.log")
    assert [(r.stream, len(r.data)) for r in records] == [
        ("stdout", PARTIAL_LIMIT), ("stdout", 10), ("stderr", 10)]


def test_rotation_keeps_max_file_files_and_reads_oldest_first(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    log = JsonFileLog(path, max_size=300, max_file=3)
    for i in range(40):
        log.write("stdout", f"line {i:03d}\n".encode(), now=float(i))
    log.close()
    files = log_files(path)
    assert [f.name for f in files] == ["c-json.log.2", "c-json.log.1", "c-json.log"]
    assert all(f.stat().st_size <= 300 for f in files)
    numbers = [int(r.data.split()[1]) for r in read_log(path)]
    assert numbers == sorted(numbers)
    assert numbers[-1] == 39
    assert len(numbers) < 40  # the oldest were dropped with the oldest file


def test_compressed_rotations_are_gzipped_and_read_in_order(tmp_path: Path) -> None:
    """``compress``: Docker's NAME.1.gz …, each whole, read oldest first like plain ones."""
    path = tmp_path / "c-json.log"
    log = JsonFileLog(path, max_size=300, max_file=3, compress=True)
    for i in range(40):
        log.write("stdout", f"line {i:03d}\n".encode(), now=float(i))
    log.close()
    files = log_files(path)
    assert [f.name for f in files] == ["c-json.log.2.gz", "c-json.log.1.gz", "c-json.log"]
    assert [f.name for f in tmp_path.iterdir() if f.name.endswith(".partial")] == []
    with gzip.open(files[1], "rb") as packed:
        assert json.loads(packed.readline())["stream"] == "stdout"
    numbers = [int(r.data.split()[1]) for r in read_log(path)]
    assert numbers == sorted(numbers) and numbers[-1] == 39 and len(numbers) < 40
    assert len(numbers) == sum(len(gzip.decompress(f.read_bytes()).splitlines())
                               for f in files[:2]) + len(files[2].read_bytes().splitlines())


@pytest.mark.parametrize("rotations", [1, 2])
def test_a_follower_reads_each_line_once_across_compressed_rotations(
        tmp_path: Path, rotations: int) -> None:
    """A gzipped rotation is a new file: the follower knows the one it holds by the inode
    kept in the gzip header, also when two rotations came between two polls."""
    path = tmp_path / "c-json.log"
    log = JsonFileLog(path, max_size=40, max_file=4, compress=True)
    log.write("stdout", b"first\n")
    history, follower = follow_log(path)
    assert _data(history) == [b"first\n"]
    written = [f"rotating line {n}\n".encode() for n in range(rotations)]
    for line in written:  # each entry is above max_size: each write rotates
        log.write("stdout", line)
    assert len([f for f in log_files(path) if f.suffix == ".gz"]) == rotations
    assert _data(follower.poll()) == written
    again, second = follow_log(path)
    assert _data(again) == [b"first\n", *written]
    follower.close()
    second.close()
    log.close()


def test_tail_and_since(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    log = JsonFileLog(path)
    for i in range(10):
        log.write("stdout", f"{i}\n".encode(), now=100.0 + i)
    log.close()
    assert [r.data for r in read_log(path, tail=3)] == [b"7\n", b"8\n", b"9\n"]
    assert read_log(path, tail=0) == []
    assert [r.data for r in read_log(path, since=108.0)] == [b"8\n", b"9\n"]


def test_torn_or_foreign_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    log = JsonFileLog(path)
    log.write("stdout", b"good\n", now=5.0)
    log.close()
    with open(path, "ab") as handle:
        handle.write(b'{"log":"torn\n{not json}\n')
    assert [r.data for r in read_log(path)] == [b"good\n"]


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_time_format_round_trips(stamp: float) -> None:
    assert parse_time(format_time(stamp)) == pytest.approx(stamp, abs=1e-6)


def test_bad_rotation_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_file"):
        JsonFileLog(tmp_path / "x", max_file=0)


def _data(records: list[LogRecord]) -> list[bytes]:
    return [r.data for r in records]


def test_following_a_log_not_yet_made_repeats_nothing(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    history, follower = follow_log(path)
    assert history == []
    log = JsonFileLog(path)
    log.write("stdout", b"out\n")
    log.write("stderr", b"err\n")
    assert _data(follower.poll()) == [b"out\n", b"err\n"]
    assert follower.poll() == []
    follower.close()
    log.close()


def test_what_is_written_while_following_starts_comes_once(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    log = JsonFileLog(path, max_size=60, max_file=3)
    for n in range(4):
        log.write("stdout", f"line {n}\n".encode())
    history, follower = follow_log(path, tail=2)
    log.write("stdout", b"line 4\n")  # rotates again: the follower goes on in the new file
    log.write("stdout", b"line 5\n")
    assert _data(history) == [b"line 2\n", b"line 3\n"]
    assert _data(follower.poll()) == [b"line 4\n", b"line 5\n"]
    follower.close()
    log.close()


def test_a_rotation_between_opening_and_listing_is_read_once(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    log = JsonFileLog(path, max_size=40, max_file=3)
    log.write("stdout", b"first\n")
    follower = LogFollower(path, at_end=False)
    log.write("stdout", b"second line that rotates\n")
    # The file the follower holds is now c-json.log.1: the listing must skip it.
    history, second = follow_log(path)
    assert _data(history) == [b"first\n", b"second line that rotates\n"]
    assert _data(follower.poll()) == [b"first\n", b"second line that rotates\n"]
    follower.close()
    second.close()
    log.close()
