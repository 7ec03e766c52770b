"""lc, wlc, sed, nq: cost formulas, strictness and tie-breaking, derived from the kernel code."""

from __future__ import annotations

from sched_support import dest, overload, picks, service, set_conns

# -- lc --------------------------------------------------------------------------


def test_lc_ties_go_to_the_server_added_last() -> None:
    """No connections anywhere: the first in list order (C, B, A) wins the tie."""
    svc = service("lc", "A", "B", "C")
    assert picks(svc, 1) == ["C"]


def test_lc_counts_one_active_connection_as_256_inactive_ones() -> None:
    """Overhead = active*256 + inactive. A: 1 active = 256; B: 300 inactive = 300;
    C: 255 inactive -> C. Then C at 257 -> A (256) wins."""
    svc = service("lc", "A", "B", "C")
    set_conns(svc, A=(1, 0), B=(0, 300), C=(0, 255))
    assert picks(svc, 1) == ["C"]
    set_conns(svc, C=(0, 257))
    assert picks(svc, 1) == ["A"]


def test_lc_ignores_weight_except_zero_and_skips_overloaded() -> None:
    """A (weight 100) with 2 active loses to B (weight 1) with 1 active. B quiesced ->
    A. A overloaded too -> None."""
    svc = service("lc", ("A", 100), ("B", 1))
    set_conns(svc, A=2, B=1)
    assert picks(svc, 1) == ["B"]
    svc.edit_dest(dest(svc, "B"), weight=0)
    assert picks(svc, 1) == ["A"]
    overload(dest(svc, "A"), upper=2)
    assert picks(svc, 1) == [None]


# -- wlc -------------------------------------------------------------------------


def test_wlc_divides_overhead_by_weight() -> None:
    """List B, A. B: w=3, 2 active (512); A: w=1, 1 active (256).
    Seed B; A replaces it only if 512*1 > 256*3 = 768: no -> B (512/3 < 256/1)."""
    svc = service("wlc", ("A", 1), ("B", 3))
    set_conns(svc, A=1, B=2)
    assert picks(svc, 1) == ["B"]
    set_conns(svc, B=4)  # 1024*1 > 256*3 -> A
    assert picks(svc, 1) == ["A"]


def test_wlc_ties_keep_the_earlier_server() -> None:
    """List B, A; B: w=2, 2 active (512); A: w=1, 1 active (256): 512*1 > 256*2 is false."""
    svc = service("wlc", ("A", 1), ("B", 2))
    set_conns(svc, A=1, B=2)
    assert picks(svc, 1) == ["B"]


def test_wlc_never_picks_an_idle_weight_zero_server() -> None:
    """List A, Z (Z added first, weight 0, no connections). Seed A (256); Z: 256*0 > 0*1
    is false, so the idle quiesced server cannot win the second loop."""
    svc = service("wlc", ("Z", 0), ("A", 1))
    set_conns(svc, A=1)
    assert picks(svc, 1) == ["A"]


def test_wlc_skips_an_overloaded_seed() -> None:
    """List C, B, A, all idle. C overloaded -> seed is B, and ties keep B."""
    svc = service("wlc", "A", "B", "C")
    overload(dest(svc, "C"))
    assert picks(svc, 1) == ["B"]


# -- sed -------------------------------------------------------------------------


def test_sed_counts_the_incoming_connection_and_ignores_inactive_ones() -> None:
    """List B, A. B: w=2, 1 active -> (1+1)/2; A: w=1, 0 active -> 1/1. Equal: seed B
    stays (2*1 > 1*2 is false). B's 1000 inactive connections do not matter."""
    svc = service("sed", ("A", 1), ("B", 2))
    set_conns(svc, A=0, B=(1, 1000))
    assert picks(svc, 1) == ["B"]
    set_conns(svc, B=(2, 0))  # 3*1 > 1*2 -> A
    assert picks(svc, 1) == ["A"]


def test_sed_prefers_the_heavy_server_where_wlc_would_not() -> None:
    """List B, A. A: w=1 idle; B: w=3, 1 active. wlc: B's 256*1 > 0*3 -> A.
    sed: B (2/3) vs A (1/1): 2*1 > 1*3 is false -> B."""
    wlc = service("wlc", ("A", 1), ("B", 3))
    set_conns(wlc, B=1)
    sed = service("sed", ("A", 1), ("B", 3))
    set_conns(sed, B=1)
    assert picks(wlc, 1) == ["A"]
    assert picks(sed, 1) == ["B"]


# -- nq --------------------------------------------------------------------------


def test_nq_sends_to_an_idle_server_even_if_a_faster_one_exists() -> None:
    """List B, A. B: w=10, 5 active -> 6/10; A: w=1, idle. sed would pick B;
    nq returns the first idle server it meets: A."""
    nq = service("nq", ("A", 1), ("B", 10))
    set_conns(nq, B=5)
    sed = service("sed", ("A", 1), ("B", 10))
    set_conns(sed, B=5)
    assert picks(nq, 1) == ["A"]
    assert picks(sed, 1) == ["B"]


def test_nq_idle_shortcut_takes_the_first_idle_in_list_order() -> None:
    """List C, B, A. C busy, B and A idle -> B (the first idle one)."""
    svc = service("nq", "A", "B", "C")
    set_conns(svc, C=1)
    assert picks(svc, 1) == ["B"]


def test_nq_without_idle_servers_behaves_like_sed() -> None:
    """List B, A. B: w=2, 1 active -> 2/2; A: w=1, 1 active -> 2/1 -> B."""
    svc = service("nq", ("A", 1), ("B", 2))
    set_conns(svc, A=1, B=1)
    assert picks(svc, 1) == ["B"]


def test_nq_skips_idle_but_quiesced_or_overloaded_servers() -> None:
    """List C, B, A. C idle but weight 0, B idle but overloaded (only inactive conns
    count for the threshold), A busy -> A."""
    svc = service("nq", "A", "B", ("C", 0))
    d = dest(svc, "B")
    d.upper_threshold = 2
    d.inactive_conns = 2
    d.update_overload_on_bind()
    set_conns(svc, A=3)
    assert picks(svc, 1) == ["A"]
