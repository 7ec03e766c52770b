"""The same sweep on a Dask cluster (two worker processes on this machine, started
here) gives the table the local process pool gives: each run is a function of its
scenario alone, whichever worker ran it and in whatever order they finished."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

from ipvslab.sweep import executors

from .support import kernels_by_rate, load, sweep_into

distributed = pytest.importorskip("distributed")

SWEEP = kernels_by_rate("5s", "[2, 6]", seeds=2)


def test_a_sweep_on_a_local_dask_cluster_equals_the_local_pool(tmp_path: Path) -> None:
    sweep = load(tmp_path, SWEEP)
    local = sweep_into(tmp_path, sweep, executors.local(2), "pool").table
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        worker_dashboard_address=None,
    ) as cluster:
        result = sweep_into(tmp_path, sweep, executors.dask(cluster.scheduler_address), "dask")
    assert result.ran == result.runs == 8
    assert_frame_equal(result.table, local)
    assert (tmp_path / "dask" / "results.csv").read_text() == (
        tmp_path / "pool" / "results.csv"
    ).read_text()


def test_an_unreachable_scheduler_is_a_clear_error_soon(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sweep = load(tmp_path, SWEEP)
    started = time.monotonic()
    with pytest.raises(executors.ExecutorError) as caught:
        sweep_into(tmp_path, sweep, executors.dask(f"tcp://127.0.0.1:{port}", 1.0))
    assert time.monotonic() - started < 30
    assert str(caught.value).startswith(
        f"--scheduler tcp://127.0.0.1:{port}: cannot reach the Dask scheduler"
    )


def test_a_scheduler_without_workers_is_a_clear_error_not_a_wait(tmp_path: Path) -> None:
    sweep = load(tmp_path, SWEEP)
    with (
        distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=None) as empty,
        pytest.raises(executors.ExecutorError, match="the Dask cluster has no workers"),
    ):
        sweep_into(tmp_path, sweep, executors.dask(empty.scheduler_address, 1.0))
