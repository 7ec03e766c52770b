"""kube-proxy's sync runner (async.BoundedFrequencyRunner), as far as timing goes.

A change asks for a sync; it runs at once unless the last one was less than
``min_period`` ago, then as soon as that allows; and a sync runs at least every
``period``. (The runner's burst of 2 is not modelled: changes closer than
``min_period`` always wait.)
"""

from __future__ import annotations

from collections.abc import Callable

from ipvslab.engine import Engine


class SyncRunner:
    __slots__ = ("_engine", "_last", "_min_period", "_pending", "_period", "_sync")

    def __init__(
        self, engine: Engine, sync: Callable[[], None], min_period: int, period: int
    ) -> None:
        self._engine = engine
        self._sync = sync
        self._min_period = min_period
        self._period = period
        self._last: int | None = None
        self._pending = False

    def start(self) -> None:
        self._run()
        self._engine.after(self._period, self._periodic)

    def request(self) -> None:
        """syncRunner.Run(): a Service or EndpointSlice changed."""
        if self._pending:
            return
        now = self._engine.now
        earliest = now if self._last is None else self._last + self._min_period
        self._pending = True
        self._engine.at(max(now, earliest), self._run_pending)

    def _run_pending(self) -> None:
        self._pending = False
        self._run()

    def _periodic(self) -> None:
        self._run()
        self._engine.after(self._period, self._periodic)

    def _run(self) -> None:
        self._last = self._engine.now
        self._sync()
