"""fo and ovf: highest weight first, derived from ip_vs_fo.c and ip_vs_ovf.c."""

from __future__ import annotations

from sched_support import dest, overload, picks, service, set_conns


def test_fo_sends_everything_to_the_heaviest_server() -> None:
    svc = service("fo", ("A", 5), ("B", 10), ("C", 1))
    set_conns(svc, B=1000)
    assert picks(svc, 3) == ["B", "B", "B"]


def test_fo_ties_go_to_the_server_added_last() -> None:
    """A and B both weight 5; list B, A -> B."""
    svc = service("fo", ("A", 5), ("B", 5))
    assert picks(svc, 1) == ["B"]


def test_fo_fails_over_when_the_heaviest_is_overloaded_or_quiesced() -> None:
    svc = service("fo", ("A", 5), ("B", 10), ("C", 1))
    overload(dest(svc, "B"))
    assert picks(svc, 1) == ["A"]
    svc.edit_dest(dest(svc, "A"), weight=0)
    assert picks(svc, 1) == ["C"]
    svc.edit_dest(dest(svc, "C"), weight=0)
    assert picks(svc, 1) == [None]


def test_ovf_keeps_the_heaviest_server_until_active_exceeds_its_weight() -> None:
    """A w=3, B w=2. A qualifies while active <= 3 (the kernel skips only active > w),
    so A with exactly 3 active connections still gets the 4th."""
    svc = service("ovf", ("A", 3), ("B", 2))
    set_conns(svc, A=3)
    assert picks(svc, 1) == ["A"]
    set_conns(svc, A=4)
    assert picks(svc, 1) == ["B"]
    set_conns(svc, B=3)
    assert picks(svc, 1) == [None]


def test_ovf_prefers_a_heavier_later_server_over_an_earlier_one() -> None:
    """List B, A (A added first). B w=1, A w=4: the highest weight wins, not list order."""
    svc = service("ovf", ("A", 4), ("B", 1))
    assert picks(svc, 1) == ["A"]


def test_ovf_ties_go_to_the_first_in_list_and_inactive_conns_do_not_count() -> None:
    svc = service("ovf", ("A", 2), ("B", 2))
    set_conns(svc, B=(2, 500))
    assert picks(svc, 1) == ["B"]


def test_ovf_skips_quiesced_and_overloaded_servers() -> None:
    svc = service("ovf", ("A", 1), ("B", 5), ("C", 0))
    overload(dest(svc, "B"), upper=3)  # 3 active <= weight 5, but OVERLOAD wins
    assert picks(svc, 1) == ["A"]
