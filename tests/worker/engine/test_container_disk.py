"""Container records are written off the event loop: each record's latest bytes, in the
order of the calls; ``durable`` returns once what was asked before it is on disk, and tells a
failed write to whoever waits for it."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from protocol.specs import ContainerSpec
from tests.helpers.bounded_run import run
from worker.engine.records import ContainerDisk, EngineContainer


def record(cid: str, restarts: int = 0) -> EngineContainer:
    return EngineContainer(id=cid, name=cid, spec=ContainerSpec(image="busybox"),
                           created_at=1.0, restart_count=restarts)


def on_disk(root: Path, cid: str) -> dict[str, object] | None:
    path = root / cid / "container.json"
    return json.loads(path.read_bytes()) if path.exists() else None


def test_saves_leave_the_loop_and_durable_waits_for_them(tmp_path: Path) -> None:
    disk = ContainerDisk(tmp_path)

    async def main() -> None:
        loop_thread = threading.get_ident()
        writers: set[int] = set()
        original = disk._write

        def spy(batch: dict[str, bytes | None]) -> None:
            writers.add(threading.get_ident())
            original(batch)

        disk._write = spy  # type: ignore[method-assign]
        first = record("a")
        disk.save(first)
        first.restart_count = 1  # changed after the save: the saved bytes are the old ones
        disk.save(record("b"))
        await disk.durable()
        assert on_disk(tmp_path, "a") == {"id": "a", "name": "a", "created_at": 1.0,
                                          "spec": {"image": "busybox"}}
        assert on_disk(tmp_path, "b") is not None
        assert writers and loop_thread not in writers
        for n in range(1, 6):  # several saves of one record: the last one wins
            disk.save(record("a", restarts=n))
        disk.remove("b")
        await disk.durable()
        assert (on_disk(tmp_path, "a") or {}).get("restart_count") == 5
        assert not (tmp_path / "b").exists()
        await disk.durable()  # nothing asked: at once

    run(main, timeout=30)
    assert [r.restart_count for r in disk.load_all()] == [5]


def test_a_failed_write_is_told_to_the_waiter(tmp_path: Path) -> None:
    disk = ContainerDisk(tmp_path)
    (tmp_path / "c").write_text("a file where the record's directory should be")

    async def main() -> None:
        disk.save(record("c"))
        with pytest.raises(FileExistsError):
            await disk.durable()
        disk.save(record("d"))  # the writer goes on with later saves
        await disk.durable()
        assert on_disk(tmp_path, "d") is not None

    run(main, timeout=30)


def test_without_an_event_loop_a_save_is_written_at_once(tmp_path: Path) -> None:
    disk = ContainerDisk(tmp_path)
    disk.save(record("e"))
    assert on_disk(tmp_path, "e") is not None
    disk.remove("e")
    assert not (tmp_path / "e").exists()
    assert asyncio.run(_durable(disk)) is None


async def _durable(disk: ContainerDisk) -> None:
    await disk.durable()
