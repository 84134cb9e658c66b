"""The registry access a run brings: kept per container (per job for a global job), attached
to its assignments only, undone when its submission fails, dropped with the container."""

from __future__ import annotations

from protocol.messages import Assign, Ok, RegistryOptions
from protocol.specs import ContainerSpec
from scheduler.cluster.pull_access import PullAccess

ALICE = RegistryOptions(username="alice", password="s3cret")
BOB = RegistryOptions(username="bob", password="other")


def assign(cid: str) -> Assign:
    return Assign(container_id=cid, generation=1, spec=ContainerSpec(image="r.example/a:1"))


def carried(access: PullAccess, cid: str) -> RegistryOptions | None:
    sent = access.attach(assign(cid))
    assert isinstance(sent, Assign)
    return sent.registry


def test_assignments_carry_their_own_containers_access_only() -> None:
    access = PullAccess()
    access.remember(["job.1", "job.2"], ALICE)
    access.remember(["other"], BOB)
    assert access.attach(assign("job.2")) == \
        Assign(container_id="job.2", generation=1, spec=assign("job.2").spec, registry=ALICE)
    assert carried(access, "other") == BOB
    assert carried(access, "nobody") is None
    assert access.attach(Ok()) == Ok()
    access.forget("job.1")
    assert carried(access, "job.1") is None


def test_a_failed_submission_gives_back_what_an_id_had() -> None:
    access = PullAccess()
    access.remember(["taken"], ALICE)
    undo = access.remember(["taken", "new"], BOB)
    undo()
    assert carried(access, "taken") == ALICE
    assert carried(access, "new") is None
    assert len(access) == 1


def test_the_oldest_are_forgotten_beyond_the_limit() -> None:
    access = PullAccess(limit=2)
    for cid in ("a", "b", "c"):
        access.remember([cid], ALICE)
    assert len(access) == 2
    assert carried(access, "a") is None


def test_secrets_stay_out_of_reprs() -> None:
    assert "s3cret" not in repr(ALICE) and "s3cret" not in repr(assign("x"))
    text = repr(Assign(container_id="x", generation=1, spec=assign("x").spec, registry=ALICE))
    assert "s3cret" not in text and "alice" in text


def test_a_global_jobs_access_rides_with_the_replicas_the_records_name() -> None:
    replicas = {"agent.a": "agent", "agent.b": "agent"}
    access = PullAccess(global_job_of=replicas.get)
    access.remember_global_job("agent", ALICE)
    assert carried(access, "agent.a") == ALICE
    assert carried(access, "agent.b") == ALICE
    # A container that only looks like a replica (a name, a label) is none.
    assert carried(access, "agent.c") is None
    # Its own access comes first.
    access.remember(["agent.a"], BOB)
    assert carried(access, "agent.a") == BOB
    # Submitted again without access: from now on it pulls without.
    undo = access.remember_global_job("agent", None)
    assert carried(access, "agent.b") is None
    undo()  # ... unless that submission failed
    assert carried(access, "agent.b") == ALICE
    access.forget("agent")  # the job removed
    assert carried(access, "agent.b") is None
