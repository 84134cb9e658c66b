"""Hypothesis strategies for lists of cgroup v1 device rule writes, ``(allow, line)`` as
``device_policy.reduce`` takes them, over a few device numbers of the caller's choice."""

from __future__ import annotations

from hypothesis import strategies as st

ACCESSES = ["r", "w", "m", "rw", "rm", "wm", "rwm"]
Rules = list[tuple[bool, str]]


def device_lines(numbers: list[str]) -> st.SearchStrategy[str]:
    """``TYPE MAJOR:MINOR ACCESS``, major and minor drawn from ``numbers`` (``*`` included)."""
    return st.builds(lambda kind, major, minor, acc: f"{kind} {major}:{minor} {acc}",
                     st.sampled_from("cb"), st.sampled_from(numbers), st.sampled_from(numbers),
                     st.sampled_from(ACCESSES))


def rule_lists(numbers: list[str], max_size: int) -> st.SearchStrategy[Rules]:
    """Any writes, ``a`` (which resets the default) among them."""
    return st.lists(st.tuples(st.booleans(), st.one_of(st.just("a"), device_lines(numbers))),
                    max_size=max_size)


def denying_lists(numbers: list[str], max_size: int) -> st.SearchStrategy[Rules]:
    """Writes after ``deny a``, none resetting it: a default-deny cgroup's, as a container's."""
    return st.lists(st.tuples(st.booleans(), device_lines(numbers)),
                    max_size=max_size).map(lambda rules: [(False, "a"), *rules])
