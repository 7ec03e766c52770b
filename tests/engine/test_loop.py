"""The event engine: time order, ties in scheduling order, cancellation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipvslab.engine import Engine


@given(st.lists(st.integers(min_value=0, max_value=1_000), max_size=200))
def test_events_run_in_time_order_and_ties_in_scheduling_order(times: list[int]) -> None:
    engine = Engine()
    seen: list[tuple[int, int]] = []
    for index, time in enumerate(times):
        engine.at(time, lambda i=index: seen.append((engine.now, i)))
    engine.run()
    assert seen == sorted(((t, i) for i, t in enumerate(times)), key=lambda p: (p[0], p[1]))


@given(
    st.lists(st.tuples(st.integers(0, 500), st.booleans()), max_size=100),
    st.integers(0, 600),
)
def test_cancelled_events_never_run_and_until_is_inclusive(
    plan: list[tuple[int, bool]], until: int
) -> None:
    engine = Engine()
    ran: list[int] = []
    for index, (time, cancel) in enumerate(plan):
        event = engine.at(time, ran.append, index)
        if cancel:
            event.cancel()
    engine.run(until=until)
    expected = [i for i, (t, c) in sorted(enumerate(plan), key=lambda p: (p[1][0], p[0]))]
    expected = [i for i in expected if not plan[i][1] and plan[i][0] <= until]
    assert ran == expected
    assert engine.now == until


def test_events_scheduled_while_running_join_the_queue() -> None:
    engine = Engine()
    order: list[str] = []

    def first() -> None:
        order.append("first")
        engine.after(0, order.append, "same-time")
        engine.after(5, order.append, "later")

    engine.at(10, first)
    engine.at(12, order.append, "between")
    engine.run()
    assert order == ["first", "same-time", "between", "later"]
    assert engine.now == 15


def test_the_past_is_refused() -> None:
    engine = Engine(start=100)
    with pytest.raises(ValueError, match="past"):
        engine.at(99, print)
    with pytest.raises(ValueError, match="negative"):
        engine.after(-1, print)


def test_stop_ends_the_run_after_the_current_event() -> None:
    engine = Engine()
    ran: list[int] = []
    engine.at(1, lambda: (ran.append(1), engine.stop()))
    engine.at(2, ran.append, 2)
    engine.run()
    assert ran == [1]
    engine.run()
    assert ran == [1, 2]


@given(
    st.lists(st.integers(0, 40), min_size=1, max_size=60),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 30), st.booleans()), max_size=40),
    st.lists(st.integers(0, 500), max_size=5),
)
def test_claiming_a_slot_runs_what_scheduling_it_would(
    gaps: list[int], others: list[tuple[int, int, bool]], slices: list[int]
) -> None:
    """An open-loop client's arrivals run back to back through claim(); the order of
    every callback, and the clock each sees, is what at() gives."""

    def simulate(use_claim: bool) -> list[tuple[int, str]]:
        engine = Engine()
        seen: list[tuple[int, str]] = []

        def follow_up(label: str) -> None:
            seen.append((engine.now, label))

        def other(index: int, delay: int) -> None:
            seen.append((engine.now, f"other {index}"))
            if delay:
                engine.after(delay, follow_up, f"follow-up {index}")

        for index, (time, delay, cancel) in enumerate(others):
            event = engine.at(time, other, index, delay)
            if cancel:
                event.cancel()
        steps = iter(gaps)

        def arrivals() -> None:
            while True:
                seen.append((engine.now, "arrival"))
                gap = next(steps, None)
                if gap is None:
                    return
                if not (use_claim and engine.claim(engine.now + gap)):
                    engine.at(engine.now + gap, arrivals)
                    return

        engine.at(0, arrivals)
        for until in sorted(slices):
            engine.run(until=until)
        engine.run()
        return seen

    assert simulate(use_claim=True) == simulate(use_claim=False)


def test_claim_outside_a_run_or_past_until_declines() -> None:
    engine = Engine()
    assert not engine.claim(5)  # not running: the caller must schedule
    claims: list[bool] = []
    engine.at(10, lambda: claims.extend([engine.claim(20), engine.claim(30)]))
    engine.at(25, lambda: None)
    engine.run(until=100)
    # 20: nothing queued before it; 30: the event at 25 comes first.
    assert claims == [True, False]
    claims.clear()
    engine.at(150, lambda: claims.append(engine.claim(250)))
    engine.run(until=200)
    assert claims == [False]  # beyond this run's until
