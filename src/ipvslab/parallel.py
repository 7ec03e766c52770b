"""Independent runs on a pool of local processes, each result as soon as it is ready.

`ipvslab reproduce` and `ipvslab sweep` both hand this a function and its inputs.
Each run is a function of its input alone (a scenario and its seed), so what comes
back does not depend on the process it ran in or on the order runs finish in;
callers put results back in their own order by the index that comes with each.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def in_processes(
    function: Callable[[T], R], items: Sequence[T], jobs: int
) -> Iterator[tuple[int, R]]:
    """``(index, function(items[index]))`` for every item, in the order they finish.

    ``jobs <= 1`` runs them here, one after the other. Otherwise at most ``jobs``
    spawned processes run them. Leaving the loop early (an exception, Ctrl-C)
    cancels what has not started and interrupts what is running (as Ctrl-C would:
    a process waiting for work ignores it, one running a function stops it).
    """
    if jobs <= 1 or len(items) <= 1:
        for index, item in enumerate(items):
            yield index, function(item)
        return
    # spawn, not fork: polars (imported by then) runs threads, and a forked child
    # of a threaded process can deadlock on a lock held by one of them.
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        max_workers=min(jobs, len(items)), mp_context=context, initializer=_ignore_interrupts
    )
    finished = False
    try:
        pending: dict[Future[R], int] = {
            pool.submit(_interruptible, function, item): index for index, item in enumerate(items)
        }
        while pending:
            # In slices: a Ctrl-C reaches this process between them.
            done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=pending.__getitem__):
                yield pending.pop(future), future.result()
        finished = True
    finally:
        if not finished:
            # Cancel what has not started, then stop what runs: the processes of a
            # terminal's Ctrl-C already have the signal, a `kill -INT` of this one not.
            for future in pending:
                future.cancel()
            for pid in list(getattr(pool, "_processes", None) or {}):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGINT)
        pool.shutdown(wait=True, cancel_futures=True)


def _ignore_interrupts() -> None:
    """A worker waiting for work ignores Ctrl-C (the pool shuts it down)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _interruptible(function: Callable[[T], R], item: T) -> R:
    """``function(item)``, which Ctrl-C interrupts (KeyboardInterrupt, as in the caller)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return function(item)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
