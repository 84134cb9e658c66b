"""``image_events``: the leader's answers to image verbs → the events they mean (pure)."""

from __future__ import annotations

from protocol.eventfeed import matches
from protocol.limits import MAX_TEXT_LEN
from protocol.messages import ImageImported, ImageList, ImageRemoved, Message, Ok
from protocol.specs import ImageSummary
from scheduler.cluster.events import image_events

IMAGE = "sha256:" + "a" * 64
MANIFEST = "sha256:" + "b" * 64


def test_imports_untags_and_deletes_are_events_and_nothing_else_is() -> None:
    imported = ImageImported(images=[ImageSummary(id=IMAGE, digest=MANIFEST,
                                                  tags=["a:1", "b:2"])])
    [event] = image_events(imported, 5.0)
    assert (event.type, event.action, event.id, event.time) == ("image", "import", IMAGE, 5.0)
    assert event.attributes == {"tags": "a:1,b:2", "digest": MANIFEST}
    assert matches(event, {"type": "image"}) and not matches(event, {"type": "container"})
    removed = ImageRemoved(untagged=["a:1"], deleted=[IMAGE])
    assert [(e.action, e.id, e.attributes) for e in image_events(removed, 6.0)] == [
        ("untag", "a:1", {"tag": "a:1"}), ("delete", IMAGE, {})]
    others: list[Message] = [Ok(), ImageList(images=[]), ImageRemoved()]
    assert all(image_events(answer, 7.0) == [] for answer in others)


def test_many_long_tags_stay_within_the_text_limit() -> None:
    tags = [f"{'n' * 200}:{i}" for i in range(1000)]
    [event] = image_events(ImageImported(images=[ImageSummary(id=IMAGE, tags=tags)]), 1.0)
    kept = event.attributes["tags"].split(",")
    assert len(event.attributes["tags"]) <= MAX_TEXT_LEN
    assert kept == tags[:len(kept)] and len(kept) > 100
