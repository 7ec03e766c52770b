"""wrr: the {cl, cw, mw, di} walk of ip_vs_wrr.c, sequences derived by hand."""

from __future__ import annotations

from sched_support import dest, order, overload, picks, server, service


def test_wrr_interleaves_by_weight_after_a_plain_first_round() -> None:
    """Weights A=4, B=3, C=2 added C, B, A -> list A, B, C.

    The service starts empty (mw = cw = 0). Adding C: di=2, mw=1, cw 0 -> 1. Adding
    B, then A: di=1, mw=3 then 4, and cw=1 is kept (not above mw, not 0). So the
    first round is with cw=1: A, B, C. Then cw wraps to mw=4 and the weighted cycle
    runs: cw=4: A | cw=3: A, B | cw=2: A, B, C | cw=1: A, B, C | cw=4: A ...
    """
    svc = service("wrr", ("C", 2), ("B", 3), ("A", 4))
    assert order(svc) == ["A", "B", "C"]
    first_round = ["A", "B", "C"]
    cycle = ["A", "A", "B", "A", "B", "C", "A", "B", "C"]
    assert picks(svc, 3 + 9 + 9) == first_round + cycle + cycle


def test_wrr_steps_by_the_gcd_of_the_weights() -> None:
    """A=4, B=2 added B, A -> list A, B. Adding B: di=2, mw=1, cw=1; adding A: di=2,
    mw=4-(2-1)=3, cw=1 -> (1//2)*2+1 = 1.

    cw=1: A, B | cw=-1 -> 3: A | cw=1: A, B | cw=3: A ... a 2:1 ratio in 2 passes.
    """
    svc = service("wrr", ("B", 2), ("A", 4))
    assert picks(svc, 8) == ["A", "B", "A", "A", "B", "A", "A", "B"]


def test_wrr_equal_weights_behave_like_rr_but_start_at_the_head_after_changes() -> None:
    """A, B weight 1 (list B, A): B, A, B. Adding C resets cl to the head: C, B, A
    (rr would have gone on with A after B)."""
    svc = service("wrr", "A", "B")
    assert picks(svc, 3) == ["B", "A", "B"]
    svc.add_dest(server("C"))
    assert picks(svc, 3) == ["C", "B", "A"]


def test_wrr_weight_change_mid_sequence_restarts_the_walk_but_keeps_cw() -> None:
    """A=4, B=3, C=2 (list A, B, C): first round A, B, C (cw=1), then cw=4: A and
    cw=3: A, leaving cl=A, cw=3. Raising C to 5: cl back to the head, mw=5, cw=3
    kept (not above mw, di=1):

    cw=3: A, B, C | cw=2: A, B, C | cw=1: A, B, C | cw=5: C | cw=4: A, C
    """
    svc = service("wrr", ("C", 2), ("B", 3), ("A", 4))
    assert picks(svc, 5) == ["A", "B", "C", "A", "A"]
    svc.edit_dest(dest(svc, "C"), weight=5)
    assert picks(svc, 12) == ["A", "B", "C", "A", "B", "C", "A", "B", "C", "C", "A", "C"]


def test_wrr_gcd_change_rounds_the_current_weight() -> None:
    """A=4, B=3, C=2: picks A, B, C | A | A, B | A leave cl=A, cw=2. Setting B to 2
    (weights 4, 2, 2): di=2, mw=3, and cw=2 becomes (2//2)*2+1 = 3.

    From the head: cw=3: A | cw=1: A, B, C | cw=-1 -> 3: A | cw=1: A, B, C
    """
    svc = service("wrr", ("C", 2), ("B", 3), ("A", 4))
    assert picks(svc, 7) == ["A", "B", "C", "A", "A", "B", "A"]
    svc.edit_dest(dest(svc, "B"), weight=2)
    assert picks(svc, 8) == ["A", "A", "B", "C", "A", "A", "B", "C"]


def test_wrr_never_picks_weight_zero() -> None:
    """A=2, B=0 (list A, B): di=2, mw=1. B never reaches cw >= 1."""
    svc = service("wrr", ("B", 0), ("A", 2))
    assert picks(svc, 4) == ["A", "A", "A", "A"]


def test_wrr_no_destination_when_all_weights_are_zero() -> None:
    """mw = 0 -> "no destination available" at once."""
    svc = service("wrr", ("A", 0), ("B", 0))
    assert picks(svc, 2) == [None, None]
    svc.edit_dest(dest(svc, "A"), weight=3)
    assert picks(svc, 2) == ["A", "A"]


def test_wrr_skips_overloaded_and_gives_up_when_all_are_overloaded() -> None:
    """A=2, B=1 (list A, B), cw=1 after the adds: A, B | cw=2: A. With A overloaded
    only B is left (found in the cw=1 passes); with both overloaded the last-pass
    logic stops after one full cw=1 traversal: None."""
    svc = service("wrr", ("B", 1), ("A", 2))
    assert picks(svc, 3) == ["A", "B", "A"]
    overload(dest(svc, "A"))
    assert picks(svc, 3) == ["B", "B", "B"]
    overload(dest(svc, "B"))
    assert picks(svc, 2) == [None, None]


def test_wrr_deleting_a_server_restarts_from_the_head() -> None:
    """A, B, C weight 1 (list C, B, A): C, B. Delete A -> cl back to head: C, B, C."""
    svc = service("wrr", "A", "B", "C")
    assert picks(svc, 2) == ["C", "B"]
    svc.del_dest(dest(svc, "A"))
    assert picks(svc, 3) == ["C", "B", "C"]
