"""``image_events``: an image verb and its answer → the events Docker emits for it (pure)."""

from __future__ import annotations

import pytest

from protocol.eventfeed import matches
from protocol.limits import MAX_TEXT_LEN
from protocol.messages import (
    BuildImage,
    BuildResult,
    ImageImported,
    ImageList,
    ImagePulled,
    ImagePushed,
    ImageRemoved,
    ImagesPruned,
    ImportImage,
    InspectImage,
    ListImages,
    Message,
    Ok,
    PruneImages,
    PullImage,
    PushImage,
    RemoveImage,
    SaveImages,
    TagImage,
)
from protocol.observed import ImageSummary
from worker.image_events import image_events

IMAGE = "sha256:" + "a" * 64
MANIFEST = "sha256:" + "b" * 64
SUMMARY = ImageSummary(id=IMAGE, digest=MANIFEST, tags=["a:1", "b:2"])
R = None  # the requests' reply Senders play no part here


def _import(fmt: str) -> tuple[Message, Message]:
    return (ImportImage(name="", data=R, reply=R),  # type: ignore[arg-type]
            ImageImported(images=[SUMMARY], format=fmt))


CASES: list[tuple[str, Message, Message | None, list[tuple[str, str, dict[str, str]]]]] = [
    ("pull", PullImage(ref="r.example/a:1", reply=R),  # type: ignore[arg-type]
     ImagePulled(image=SUMMARY, digest=MANIFEST),
     [("pull", "r.example/a:1", {"name": "r.example/a:1", "image": IMAGE, "tags": "a:1,b:2",
                                 "digest": MANIFEST})]),
    ("push", PushImage(ref="r.example/a:1", reply=R),  # type: ignore[arg-type]
     ImagePushed(digest=MANIFEST, size=10),
     [("push", "r.example/a:1", {"name": "r.example/a:1", "digest": MANIFEST})]),
    ("tag", TagImage(source="a:1", target="c:3", reply=R), Ok(),  # type: ignore[arg-type]
     [("tag", "a:1", {"name": "c:3"})]),
    ("import", *_import("rootfs"),
     [("import", IMAGE, {"tags": "a:1,b:2", "digest": MANIFEST})]),
    ("load", *_import("docker-save"),
     [("load", IMAGE, {"tags": "a:1,b:2", "digest": MANIFEST})]),
    ("rmi", RemoveImage(ref="a:1", reply=R),  # type: ignore[arg-type]
     ImageRemoved(untagged=["a:1"], deleted=[IMAGE]),
     [("untag", "a:1", {"tag": "a:1"}), ("delete", IMAGE, {})]),
    ("prune", PruneImages(reply=R), ImagesPruned(deleted=[IMAGE]),  # type: ignore[arg-type]
     [("delete", IMAGE, {})]),
    ("save", SaveImages(refs=["a:1", "b:2"], reply=R), None,  # type: ignore[arg-type]
     [("save", "a:1", {"name": "a:1"}), ("save", "b:2", {"name": "b:2"})]),
    ("build", BuildImage(dockerfile="FROM scratch", context=R, reply=R),  # type: ignore[arg-type]
     BuildResult(image=SUMMARY),
     [("build", IMAGE, {"tags": "a:1,b:2", "digest": MANIFEST}),
      ("tag", IMAGE, {"name": "a:1"}), ("tag", IMAGE, {"name": "b:2"})]),
    ("list", ListImages(reply=R), ImageList(images=[]), []),  # type: ignore[arg-type]
    ("inspect", InspectImage(ref="a:1", reply=R), None, []),  # type: ignore[arg-type]
    ("nothing removed", RemoveImage(ref="a:1", reply=R),  # type: ignore[arg-type]
     ImageRemoved(), []),
]


@pytest.mark.parametrize(("request_", "answer", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_each_verb_means_dockers_events(request_: Message, answer: Message | None,
                                        expected: list[tuple[str, str, dict[str, str]]]) -> None:
    events = image_events(request_, answer, 5.0)
    assert [(e.action, e.id, e.attributes) for e in events] == expected
    assert all(e.type == "image" and e.time == 5.0 for e in events)
    assert all(matches(e, {"type": "image"}) and not matches(e, {"type": "container"})
               for e in events)


def test_many_long_tags_stay_within_the_text_limit() -> None:
    tags = [f"{'n' * 200}:{i}" for i in range(1000)]
    [event] = image_events(*_import("oci")[:1],
                           ImageImported(images=[ImageSummary(id=IMAGE, tags=tags)]), 1.0)
    kept = event.attributes["tags"].split(",")
    assert len(event.attributes["tags"]) <= MAX_TEXT_LEN
    assert kept == tags[:len(kept)] and len(kept) > 100
