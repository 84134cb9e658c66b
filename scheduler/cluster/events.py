"""Cluster events: what the leader's commits changed, streamed to ``events.watch`` subscribers.

``container_events`` and ``node_events`` are pure: a committed record before and after → the
events it means (a container placed, started, exited, rescheduled, orphaned, removed; a node
up, down, updated); image events come from ``worker.image_events``, which workers share.
They are fanned out to subscribers by a ``protocol.eventfeed.EventFeed``, with the one policy
workers follow too: a subscriber that falls too far behind is ended with ``EventsOverflow``
(nothing is dropped silently) rather than slowing the leader's cycle.
"""

from __future__ import annotations

from protocol.observed import Event
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
