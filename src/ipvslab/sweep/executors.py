"""Where a sweep's runs run: local processes (the default) or a Dask cluster.

Both take the scenarios still to run and yield ``(index, row)`` as each finishes.
Each row is ``row.run_row(scenario)``, a function of the scenario alone, so the
table does not depend on the executor, the number of processes or the order in
which runs finished. `distributed` is imported only when a scheduler is named.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ipvslab import __version__
from ipvslab.parallel import in_processes
from ipvslab.scenario.model import Scenario

from .row import Row, run_row

Executor = Callable[[Sequence[Scenario], Sequence[str]], Iterator[tuple[int, Row]]]
"""Runs scenarios (with their hashes, for naming the tasks); yields (index, row)."""


class ExecutorError(Exception):
    """The executor cannot start (a scheduler that cannot be reached, ...)."""


def local(jobs: int) -> Executor:
    """Up to ``jobs`` local processes (1: in this process)."""

    def execute(scenarios: Sequence[Scenario], hashes: Sequence[str]) -> Iterator[tuple[int, Row]]:
        return in_processes(run_row, scenarios, jobs)

    return execute


def dask(address: str, timeout_s: float = 10.0) -> Executor:
    """The workers of the Dask scheduler at ``address`` (``tcp://HOST:PORT``)."""

    def execute(scenarios: Sequence[Scenario], hashes: Sequence[str]) -> Iterator[tuple[int, Row]]:
        client = connect(address, timeout_s)
        futures: list[Any] = []
        finished = False
        try:
            with contextlib.suppress(TimeoutError):
                client.wait_for_workers(1, timeout=timeout_s)
            check_workers(client, address)
            # Named by scenario hash: the same run asked twice is one task.
            futures = client.map(
                run_row, list(scenarios), key=[f"ipvslab-sweep-{h}" for h in hashes], pure=True
            )
            index = {future.key: number for number, future in enumerate(futures)}
            from distributed import as_completed

            for future in as_completed(futures, loop=client.loop):  # type: ignore[no-untyped-call]
                yield index[future.key], future.result()
            finished = True
        finally:
            if not finished and futures:
                client.cancel(futures)
            client.close()

    return execute


def connect(address: str, timeout_s: float) -> Any:
    """A client of the scheduler at ``address``, or ExecutorError saying why not."""
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - a dependency of ipvslab
        raise ExecutorError(
            "--scheduler needs the `distributed` package (pip install distributed)"
        ) from None
    try:
        return Client(address, timeout=timeout_s, set_as_default=False)  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError, ValueError) as err:
        raise ExecutorError(
            f"--scheduler {address}: cannot reach the Dask scheduler"
            f" ({str(err).splitlines()[0] if str(err) else type(err).__name__})"
        ) from None


def check_workers(client: Any, address: str) -> None:
    """Every worker runs this ipvslab version (a row must not depend on where it ran)."""
    try:
        versions = client.run(_worker_version)
    except Exception as err:  # a worker without ipvslab cannot unpickle the function
        raise ExecutorError(
            f"--scheduler {address}: the workers cannot run ipvslab"
            f" ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''});"
            f" install ipvslab {__version__} on every worker"
        ) from None
    if not versions:
        raise ExecutorError(f"--scheduler {address}: the Dask cluster has no workers")
    other = {worker: v for worker, v in versions.items() if v != __version__}
    if other:
        worker, version = sorted(other.items())[0]
        raise ExecutorError(
            f"--scheduler {address}: worker {worker} runs ipvslab {version}, this is"
            f" {__version__}; install the same version on every worker"
        )


def _worker_version() -> str:
    return __version__
