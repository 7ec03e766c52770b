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
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import TypeVar

STOP_GRACE_S = 2.0  # after Ctrl-C, how long a running worker may take to stop by itself
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
            yield index, _interrupt_aware(function, item)
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
            processes = dict(getattr(pool, "_processes", None) or {})
            for pid in processes:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGINT)
            # A worker that was between two runs when the signal came (ignoring it) may
            # have started another: after a grace period it is stopped, not waited for.
            wait([f for f in pending if not f.done()], timeout=STOP_GRACE_S)
            for process in processes.values():
                if process.is_alive():
                    process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)


def _ignore_interrupts() -> None:
    """A worker waiting for work ignores Ctrl-C (the pool shuts it down)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _interruptible(function: Callable[[T], R], item: T) -> R:
    """``function(item)``, which Ctrl-C interrupts (KeyboardInterrupt, as in the caller)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return _interrupt_aware(function, item)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _interrupt_aware(function: Callable[[T], R], item: T) -> R:
    """``function(item)``; a Ctrl-C that lands inside a library which turns the
    KeyboardInterrupt into another error (polars, converting a value, raises TypeError)
    still comes out as KeyboardInterrupt, not as that error's traceback."""
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # e.g. started with `&`
    if ignored or threading.current_thread() is not threading.main_thread():
        return function(item)
    seen: list[int] = []

    def on_interrupt(signum: int, frame: object) -> None:
        seen.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        return function(item)
    except Exception:
        if seen:
            raise KeyboardInterrupt from None
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
