"""Restart decisions against a table of cases (Docker's semantics)."""

from __future__ import annotations

import itertools

import pytest

from protocol.specs import RestartPolicy
from worker.engine.restart import (
    BACKOFF_MAX,
    ExitFacts,
    NoRestart,
    Restart,
    RestartHistory,
    decide,
    next_delay,
    start_on_worker_boot,
    started_by_hand,
)

NO = RestartPolicy(name="no")
ALWAYS = RestartPolicy(name="always")
UNLESS = RestartPolicy(name="unless-stopped")
ON_FAILURE = RestartPolicy(name="on-failure")
ON_FAILURE_2 = RestartPolicy(name="on-failure", max_retries=2)


@pytest.mark.parametrize(
    ("policy", "history", "exit", "restart", "count"),
    [
        (NO, RestartHistory(), ExitFacts(1, 1.0), False, 0),
        (NO, RestartHistory(), ExitFacts(0, 1.0), False, 0),
        (ALWAYS, RestartHistory(), ExitFacts(0, 1.0), True, 1),
        (ALWAYS, RestartHistory(), ExitFacts(137, 1.0), True, 1),
        (UNLESS, RestartHistory(), ExitFacts(0, 1.0), True, 1),
        (ON_FAILURE, RestartHistory(), ExitFacts(0, 1.0), False, 0),
        (ON_FAILURE, RestartHistory(), ExitFacts(1, 1.0), True, 1),
        (ON_FAILURE, RestartHistory(restart_count=50), ExitFacts(1, 1.0), True, 51),
        (ON_FAILURE_2, RestartHistory(restart_count=1), ExitFacts(1, 1.0), True, 2),
        (ON_FAILURE_2, RestartHistory(restart_count=2), ExitFacts(1, 1.0), False, 2),
        (ALWAYS, RestartHistory(), ExitFacts(143, 1.0, manual_stop=True), False, 0),
        (UNLESS, RestartHistory(), ExitFacts(143, 1.0, manual_stop=True), False, 0),
        (ALWAYS, RestartHistory(manually_stopped=True), ExitFacts(0, 1.0), False, 0),
    ],
)
def test_decisions(policy: RestartPolicy, history: RestartHistory, exit: ExitFacts,
                   restart: bool, count: int) -> None:
    decision = decide(policy, history, exit)
    assert isinstance(decision, Restart) is restart
    assert decision.history.restart_count == count


def test_a_container_failing_three_times_under_on_failure_2_restarts_twice() -> None:
    history = RestartHistory()
    restarts = 0
    for _ in range(3):
        decision = decide(ON_FAILURE_2, history, ExitFacts(1, 0.01))
        history = decision.history
        if isinstance(decision, Restart):
            restarts += 1
    assert restarts == 2
    assert history.restart_count == 2
    assert isinstance(decide(ON_FAILURE_2, history, ExitFacts(1, 0.01)), NoRestart)


def test_backoff_doubles_from_100ms_to_a_minute_and_resets_after_10s() -> None:
    history = RestartHistory()
    delays = []
    for _ in range(12):
        decision = decide(ALWAYS, history, ExitFacts(1, 0.5))
        assert isinstance(decision, Restart)
        delays.append(decision.delay)
        history = decision.history
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8]
    assert delays[-1] == BACKOFF_MAX
    assert all(b == min(a * 2, BACKOFF_MAX) for a, b in itertools.pairwise(delays))
    decision = decide(ALWAYS, history, ExitFacts(1, 10.0))
    assert isinstance(decision, Restart)
    assert decision.delay == 0.1
    assert next_delay(0.0, 0.0) == 0.1


def test_a_manual_stop_holds_until_the_next_start() -> None:
    stopped = decide(ALWAYS, RestartHistory(restart_count=3, last_delay=0.8),
                     ExitFacts(143, 2.0, manual_stop=True))
    assert isinstance(stopped, NoRestart)
    assert stopped.history.manually_stopped
    again = started_by_hand(stopped.history)
    assert again == RestartHistory(restart_count=3, last_delay=0.0, manually_stopped=False)
    assert isinstance(decide(ALWAYS, again, ExitFacts(1, 0.1)), Restart)


@pytest.mark.parametrize(
    ("policy", "manually_stopped", "was_running", "start"),
    [
        (ALWAYS, True, False, True),
        (ALWAYS, False, True, True),
        (UNLESS, True, False, False),
        (UNLESS, False, True, True),
        (ON_FAILURE, False, True, True),
        (ON_FAILURE, True, False, False),
        (NO, False, True, False),
    ],
)
def test_worker_boot(policy: RestartPolicy, manually_stopped: bool, was_running: bool,
                     start: bool) -> None:
    history = RestartHistory(manually_stopped=manually_stopped)
    assert start_on_worker_boot(policy, history, was_running) is start


@pytest.mark.parametrize(
    ("text", "policy"),
    [("no", NO), ("always", ALWAYS), ("unless-stopped", UNLESS), ("on-failure", ON_FAILURE),
     ("on-failure:2", ON_FAILURE_2)],
)
def test_parse_policy(text: str, policy: RestartPolicy) -> None:
    assert RestartPolicy.parse(text) == policy


@pytest.mark.parametrize("text", ["sometimes", "always:3", "on-failure:x", "on-failure:-1", ""])
def test_parse_policy_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"restart policy|retry count|only on-failure"):
        RestartPolicy.parse(text)


SWARM = RestartPolicy(name="always", max_retries=2, delay=5.0, window=60.0)


def _run(policy: RestartPolicy, exits_at: list[float]) -> list[tuple[bool, float]]:
    """Each exit in turn (after a quick run): restarted or not, and after what delay."""
    history = RestartHistory()
    seen = []
    for at in exits_at:
        decision = decide(policy, history, ExitFacts(1, 0.5, at=at))
        seen.append((isinstance(decision, Restart),
                     decision.delay if isinstance(decision, Restart) else 0.0))
        history = decision.history
    return seen


@pytest.mark.parametrize(("policy", "exits_at", "seen"), [
    # delay: a fixed wait in place of the doubling backoff
    (RestartPolicy(name="always", delay=2.5), [1.0, 2.0, 3.0],
     [(True, 2.5), (True, 2.5), (True, 2.5)]),
    # Swarm's max_attempts bounds always too; without a window, for good
    (RestartPolicy(name="always", max_retries=2), [1.0, 100.0, 200.0],
     [(True, 0.1), (True, 0.2), (False, 0.0)]),
    # with a window, only the restarts of the last 60 s count
    (SWARM, [1.0, 2.0, 3.0], [(True, 5.0), (True, 5.0), (False, 0.0)]),
    (SWARM, [1.0, 2.0, 70.0, 71.0, 72.0],
     [(True, 5.0), (True, 5.0), (True, 5.0), (True, 5.0), (False, 0.0)]),
])
def test_swarm_s_delay_max_attempts_and_window(policy: RestartPolicy, exits_at: list[float],
                                               seen: list[tuple[bool, float]]) -> None:
    assert _run(policy, exits_at) == seen
