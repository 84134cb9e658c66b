"""A manager's own enrollments and revocations stay in force while its watch of etcd is still
delivering older events: a stale event must not cut a key it has just admitted."""

from __future__ import annotations

from scheduler.cluster.auth import KeyRecord, overlay_ahead

ANN = KeyRecord(role="client", name="ann")
W1 = KeyRecord(role="worker", name="w1")


def test_a_write_newer_than_the_watch_is_kept_over_it() -> None:
    ahead: dict[str, tuple[int, KeyRecord | None]] = {"ann": (12, ANN)}
    # The watch delivers w1's enrollment (revision 11), made before ann's (12).
    merged = overlay_ahead({"w1": W1}, ahead, seen=11)
    assert merged == {"w1": W1, "ann": ANN}
    assert ahead == {"ann": (12, ANN)}


def test_a_write_the_watch_has_reached_is_forgotten() -> None:
    ahead: dict[str, tuple[int, KeyRecord | None]] = {"ann": (12, ANN)}
    assert overlay_ahead({"w1": W1, "ann": ANN}, ahead, seen=12) == {"w1": W1, "ann": ANN}
    assert ahead == {}
    # From then on the watch alone decides: a later revocation elsewhere removes the key.
    assert overlay_ahead({"w1": W1}, ahead, seen=13) == {"w1": W1}


def test_a_revocation_newer_than_the_watch_stays_cut() -> None:
    ahead: dict[str, tuple[int, KeyRecord | None]] = {"w1": (20, None)}
    assert overlay_ahead({"w1": W1, "ann": ANN}, ahead, seen=19) == {"ann": ANN}
    assert overlay_ahead({"ann": ANN}, ahead, seen=20) == {"ann": ANN}
    assert ahead == {}


def test_the_watch_state_itself_is_not_changed() -> None:
    fresh = {"w1": W1}
    overlay_ahead(fresh, {"ann": (5, ANN)}, seen=1)
    assert fresh == {"w1": W1}
