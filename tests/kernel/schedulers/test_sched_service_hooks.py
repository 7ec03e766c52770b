"""What VirtualService.add_dest / edit_dest / del_dest do before calling the hooks
(__ip_vs_update_dest(), ip_vs_edit_dest(), __ip_vs_unlink_dest())."""

from __future__ import annotations

import pytest
from sched_support import dest, order, server, service


def test_new_servers_go_to_the_head_of_the_list() -> None:
    svc = service("rr", "A", "B", "C")
    assert order(svc) == ["C", "B", "A"]


def test_last_weight_follows_the_latest_non_zero_weight() -> None:
    svc = service("mh", ("A", 5))
    a = dest(svc, "A")
    assert (a.weight, a.last_weight) == (5, 5)
    svc.edit_dest(a, weight=0)
    assert (a.weight, a.last_weight) == (0, 5)
    svc.edit_dest(a, upper_threshold=10)  # an edit that leaves weight 0
    assert (a.weight, a.last_weight) == (0, 5)
    svc.edit_dest(a, weight=3)
    assert (a.weight, a.last_weight) == (3, 3)


def test_re_adding_a_server_resets_last_weight_even_to_zero() -> None:
    """On add the kernel sets last_weight = weight unconditionally."""
    svc = service("mh", ("A", 5))
    a = dest(svc, "A")
    svc.edit_dest(a, weight=0)
    svc.del_dest(a)
    assert not a.available
    svc.add_dest(a)
    assert (a.weight, a.last_weight, a.available) == (0, 0, True)


def test_raising_or_removing_the_upper_threshold_clears_overload() -> None:
    svc = service("rr", "A")
    a = dest(svc, "A")
    svc.edit_dest(a, upper_threshold=2)
    a.active_conns = 2
    a.update_overload_on_bind()
    assert a.overloaded
    svc.edit_dest(a, weight=4)  # same threshold: OVERLOAD stays
    assert a.overloaded
    svc.edit_dest(a, upper_threshold=3)  # raised: cleared
    assert not a.overloaded
    a.update_overload_on_bind()  # 2 < 3: not overloaded again
    assert not a.overloaded
    a.active_conns = 3
    a.update_overload_on_bind()
    assert a.overloaded
    svc.edit_dest(a, upper_threshold=0)  # removed: cleared
    assert not a.overloaded


def test_lowering_the_upper_threshold_keeps_overload() -> None:
    svc = service("rr", "A")
    a = dest(svc, "A")
    svc.edit_dest(a, upper_threshold=5)
    a.active_conns = 5
    a.update_overload_on_bind()
    svc.edit_dest(a, upper_threshold=4)
    assert a.overloaded


def test_thresholds_and_weights_out_of_range_are_refused() -> None:
    """ip_vs_add_dest()/ip_vs_edit_dest(): -ERANGE for weight < 0 or lower > upper."""
    svc = service("rr", "A")
    a = dest(svc, "A")
    with pytest.raises(ValueError):
        svc.edit_dest(a, weight=-1)
    with pytest.raises(ValueError):
        svc.edit_dest(a, lower_threshold=3)  # upper is 0
    with pytest.raises(ValueError):
        svc.add_dest(server("B", lower_threshold=5, upper_threshold=4))
    svc.edit_dest(a, upper_threshold=5, lower_threshold=3)
    assert (a.upper_threshold, a.lower_threshold) == (5, 3)


def test_deleting_a_server_clears_available_and_unlinks_it() -> None:
    svc = service("rr", "A", "B")
    b = dest(svc, "B")
    svc.del_dest(b)
    assert not b.available
    assert order(svc) == ["A"]
    with pytest.raises(ValueError):
        svc.del_dest(b)


def test_a_revived_server_keeps_overload_unless_it_has_no_threshold() -> None:
    """A server taken back from the trash keeps its thresholds, so the kernel's
    "new upper > old upper" test is false and OVERLOAD stays; a fresh one is clear."""
    svc = service("rr", "A")
    a = dest(svc, "A")
    svc.edit_dest(a, upper_threshold=2)
    a.active_conns = 2
    a.update_overload_on_bind()
    svc.del_dest(a)
    svc.add_dest(a)
    assert a.overloaded
    fresh = server("B", upper_threshold=2)
    fresh.overloaded = True
    svc.add_dest(fresh)
    assert not fresh.overloaded
