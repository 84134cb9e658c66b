"""Device rules as the cgroup v1 controller reduces them, and the cgroup v2 device filter built
from them: the eBPF instructions are run by a small interpreter over every (type, major, minor,
access) of a grid and must decide as the v1 check does."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings

from tests.helpers.device_rules import denying_lists, rule_lists
from tests.helpers.ebpf_interpreter import run_device_filter
from worker.runtime import cgroups, device_filter
from worker.runtime.device_policy import (
    ACCESS_MKNOD,
    ACCESS_READ,
    ACCESS_WRITE,
    DevicePolicy,
    parse_listing,
    reduce,
    transition,
)
from worker.runtime.errors import BundleInvalid
from worker.runtime.spec import DeviceRule, Resources

R, W, M = ACCESS_READ, ACCESS_WRITE, ACCESS_MKNOD
RW = R | W


def container_policy(rules: list[DeviceRule]) -> DevicePolicy:
    """What a container's cgroup gets: the same lines the v1 controller is given."""
    lines = cgroups._device_writes(rules)
    return reduce([(name == "devices.allow", value) for _c, name, value in lines])


def filter_permits(policy: DevicePolicy, kind: str, major: int, minor: int,
                   access: int) -> bool:
    verdict = run_device_filter(device_filter.program(policy), device_filter.DEV_TYPES[kind],
                                access, major, minor)
    assert verdict in (0, 1)
    return verdict == 1


DEFAULTS = container_policy([])

# (policy, device, access, allowed): what the kernel's v1 controller decides, by hand.
CASES = [
    (DEFAULTS, ("c", 1, 3), RW, True),          # /dev/null
    (DEFAULTS, ("c", 1, 11), R, False),         # /dev/kmsg
    (DEFAULTS, ("c", 1, 11), W, False),
    (DEFAULTS, ("c", 1, 11), M, True),          # c *:* m: any node may be made
    (DEFAULTS, ("b", 8, 0), M, True),
    (DEFAULTS, ("b", 8, 0), R, False),
    (DEFAULTS, ("b", 1, 3), R, False),          # the type counts
    (DEFAULTS, ("c", 136, 7), RW, True),        # a pty
    (DEFAULTS, ("c", 5, 2), RW | M, True),      # ptmx
    (DEFAULTS, ("c", 10, 200), RW, True),       # tun
    (DEFAULTS, ("c", 10, 229), RW, False),      # fuse
    # runc's "rwa" test: allow everything, then deny fuse read and write.
    (container_policy([DeviceRule(allow=True, access="rwm"),
                       DeviceRule(allow=False, type="c", major=10, minor=229, access="rwa")]),
     ("c", 10, 229), R, False),
    (container_policy([DeviceRule(allow=True, access="rwm"),
                       DeviceRule(allow=False, type="c", major=10, minor=229, access="rwa")]),
     ("c", 10, 229), M, True),
    (container_policy([DeviceRule(allow=True, access="rwm"),
                       DeviceRule(allow=False, type="c", major=10, minor=229, access="rwa")]),
     ("b", 8, 0), RW, True),
    # An explicit allow of one device, for reading only.
    (container_policy([DeviceRule(allow=True, type="c", major=1, minor=11, access="r")]),
     ("c", 1, 11), R, True),
    (container_policy([DeviceRule(allow=True, type="c", major=1, minor=11, access="r")]),
     ("c", 1, 11), RW, False),
    # A deny only removes access from an exception with exactly its type, major and minor:
    # denying c *:* leaves c 1:3 allowed (not "the last matching rule wins").
    (reduce([(False, "a"), (True, "c 1:3 rwm"), (False, "c *:* rwm")]), ("c", 1, 3), R, True),
    (reduce([(False, "a"), (True, "c 1:3 rwm"), (False, "c 1:3 w")]), ("c", 1, 3), R, True),
    (reduce([(False, "a"), (True, "c 1:3 rwm"), (False, "c 1:3 w")]), ("c", 1, 3), RW, False),
    # Equal rules merge; different ones do not, and one exception must cover the access.
    (reduce([(False, "a"), (True, "c 1:3 r"), (True, "c 1:3 w")]), ("c", 1, 3), RW, True),
    (reduce([(False, "a"), (True, "c *:* r"), (True, "c 1:3 w")]), ("c", 1, 3), RW, False),
    (reduce([(False, "a"), (True, "c *:* r"), (True, "c 1:3 w")]), ("c", 1, 3), W, True),
    # Default allow: an exception sharing any bit with the access refuses it.
    (reduce([(True, "a"), (False, "c 1:3 w")]), ("c", 1, 3), RW, False),
    (reduce([(True, "a"), (False, "c 1:3 w")]), ("c", 1, 3), R, True),
    (reduce([(True, "a"), (False, "c 1:3 rwm"), (True, "c 1:3 rwm")]), ("c", 1, 3), R, True),
    (reduce([(True, "a"), (False, "c 1:* rwm"), (True, "c 1:3 rwm")]), ("c", 1, 3), R, False),
    # "a" resets the default and drops the exceptions.
    (reduce([(False, "a"), (True, "c 1:3 rwm"), (True, "a")]), ("b", 8, 0), RW, True),
    (reduce([(True, "a"), (False, "a")]), ("c", 1, 3), M, False),
    # Device numbers past 2**31 (the immediate is signed in the instruction).
    (reduce([(False, "a"), (True, "c 3000000000:4294967294 r")]), ("c", 3000000000, 4294967294),
     R, True),
    (reduce([(False, "a"), (True, "c 3000000000:4294967294 r")]), ("c", 3000000000, 1), R, False),
]


