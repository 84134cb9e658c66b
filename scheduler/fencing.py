"""The cluster's fencing delay: how long a cut-off worker keeps its exclusive containers.

A worker kills its ``exclusive`` containers once ``fence_after`` seconds have passed since the
send time of its last acknowledged heartbeat; the scheduler declares a node down (and places its
containers elsewhere) after ``node_timeout`` seconds without hearing from it. That send time is
never later than the scheduler's own last hearing, so the worker's deadline comes first whatever
the network's delay; the margin between the two covers the kill itself and a late timer. Both
sides measure on their own monotonic clocks: no wall-clock time is compared across hosts.
"""

from __future__ import annotations

from protocol.errors import InvalidArgument

MARGIN_HEARTBEATS = 2  # node_timeout - fence_after is at least this many heartbeat intervals


def fence_margin(heartbeat_interval: float) -> float:
    """The least gap between the worker's fence and the scheduler's node timeout."""
    return MARGIN_HEARTBEATS * heartbeat_interval


def fence_delay(heartbeat_interval: float, node_timeout: float,
                fence_after: float | None = None) -> float:
    """The fencing delay for these timings: ``fence_after`` checked, or by default the node
    timeout less the margin. Refused (one line, what to change) when the node timeout does not
    leave the margin after it."""
    margin = fence_margin(heartbeat_interval)
    chosen = node_timeout - margin if fence_after is None else fence_after
    if chosen <= 0 or node_timeout < chosen + margin:
        given = "" if fence_after is None else f" {fence_after:g} s of fencing delay plus"
        raise InvalidArgument(
            f"the node timeout ({node_timeout:g} s) must exceed{given} {MARGIN_HEARTBEATS} "
            f"heartbeat intervals ({margin:g} s), so that a cut-off worker kills its exclusive "
            "containers before they are placed elsewhere: raise --node-timeout or lower "
            "--heartbeat-interval" + ("" if fence_after is None else " or --fence-after"),
            details={"field": "fence_after"})
    return chosen
