"""rr: the cursor walk of ip_vs_rr.c, sequences derived by hand from the kernel code."""

from __future__ import annotations

from sched_support import dest, order, overload, picks, server, service


def test_rr_starts_with_the_server_added_last() -> None:
    """Added A, B, C -> list C, B, A; the cursor starts at the list head.

    Each pick takes the entry after the cursor: C, B, A, then wraps to C.
    """
    svc = service("rr", "A", "B", "C")
    assert order(svc) == ["C", "B", "A"]
    assert picks(svc, 7) == ["C", "B", "A", "C", "B", "A", "C"]


def test_rr_ignores_weights_other_than_zero() -> None:
    """Weight is only a >0 switch: weights 5, 1, 9 still give plain rotation."""
    svc = service("rr", ("A", 5), ("B", 1), ("C", 9))
    assert picks(svc, 6) == ["C", "B", "A", "C", "B", "A"]


def test_rr_skips_weight_zero_and_overloaded_servers() -> None:
    """List C, B, A. B quiesced (weight 0) -> C, A, C, A; then A overloaded -> C only."""
    svc = service("rr", "A", "B", "C")
    svc.edit_dest(dest(svc, "B"), weight=0)
    assert picks(svc, 4) == ["C", "A", "C", "A"]
    overload(dest(svc, "A"))
    assert picks(svc, 3) == ["C", "C", "C"]


def test_rr_a_server_added_mid_sequence_is_reached_after_the_wrap() -> None:
    """List C, B, A; picks C, B leave the cursor on B. Adding D makes the list D, C, B, A.

    rr has no add_dest hook, so the walk goes on after B: A, then wraps to D, C, B, A.
    """
    svc = service("rr", "A", "B", "C")
    assert picks(svc, 2) == ["C", "B"]
    svc.add_dest(server("D"))
    assert order(svc) == ["D", "C", "B", "A"]
    assert picks(svc, 5) == ["A", "D", "C", "B", "A"]


def test_rr_deleting_the_current_server_moves_on_to_its_successor() -> None:
    """List C, B, A; picks C, B (cursor B). Deleting B moves the cursor back to C
    (ip_vs_rr_del_dest: p->next->prev), so the next pick is A, then C."""
    svc = service("rr", "A", "B", "C")
    assert picks(svc, 2) == ["C", "B"]
    svc.del_dest(dest(svc, "B"))
    assert picks(svc, 3) == ["A", "C", "A"]


def test_rr_deleting_the_current_first_server_restarts_from_the_head() -> None:
    """List C, B, A; pick C (cursor on the first entry). Deleting C puts the cursor on
    the list head, so the walk starts again at the new first entry B."""
    svc = service("rr", "A", "B", "C")
    assert picks(svc, 1) == ["C"]
    svc.del_dest(dest(svc, "C"))
    assert picks(svc, 3) == ["B", "A", "B"]


def test_rr_deleting_another_server_keeps_the_rotation() -> None:
    """List D, C, B, A; picks D, C, B. Deleting D (before the cursor) changes nothing
    for the walk: A next, then C (D is gone), B."""
    svc = service("rr", "A", "B", "C", "D")
    assert picks(svc, 3) == ["D", "C", "B"]
    svc.del_dest(dest(svc, "D"))
    assert picks(svc, 3) == ["A", "C", "B"]


def test_rr_keeps_picking_the_current_server_when_it_is_the_only_one_left() -> None:
    """Cursor on C; B and A quiesced. The second pass covers the cursor itself, so C."""
    svc = service("rr", "A", "B", "C")
    assert picks(svc, 1) == ["C"]
    svc.edit_dest(dest(svc, "B"), weight=0)
    svc.edit_dest(dest(svc, "A"), weight=0)
    assert picks(svc, 2) == ["C", "C"]


def test_rr_says_no_destination_when_every_server_is_quiesced_or_empty() -> None:
    svc = service("rr")
    assert picks(svc, 1) == [None]
    svc = service("rr", ("A", 0), ("B", 0))
    assert picks(svc, 2) == [None, None]
    svc.edit_dest(dest(svc, "A"), weight=1)
    assert picks(svc, 2) == ["A", "A"]


def test_rr_resumes_after_a_failed_pick_from_the_same_place() -> None:
    """List C, B, A, cursor on B. All quiesced -> None, cursor unchanged; B re-enabled
    alone: the walk after B wraps and reaches B again."""
    svc = service("rr", "A", "B", "C")
    assert picks(svc, 2) == ["C", "B"]
    for letter in "ABC":
        svc.edit_dest(dest(svc, letter), weight=0)
    assert picks(svc, 1) == [None]
    svc.edit_dest(dest(svc, "A"), weight=1)
    svc.edit_dest(dest(svc, "C"), weight=1)
    assert picks(svc, 3) == ["A", "C", "A"]