@pytest.mark.parametrize(("policy", "device", "access", "allowed"), CASES)
def test_the_policy_and_its_filter_decide_as_the_v1_controller(
        policy: DevicePolicy, device: tuple[str, int, int], access: int, allowed: bool) -> None:
    assert policy.permits(*device, access) == allowed
    assert filter_permits(policy, *device, access) == allowed


NUMBERS = ["*", "1", "3", "3000000000"]
RULE_LISTS = rule_lists(NUMBERS, max_size=12)
GRID = list(itertools.product("cb", (1, 3, 7, 3000000000), (1, 3, 9, 3000000000),
                              range(1, 8)))


@settings(max_examples=300, deadline=None)
@given(RULE_LISTS)
def test_the_filter_decides_every_access_as_the_policy_does(
        rules: list[tuple[bool, str]]) -> None:
    policy = reduce(rules)
    program = device_filter.program(policy)
    for kind, major, minor, access in GRID:
        assert (run_device_filter(program, device_filter.DEV_TYPES[kind], access, major, minor)
                == 1) == policy.permits(kind, major, minor, access), (kind, major, minor, access)


def test_malformed_lines_and_device_numbers_are_refused() -> None:
    with pytest.raises(ValueError, match="not a device number"):
        reduce([(True, "c x:1 r")])
    with pytest.raises(ValueError, match="none of r, w and m"):
        reduce([(True, "c 1:1 q")])
    with pytest.raises(BundleInvalid, match=r"devices\[0\]\.major"):
        cgroups._device_writes([DeviceRule(allow=True, type="c", major=1 << 32, minor=1)])


def test_a_container_cgroup_without_any_device_mechanism_is_refused(tmp_path: Path) -> None:
    """Neither a v1 devices hierarchy nor cgroup2: refused (and unwound), never left open."""
    plain = cgroups.Hierarchy(frozenset({"memory"}), str(tmp_path), str(tmp_path), False)
    where = [(plain, str(tmp_path / "shoal" / "c1"))]
    with pytest.raises(OSError, match="no devices cgroup hierarchy"):
        cgroups.create(where, None)
    assert list(tmp_path.iterdir()) == []
    # A host process's cgroup (the process driver) has no device policy to apply.
    assert cgroups.create(where, None, confine_devices=False) == [
        str(tmp_path / "shoal"), str(tmp_path / "shoal" / "c1")]


def test_what_create_makes_joins_and_refuses(tmp_path: Path) -> None:
    """A cgroup whose parent exists is made alone; missing parents are made outermost first
    (and returned, for removal); an existing cgroup is joined, not made; a file in its place
    (a control file's name) is refused."""
    plain = cgroups.Hierarchy(frozenset({"memory"}), str(tmp_path), str(tmp_path), False)

    def make(*parts: str) -> list[str]:
        return cgroups.create([(plain, str(tmp_path.joinpath(*parts)))], None,
                              confine_devices=False)

    assert make("a", "b", "c1") == [str(tmp_path / "a"), str(tmp_path / "a" / "b"),
                                    str(tmp_path / "a" / "b" / "c1")]
    assert make("a", "b", "c2") == [str(tmp_path / "a" / "b" / "c2")]
    assert make("a", "b", "c2") == []
    (tmp_path / "a" / "cgroup.procs").touch()
    with pytest.raises(FileExistsError):
        make("a", "cgroup.procs")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b", "cgroup.procs"]


