"""Independent runs on a pool of local processes, each result as soon as it is ready.

`ipvslab reproduce` and `ipvslab sweep` both hand this a function and its inputs.
Each run is a function of its input alone (a scenario and its seed), so what comes
back does not depend on the process it ran in or on the order runs finish in;
callers put results back in their own order by the index that comes with each.
"""

from __future__ import annotations

import multiprocessing
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
    cancels what has not started and does not wait for what is running.
    """
    if jobs <= 1 or len(items) <= 1:
        for index, item in enumerate(items):
            yield index, function(item)
        return
    # spawn, not fork: polars (imported by then) runs threads, and a forked child
    # of a threaded process can deadlock on a lock held by one of them.
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(items)), mp_context=context)
    finished = False
    try:
        pending: dict[Future[R], int] = {
            pool.submit(function, item): index for index, item in enumerate(items)
        }
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=pending.__getitem__):
                yield pending.pop(future), future.result()
        finished = True
    finally:
        pool.shutdown(wait=finished, cancel_futures=True)
