"""Cluster events: what the leader's commits changed, streamed to ``events.watch`` subscribers.

``container_events`` and ``node_events`` are pure: a committed record before and after → the
events it means (a container placed, started, exited, rescheduled, orphaned, removed; a node
up, down, updated). ``image_events`` is pure too: the leader's answer to an image verb → the
images imported, untagged or deleted in its store (standbys follow these to copy the images).
They are fanned out to subscribers by a ``protocol.eventfeed.EventFeed``, with the one policy
workers follow too: a subscriber that falls too far behind is ended with ``EventsOverflow``
(nothing is dropped silently) rather than slowing the leader's cycle.
"""

from __future__ import annotations

from protocol.limits import MAX_NAME_LEN, MAX_TEXT_LEN
from protocol.messages import ImageImported, ImagePulled, ImageRemoved, Message
from protocol.specs import Event
from scheduler.store import ContainerRecord, NodeRecord


def container_events(cid: str, old: ContainerRecord | None, new: ContainerRecord | None,
                     now: float) -> list[Event]:
    """The events one committed container change means, in Docker's vocabulary where it has
    a word (start, die, destroy) and the scheduler's where it has not (placed, rescheduled)."""

    def event(action: str, record: ContainerRecord, **attrs: str) -> Event:
        return Event(type="container", action=action, id=cid, time=now,
                     node_id=record.node_id, attributes={"image": record.spec.image, **attrs})

    if new is None:
        return [event("destroy", old)] if old is not None else []
    out: list[Event] = []
    before = old.schedule_state if old is not None else None
    state = new.schedule_state
    if old is None:
        out.append(event("create", new))
    health = _health(new)
    if health and health != _health(old):  # as the worker's own: "health_status: healthy"
        out.append(event(f"health_status: {health}", new))
    if state == before:
        return out
    if state == "assigned":
        out.append(event("placed", new, placement=new.placement))
    elif state == "running":
        out.append(event("start", new))
    elif state in ("exited", "failed"):
        code = new.observed.exit_code if new.observed is not None else None
        out.append(event("die", new, exitCode=str(code if code is not None else 0)))
    elif state == "pending" and old is not None and new.restarts > old.restarts:
        out.append(event("rescheduled", new, from_node=old.node_id,
                         reason=new.placement))
    elif state == "orphaned":
        out.append(event("orphaned", new, reason=new.placement))
    elif state == "removed":
        out.append(event("remove", new))
    return out


def _health(record: ContainerRecord | None) -> str:
    observed = record.observed if record is not None else None
    return observed.health.status if observed is not None and observed.health else ""


def node_events(node_id: str, old: NodeRecord | None, new: NodeRecord | None,
                now: float) -> list[Event]:
    """A node came up, joined again (a new epoch: after a worker restart or a leader
    change), went down, was removed, or had its availability, labels or list of images
    changed."""
    if new is None:
        return [] if old is None else [Event(type="node", action="remove", id=node_id,
                                             time=now, node_id=node_id)]
    info = new.info
    out: list[Event] = []
    if old is None or old.info.status != info.status:
        action = {"ready": "up", "down": "down"}.get(info.status, info.status)
        out.append(Event(type="node", action=action, id=node_id, time=now, node_id=node_id,
                         attributes={"epoch": str(info.epoch)}))
    elif old.info.epoch != info.epoch:
        out.append(Event(type="node", action="rejoin", id=node_id, time=now, node_id=node_id,
                         attributes={"epoch": str(info.epoch)}))
    if old is not None and (old.info.availability != info.availability
                            or old.info.labels != info.labels
                            or old.info.images != info.images
                            or old.info.volumes != info.volumes):
        out.append(Event(type="node", action="update", id=node_id, time=now, node_id=node_id,
                         attributes={"availability": info.availability,
                                     "images": str(len(info.images)),
                                     "volumes": str(len(info.volumes))}))
    return out


def image_events(reply: Message, now: float) -> list[Event]:
    """What the leader's answer to an image verb says changed in its store: ``import`` per
    image stored (``tags``: comma-separated), ``pull`` per image pulled from a registry,
    ``untag`` per tag dropped, ``delete`` per image deleted. Other answers (lists, inspects,
    resolves, blob fetches, pushes) change nothing."""
    if isinstance(reply, ImagePulled):
        image = reply.image
        return [Event(type="image", action="pull", id=image.id, time=now,
                      attributes={"tags": _joined(image.tags), "digest": reply.digest})]
    if isinstance(reply, ImageImported):
        return [Event(type="image", action="import", id=image.id, time=now,
                      attributes={"tags": _joined(image.tags), "digest": image.digest})
                for image in reply.images]
    if isinstance(reply, ImageRemoved):
        return ([Event(type="image", action="untag", id=tag[:MAX_NAME_LEN], time=now,
                       attributes={"tag": tag})
                 for tag in reply.untagged]
                + [Event(type="image", action="delete", id=image_id, time=now)
                   for image_id in reply.deleted])
    return []


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
