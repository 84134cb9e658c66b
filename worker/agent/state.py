"""The agent's decisions as a pure state machine: events in, instructions out (dask's shape).

Fencing lives here: every assignment carries a generation; an assignment older than the newest
this worker has seen for that container is refused, and a newer one replaces the copy that runs.
Reports are kept while the scheduler is unreachable and sent in full when it is back, so what
ended meanwhile is still known. An assignment sent again at the generation held is a resend: it
is answered with a report, and its spec's networks are what the copy should be on (the
scheduler sends it again after ``network connect``/``disconnect``: ``Reconnect``). The shell
runs the instructions and feeds results back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol.observed import ContainerStatus
from protocol.specs import ContainerSpec


# --- events ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Assigned:
    container_id: str
    generation: int
    spec: ContainerSpec
    stimulus_id: str


@dataclass(frozen=True, slots=True)
class Revoked:
    """Stop and remove the copy of ``container_id`` at ``generation`` or older."""

    container_id: str
    generation: int
    reason: str
    stimulus_id: str


@dataclass(frozen=True, slots=True)
class ContainerChanged:
    """The engine saw the container change (started, exited, restarted, failed)."""

    container_id: str
    status: ContainerStatus
    exit_code: int | None
    stimulus_id: str


@dataclass(frozen=True, slots=True)
class SchedulerUp:
    stimulus_id: str


@dataclass(frozen=True, slots=True)
class SchedulerDown:
    stimulus_id: str


AgentEvent = Assigned | Revoked | ContainerChanged | SchedulerUp | SchedulerDown


# --- instructions ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Run:
    container_id: str
    generation: int
    spec: ContainerSpec
    stimulus_id: str


@dataclass(frozen=True, slots=True)
class StopAndRemove:
    container_id: str
    reason: str
    stimulus_id: str


@dataclass(frozen=True, slots=True)
class Reconnect:
    """Put the held copy on exactly the networks ``spec`` connects it to (``spec.connected``),
    once its run has made it: a connect or disconnect that reached the node before the copy
    existed takes effect when it does."""

    container_id: str
    generation: int
    spec: ContainerSpec
    stimulus_id: str


@dataclass(frozen=True, slots=True)
class SendReport:
    container_id: str
    generation: int
    status: ContainerStatus
    exit_code: int | None
    stimulus_id: str


@dataclass(frozen=True, slots=True)
class Refuse:
    container_id: str
    generation: int
    reason: str
    stimulus_id: str


Instruction = Run | StopAndRemove | Reconnect | SendReport | Refuse


@dataclass(slots=True)
class _Held:
    generation: int
    status: ContainerStatus = "created"
    exit_code: int | None = None


@dataclass(slots=True)
class AgentState:
    """What this worker holds, by container id, and whether the scheduler can hear it."""

    held: dict[str, _Held] = field(default_factory=dict)
    fenced: dict[str, int] = field(default_factory=dict)  # lowest generation still acceptable
    connected: bool = False
    unsent: dict[str, SendReport] = field(default_factory=dict)

    def restore(self, container_id: str, generation: int, status: ContainerStatus,
                exit_code: int | None) -> None:
        """After a restart: a container this worker already holds, at its generation."""
        self.held[container_id] = _Held(generation, status, exit_code)
        self.fenced[container_id] = max(self.fenced.get(container_id, 0), generation)

    def holds(self, container_id: str, generation: int) -> bool:
        """Whether ``container_id`` at ``generation`` is the copy this worker should hold
        (news of any other copy, such as one being replaced, is nobody's business)."""
        held = self.held.get(container_id)
        return held is not None and held.generation == generation

    def handle(self, *events: AgentEvent) -> list[Instruction]:
        out: list[Instruction] = []
        for event in events:
            out.extend(self._handle(event))
        return out

    def _handle(self, event: AgentEvent) -> list[Instruction]:
        if isinstance(event, Assigned):
            return self._assigned(event)
        if isinstance(event, Revoked):
            return self._revoked(event)
        if isinstance(event, ContainerChanged):
            return self._changed(event)
        if isinstance(event, SchedulerUp):
            self.connected = True
            reports = [SendReport(cid, held.generation, held.status, held.exit_code,
                                  event.stimulus_id) for cid, held in sorted(self.held.items())]
            self.unsent.clear()
            return list(reports)
        self.connected = False
        return []

    def _assigned(self, event: Assigned) -> list[Instruction]:
        lowest = self.fenced.get(event.container_id, 0)
        if event.generation < lowest:
            return [Refuse(event.container_id, event.generation,
                           f"generation {event.generation} is stale (the lowest still "
                           f"acceptable is {lowest})", event.stimulus_id)]
        held = self.held.get(event.container_id)
        if held is not None and held.generation == event.generation:  # a resend
            return [self._report(event.container_id, held, event.stimulus_id),
                    Reconnect(event.container_id, event.generation, event.spec,
                              event.stimulus_id)]
        out: list[Instruction] = []
        if held is not None:
            out.append(StopAndRemove(event.container_id,
                                     f"replaced by generation {event.generation}",
                                     event.stimulus_id))
        self.fenced[event.container_id] = event.generation
        self.held[event.container_id] = _Held(event.generation)
        out.append(Run(event.container_id, event.generation, event.spec, event.stimulus_id))
        return out

    def _revoked(self, event: Revoked) -> list[Instruction]:
        # Everything up to the revoked generation is dead for good.
        self.fenced[event.container_id] = max(self.fenced.get(event.container_id, 0),
                                              event.generation + 1)
        held = self.held.get(event.container_id)
        if held is None or held.generation > event.generation:
            return []
        del self.held[event.container_id]
        self.unsent.pop(event.container_id, None)
        return [StopAndRemove(event.container_id, event.reason, event.stimulus_id)]

    def _changed(self, event: ContainerChanged) -> list[Instruction]:
        held = self.held.get(event.container_id)
        if held is None:
            return []  # a copy already revoked or replaced: nobody wants news of it
        held.status = event.status
        held.exit_code = event.exit_code
        report = self._report(event.container_id, held, event.stimulus_id)
        if not self.connected:
            self.unsent[event.container_id] = report
            return []
        return [report]

    @staticmethod
    def _report(container_id: str, held: _Held, stimulus_id: str) -> SendReport:
        return SendReport(container_id, held.generation, held.status, held.exit_code,
                          stimulus_id)
