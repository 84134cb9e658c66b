"""Restart decisions, exactly Docker's: a pure function of the policy, the exit and the history.

Policies: ``no``; ``on-failure[:N]`` (restart after a non-zero exit, at most N times when N > 0);
``always``; ``unless-stopped``. The delay before a restart starts at 100 ms and doubles after
every quick exit up to one minute; a container that ran for at least 10 s starts again from
100 ms. Swarm's restart policy (Compose's ``deploy.restart_policy``) adds to them: a fixed
``delay`` in place of the backoff, ``max_retries`` for ``always`` too (its max_attempts), and a
``window``: only the restarts of the last so many seconds count against max_retries.

A manual stop (stop, kill, or a stop request) suppresses restarts until the container is next
started by hand. When the worker itself starts, ``always`` containers come back even if they
were stopped by hand; ``unless-stopped`` ones only if they were not.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.specs import RestartPolicy

BACKOFF_START = 0.1
BACKOFF_MAX = 60.0
RESET_AFTER = 10.0


@dataclass(frozen=True, slots=True)
class RestartHistory:
    """What supervision remembers about one container between exits."""

    restart_count: int = 0
    last_delay: float = 0.0  # the delay used before the previous restart (0: none yet)
    manually_stopped: bool = False
    # When the latest restarts were decided (at most max_retries of them): what a window
    # counts.
    restarted_at: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class ExitFacts:
    exit_code: int
    ran_for: float  # seconds between the start and this exit
    manual_stop: bool = False  # the exit was caused by a stop/kill request
    at: float = 0.0  # when it exited (the clock restart times are kept on)


@dataclass(frozen=True, slots=True)
class Restart:
    delay: float
    history: RestartHistory


@dataclass(frozen=True, slots=True)
class NoRestart:
    reason: str
    history: RestartHistory


Decision = Restart | NoRestart


def next_delay(last_delay: float, ran_for: float) -> float:
    """100 ms, doubling to a minute; back to 100 ms after a run of at least 10 s."""
    if last_delay <= 0 or ran_for >= RESET_AFTER:
        return BACKOFF_START
    return min(last_delay * 2, BACKOFF_MAX)


def decide(policy: RestartPolicy, history: RestartHistory, exit: ExitFacts) -> Decision:
    """Whether (and after how long) a container that just exited starts again."""
    if exit.manual_stop or history.manually_stopped:
        return NoRestart("stopped by hand", RestartHistory(
            history.restart_count, history.last_delay, manually_stopped=True,
            restarted_at=history.restarted_at))
    if policy.name == "no":
        return NoRestart("restart policy is no", history)
    if policy.name == "on-failure" and exit.exit_code == 0:
        return NoRestart("exited 0 under on-failure", history)
    if policy.max_retries:
        counted = history.restart_count if not policy.window else \
            sum(1 for t in history.restarted_at if t > exit.at - policy.window)
        if counted >= policy.max_retries:
            within = f" within {policy.window:g} s" if policy.window else ""
            return NoRestart(f"{policy.name}:{policy.max_retries} reached after {counted} "
                             f"restarts{within}", history)
    delay = policy.delay if policy.delay is not None else \
        next_delay(history.last_delay, exit.ran_for)
    kept = (*history.restarted_at, exit.at)[-policy.max_retries:] if policy.max_retries \
        else ()
    return Restart(delay, RestartHistory(history.restart_count + 1, delay, False, kept))


def started_by_hand(history: RestartHistory) -> RestartHistory:
    """A start (or restart) request clears the manual stop and the backoff, not the count."""
    return RestartHistory(history.restart_count, 0.0, False, history.restarted_at)


def start_on_worker_boot(policy: RestartPolicy, history: RestartHistory,
                         was_running: bool) -> bool:
    """Whether a container found stopped when the worker starts is started again."""
    if policy.name == "always":
        return True
    if policy.name == "unless-stopped":
        return not history.manually_stopped
    if policy.name == "on-failure":
        return was_running and not history.manually_stopped
    return False
