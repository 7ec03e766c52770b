"""A deterministic discrete-event loop.

Time is an integer (the cluster layer uses microseconds). Events are plain
callbacks kept in a binary heap ordered by (time, sequence number): two events
at the same time run in the order they were scheduled, so a run is a function
of what was scheduled and nothing else. Cancelled events stay in the heap and
are skipped when they come up (lazy deletion), which keeps cancel O(1).

Why a heap and not a calendar queue: the queue here holds only what the cluster
layer has in flight (arrivals, connections open right now, periodic loops), a
few thousand events even at 30,000 connections/s; the millions of IPVS timers
live in the kernel twin's own timer wheel. `benchmarks/bench_engine.py` prints
the cost per event with a million events pending.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

# run() without ``until``: no end (larger than any time a run reaches).
_NO_END = 1 << 62


class Event:
    """A scheduled callback. ``cancel()`` keeps it from running."""

    __slots__ = ("args", "callback", "cancelled", "time")

    def __init__(self, time: int, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.time = time
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __repr__(self) -> str:
        name = getattr(self.callback, "__qualname__", repr(self.callback))
        state = " cancelled" if self.cancelled else ""
        return f"Event(t={self.time} {name}{state})"


class Engine:
    """Owns the clock and the event queue; knows nothing of what the events do."""

    __slots__ = ("_heap", "_running", "_seq", "_stopped", "_until", "now", "processed")

    def __init__(self, start: int = 0) -> None:
        self.now = start
        self._heap: list[tuple[int, int, Event]] = []
        self._seq = 0
        self._stopped = False
        self._running = False
        self._until = 0
        self.processed = 0

    def at(self, time: int, callback: Callable[..., Any], *args: Any) -> Event:
        """Run ``callback(*args)`` at ``time`` (not before now)."""
        if time < self.now:
            raise ValueError(f"cannot schedule in the past: {time} < now {self.now}")
        event = Event(time, callback, args)
        self._seq += 1
        heapq.heappush(self._heap, (time, self._seq, event))
        return event

    def after(self, delay: int, callback: Callable[..., Any], *args: Any) -> Event:
        """Run ``callback(*args)`` ``delay`` time units from now."""
        if delay < 0:
            raise ValueError(f"negative delay: {delay}")
        return self.at(self.now + delay, callback, *args)

    @property
    def pending(self) -> int:
        """Events in the queue (cancelled ones included until they come up)."""
        return len(self._heap)

    def peek(self) -> int | None:
        """The time of the next live event, or None."""
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def claim(self, time: int) -> bool:
        """May a callback due at ``time`` run at once instead of through at()?

        True, inside run(), when it would be the very next event to run: ``time``
        is within the run's ``until`` and every live event queued is due later (one
        due at the same time was scheduled first, so it would run first). The
        clock then moves to ``time`` and the caller runs the callback itself; the
        order of everything is what at() would have given, without the trip
        through the heap (an open-loop client's arrivals, one after the other).
        """
        if time < self.now:
            raise ValueError(f"cannot schedule in the past: {time} < now {self.now}")
        if not self._running or self._stopped or time > self._until:
            return False
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        if heap and heap[0][0] <= time:
            return False
        self.now = time
        self.processed += 1
        return True

    def stop(self) -> None:
        """End run() after the event being processed."""
        self._stopped = True

    def run(self, until: int | None = None) -> None:
        """Process events in (time, scheduling order) up to and including ``until``.

        The clock ends at ``until`` when given (even if the queue ran dry first),
        otherwise at the last event's time.
        """
        heap = self._heap
        pop = heapq.heappop
        self._stopped = False
        self._running = True
        self._until = until if until is not None else _NO_END
        processed = 0
        try:
            while heap:
                time = heap[0][0]
                if until is not None and time > until:
                    break
                event = pop(heap)[2]
                if event.cancelled:
                    continue
                self.now = time
                processed += 1
                event.callback(*event.args)
                if self._stopped:
                    return
            if until is not None and until > self.now:
                self.now = until
        finally:
            self._running = False
            self.processed += processed
