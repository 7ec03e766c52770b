"""Random add / edit / delete / load sequences against every scheduler.

Invariant (holds for all 11 kernel schedulers, checked against their source): a
pick is None or a server that is in svc.destinations, has weight > 0 and is not
OVERLOADed. The only kernel exception found, mh keeping a stale table when a
service has more servers than table slots, cannot happen with the handful of
servers used here.

Liveness: rr, wrr, lc, wlc, sed, nq and fo always find a server when one is
eligible. ovf can refuse (active > weight), and dh/sh/mh can refuse (the hashed
bucket's server is not eligible).
"""

from __future__ import annotations

from collections import Counter
from math import gcd

from hypothesis import given, settings
from hypothesis import strategies as st
from sched_support import packet, server, service

from ipvslab.kernel.schedulers import BUILTIN_SCHEDULERS
from ipvslab.kernel.service import ServiceFlags

LETTERS = "ABCDEF"
ALWAYS_FINDS_ONE = {"rr", "wrr", "lc", "wlc", "sed", "nq", "fo"}

op = st.one_of(
    st.tuples(st.just("add"), st.sampled_from(LETTERS), st.integers(0, 5)),
    st.tuples(st.just("weight"), st.sampled_from(LETTERS), st.integers(0, 5)),
    st.tuples(st.just("threshold"), st.sampled_from(LETTERS), st.integers(0, 4)),
    st.tuples(st.just("delete"), st.sampled_from(LETTERS), st.just(0)),
    st.tuples(st.just("connect"), st.sampled_from(LETTERS), st.integers(0, 2)),
    st.tuples(st.just("disconnect"), st.sampled_from(LETTERS), st.just(0)),
    st.tuples(st.just("schedule"), st.sampled_from(LETTERS), st.integers(0, 255)),
)


def run(scheduler: str, flags: ServiceFlags, ops: list[tuple[str, str, int]]) -> None:
    svc = service(scheduler, flags=flags)
    servers = {letter: server(letter) for letter in LETTERS}
    for kind, letter, arg in ops:
        d = servers[letter]
        linked = d in svc.destinations
        if kind == "add" and not linked:
            d.weight = arg
            svc.add_dest(d)
        elif kind == "weight" and linked:
            svc.edit_dest(d, weight=arg)
        elif kind == "threshold" and linked:
            svc.edit_dest(d, upper_threshold=arg, lower_threshold=0)
        elif kind == "delete" and linked:
            svc.del_dest(d)
        elif kind == "connect":
            d.active_conns += 1
            d.inactive_conns += arg
            d.update_overload_on_bind()
        elif kind == "disconnect" and d.active_conns:
            d.active_conns -= 1
            d.update_overload_on_unbind()
        elif kind == "schedule":
            got = svc.schedule(packet(f"192.0.2.{arg}", port=1000 + arg))
            eligible = [x for x in svc.destinations if x.weight > 0 and not x.overloaded]
            if got is not None:
                assert any(got is x for x in svc.destinations)
                assert got.weight > 0
                assert not got.overloaded
            elif scheduler in ALWAYS_FINDS_ONE:
                assert not eligible


@settings(max_examples=200, deadline=None)
@given(
    scheduler=st.sampled_from(BUILTIN_SCHEDULERS),
    flags=st.sampled_from([ServiceFlags.NONE, ServiceFlags.SCHED1, ServiceFlags.SCHED1 | 0x10]),
    ops=st.lists(op, max_size=60),
)
def test_no_scheduler_ever_picks_a_quiesced_overloaded_or_removed_server(
    scheduler: str, flags: ServiceFlags, ops: list[tuple[str, str, int]]
) -> None:
    run(scheduler, ServiceFlags(flags), ops)


@settings(max_examples=40, deadline=None)
@given(weights=st.lists(st.integers(1, 6), min_size=1, max_size=5))
def test_wrr_gives_each_server_its_weight_share_per_cycle(weights: list[int]) -> None:
    """Once past the first (possibly partial) cycle, any window of one cycle holds
    each server exactly weight/di times, when weights are multiples of di."""
    letters = LETTERS[: len(weights)]
    svc = service("wrr", *zip(letters, weights, strict=True))
    di = 0
    for w in weights:
        di = gcd(di, w)
    cycle = sum(w // di for w in weights)
    for _ in range(cycle):
        svc.schedule(packet())
    window = Counter(svc.schedule(packet()) for _ in range(cycle))
    by_server = {d: d.weight // di for d in svc.destinations}
    assert window == by_server


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 6), quiet=st.sets(st.integers(0, 5)))
def test_rr_serves_every_eligible_server_once_per_round(n: int, quiet: set[int]) -> None:
    svc = service("rr", *LETTERS[:n])
    for i in quiet:
        if i < n:
            svc.edit_dest(svc.destinations[i], weight=0)
    eligible = [d for d in svc.destinations if d.weight > 0]
    got = [svc.schedule(packet()) for _ in range(max(len(eligible), 1) * 3)]
    if not eligible:
        assert set(got) == {None}
    else:
        assert got == eligible * 3
