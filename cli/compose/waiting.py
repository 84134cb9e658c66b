"""What ``up`` waits for: a dependency's containers healthy (``service_healthy``) or exited
0 (``service_completed_successfully``) before its dependants start, and with ``--wait`` every
container running, or healthy when it has a healthcheck. Through a scheduler a container is
first waited for on its node (the scheduler forwards a wait only once a worker has it)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Literal

from cli.client import Client, one_line
from protocol.errors import Conflict, ShoalError, Timeout
from protocol.messages import (
    ContainerExited,
    ContainerInspected,
    InspectContainer,
    WaitContainer,
    WatchEvents,
)

# How long a cluster's worker may take to act on a removal the scheduler accepted.
CLUSTER_SETTLE_TIMEOUT = 30.0
Condition = Literal["healthy", "completed", "running"]
# up --wait: healthy when it has a healthcheck, else running.
RUNNING_OR_HEALTHY: Condition = "running"


class Deadline:
    """The one time limit of a whole ``up`` (``--wait-timeout``), or none."""

    def __init__(self, seconds: float | None) -> None:
        self.at = None if seconds is None else time.monotonic() + seconds
        self.seconds = seconds

    def remaining(self) -> float | None:
        return None if self.at is None else max(0.0, self.at - time.monotonic())


def wait_for(client: Client, cluster: bool, container_id: str, name: str,
             condition: Condition, deadline: Deadline) -> str:
    """Wait until the container meets ``condition``; "" when it does, else why not."""
    try:
        if cluster:
            from cli.running import FINAL_STATES, cluster_state

            remaining = deadline.remaining()
            cluster_state(client, container_id, ("running", *FINAL_STATES),
                          timeout=3600.0 if remaining is None else remaining)
        if condition == "completed":
            exited = _wait(client, container_id, "not-running", deadline)
            return "" if exited.exit_code == 0 else \
                f"{name} exited with code {exited.exit_code}"
        try:
            _wait(client, container_id, "healthy", deadline)
            return ""
        except Conflict as exc:
            # The engine's word for a container without a healthcheck: running is enough
            # for up --wait, while service_healthy needs one.
            if condition == "healthy" or "has no healthcheck" not in str(exc):
                raise
        state = client.ask(lambda r: InspectContainer(id=container_id, reply=r),
                           ContainerInspected).info.state
        return "" if state.status == "running" else f"{name} is {state.status}"
    except Timeout:
        return f"{name}: not ready after {deadline.seconds:g} s"
    except ShoalError as exc:
        return f"{name}: {one_line(exc)}"


def _wait(client: Client, container_id: str, condition: Literal["not-running", "healthy"],
          deadline: Deadline) -> ContainerExited:
    """One WaitContainer, answered within the deadline (Timeout otherwise)."""
    session = client.session
    inbox = session.reply_inbox()
    session.send(WaitContainer(id=container_id, condition=condition, reply=inbox))
    try:
        remaining = deadline.remaining()
        answer = inbox.recv() if remaining is None else inbox.recv(timeout=remaining)
    finally:
        inbox.close()
    assert isinstance(answer, ContainerExited)
    return answer


def until_not_in_use(client: Client, attempt: Callable[[], object], timeout: float) -> None:
    """``attempt()``, tried again after each of the service's events while it is refused as
    in use (Conflict), for up to ``timeout`` seconds; then its refusal is raised."""
    deadline = time.monotonic() + timeout
    session = client.session
    events = session.reply_inbox()
    session.send(WatchEvents(reply=events))
    try:
        while True:
            try:
                attempt()
                return
            except Conflict:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise
            # No news within a second: try again all the same.
            with contextlib.suppress(Timeout):
                events.recv(timeout=min(remaining, 1.0))
    finally:
        events.close()
