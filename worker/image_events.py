"""Image events: an image verb and its answer → the events Docker emits for it (pure).

A worker publishes them on its own event feed (``shoal events -H WORKER``), the leader on the
cluster's (standbys follow these to copy the images). Docker's vocabulary: ``pull`` and
``push`` (id: the reference; ``image``: the image id), ``tag`` (``name``: the new tag),
``untag`` and ``delete``, ``import`` (a rootfs tarball, ``docker import``), ``load`` (an OCI
layout or ``docker save`` archive), ``save`` (per reference saved); and shoal's ``build``
(with a ``tag`` per tag the build gave, as docker's builder tags). Verbs that change nothing
(lists, inspects, resolves, blob fetches) mean none.
"""

from __future__ import annotations

from protocol.limits import MAX_NAME_LEN, MAX_TEXT_LEN
from protocol.messages import (
    BuildImage,
    BuildResult,
    ImageImported,
    ImagePulled,
    ImagePushed,
    ImageRemoved,
    ImagesPruned,
    ImportImage,
    Message,
    Ok,
    PullImage,
    PushImage,
    SaveImages,
    TagImage,
)
from protocol.observed import Event, ImageSummary


def image_events(request: Message, answer: Message | None, now: float) -> list[Event]:
    """The events of ``request`` answered with ``answer`` (None: answered on its stream, as a
    save is; a build's answer is its ``BuildResult``)."""
    if isinstance(request, PullImage) and isinstance(answer, ImagePulled):
        return [pull_event(request.ref, answer.image, answer.digest, now)]
    if isinstance(request, PushImage) and isinstance(answer, ImagePushed):
        return [_event("push", request.ref, now, name=request.ref, digest=answer.digest)]
    if isinstance(request, TagImage) and isinstance(answer, Ok):
        return [_event("tag", request.source, now, name=request.target)]
    if isinstance(request, ImportImage) and isinstance(answer, ImageImported):
        action = "import" if answer.format == "rootfs" else "load"
        return [_event(action, image.id, now, tags=_joined(image.tags), digest=image.digest)
                for image in answer.images]
    if isinstance(answer, ImageRemoved | ImagesPruned):
        return ([_event("untag", tag, now, tag=tag) for tag in answer.untagged]
                + [_event("delete", image_id, now) for image_id in answer.deleted])
    if isinstance(request, SaveImages) and answer is None:
        return [_event("save", ref, now, name=ref) for ref in request.refs]
    if isinstance(request, BuildImage) and isinstance(answer, BuildResult):
        image = answer.image
        return [_event("build", image.id, now, tags=_joined(image.tags), digest=image.digest),
                *(_event("tag", image.id, now, name=tag) for tag in image.tags)]
    return []


def pull_event(ref: str, image: ImageSummary, digest: str, now: float) -> Event:
    """``pull`` of ``ref``: the image it stored (a worker's own pull for a container too)."""
    return _event("pull", ref, now, name=ref, image=image.id, tags=_joined(image.tags),
                  digest=digest)


def _event(action: str, id: str, now: float, **attributes: str) -> Event:
    return Event(type="image", action=action, id=id[:MAX_NAME_LEN], time=now,
                 attributes={k: v[:MAX_TEXT_LEN] for k, v in attributes.items()})


def _joined(tags: list[str]) -> str:
    """Tags as one attribute value, cut at a whole tag to stay within the wire's text limit."""
    kept: list[str] = []
    length = 0
    for tag in tags:
        length += len(tag) + 1
        if length > MAX_TEXT_LEN:
            break
        kept.append(tag)
    return ",".join(kept)