def test_a_bad_device_rule_is_the_bundles_error_before_any_cgroup_is_made(
        tmp_path: Path) -> None:
    unified = cgroups.Hierarchy(frozenset(), str(tmp_path), str(tmp_path), True)
    res = Resources(devices=[DeviceRule(allow=True, type="x")])
    with pytest.raises(BundleInvalid, match=r"devices\[0\]\.type"):
        cgroups.v2_writes(res)  # what the launcher checks before it forks
    with pytest.raises(BundleInvalid, match=r"devices\[0\]\.type"):
        cgroups.create([(unified, str(tmp_path / "c1"))], res)
    assert list(tmp_path.iterdir()) == []


DENYING_LISTS = denying_lists(NUMBERS, max_size=10)


def _grid_allowed(policy: DevicePolicy) -> set[tuple[str, int, int, int]]:
    return {cell for cell in GRID if policy.permits(*cell)}


@settings(max_examples=300, deadline=None)
@given(DENYING_LISTS, DENYING_LISTS)
def test_a_transition_between_default_deny_policies_never_passes_outside_both(
        before: list[tuple[bool, str]], after: list[tuple[bool, str]]) -> None:
    """No write of a live update leaves the container allowed more than either policy
    allows; none refuses what both allow unless some exception both gains and loses access
    (then no order can always avoid both); the last leaves it exactly at the target."""
    current, target = reduce(before), reduce(after)
    steps = transition(current, target)
    assert steps is not None
    both = _grid_allowed(current) & _grid_allowed(target)
    either = _grid_allowed(current) | _grid_allowed(target)
    had = {(ex.kind, ex.major, ex.minor): ex.access for ex in current.exceptions}
    wants = {(ex.kind, ex.major, ex.minor): ex.access for ex in target.exceptions}
    mixed = any(had.get(key, 0) & ~wants.get(key, 0) and wants.get(key, 0) & ~had.get(key, 0)
                for key in had.keys() | wants.keys())
    state = current
    for step in steps:
        state = reduce([step], start=state)
        assert _grid_allowed(state) <= either, step
        assert mixed or both <= _grid_allowed(state), step
    assert not state.default_allow
    assert sorted(state.exceptions) == sorted(target.exceptions)


@settings(max_examples=200, deadline=None)
@given(DENYING_LISTS)
def test_a_default_deny_listing_reads_back_as_its_policy(rules: list[tuple[bool, str]]) -> None:
    policy = reduce(rules)
    assert parse_listing(policy.listing()) == policy


def test_a_default_allow_policy_has_no_transition_and_no_readable_listing() -> None:
    allowing = reduce([(True, "a"), (False, "c 1:3 w")])
    denying = container_policy([])
    assert parse_listing(allowing.listing()) is None
    assert transition(allowing, denying) is None
    assert transition(denying, allowing) is None


def test_an_exception_that_trades_access_is_cut_before_it_is_given_the_rest() -> None:
    """c *:* r and c 1:3 w become c *:* w and c 1:3 r: rw on 1:3, which neither allows, is
    never allowed (r on 1:3 is refused between two writes: the one order that avoids it
    allows rw)."""
    steps = transition(reduce([(False, "a"), (True, "c *:* r"), (True, "c 1:3 w")]),
                       reduce([(False, "a"), (True, "c *:* w"), (True, "c 1:3 r")]))
    assert steps == [(False, "c *:* r"), (False, "c 1:3 w"), (True, "c *:* w"),
                     (True, "c 1:3 r")]


def test_a_device_added_and_another_removed_gains_first() -> None:
    before = container_policy([DeviceRule(allow=True, type="c", major=10, minor=229)])
    after = container_policy([DeviceRule(allow=True, type="c", major=1, minor=11, access="rw")])
    assert transition(before, after) == [(True, "c 1:11 rw"), (False, "c 10:229 rwm")]
