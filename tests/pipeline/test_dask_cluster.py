"""The per-electrode work on a Dask cluster (``--scheduler``): two worker processes give the same
outputs as the local run, byte for byte, and every task runs with one engine and one BLAS thread."""

from __future__ import annotations

import csv
import os
import time

import pytest
from distributed import Client, LocalCluster, get_task_stream

from blechrs import pipeline
from blechrs.errors import PipelineError
from blechrs.io import paths
from blechrs.pipeline import dask_cluster
from support.outputs_reference import store_contents, work_contents
from support.sorting_reference import init_folder, simulated_folder


@pytest.fixture(scope="module")
def two_workers():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    yield dask_cluster.DaskExecutor(client, cluster)
    client.close()
    cluster.close()


def _two_car_groups(d):
    """Electrodes 0-1 in group A, 2-3 in group B: two extraction tasks."""
    path = paths.layout_path(d)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["CAR_group"] = "A" if int(r["electrode_ind"]) < 2 else "B"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_dask_run_is_byte_identical_to_the_local_run(tmp_path, two_workers):
    d = tmp_path / "rec"
    d.mkdir()
    simulated_folder(d, seed=5, n_channels=4, duration_s=6.0)
    init_folder(d, max_clusters=4, num_restarts=1, max_autosort_clusters=5, cluster_count_threshold=10)
    _two_car_groups(d)
    pipeline.run(d, jobs=2, plots=False)
    local_store, local_work = store_contents(paths.h5_path(d)), work_contents(paths.work_dir(d))

    seen = []
    with get_task_stream(two_workers.client) as stream:
        report = pipeline.run(d, jobs=2, plots=False, force=True, executor=two_workers,
                              progress=lambda stage, done, total: seen.append((stage, done, total)))
    assert not report.skipped  # redone, not resumed
    dask_store, dask_work = store_contents(paths.h5_path(d)), work_contents(paths.work_dir(d))

    assert dask_store.keys() == local_store.keys()
    assert [k for k in local_store if local_store[k] != dask_store[k]] == []
    assert dask_work.keys() == local_work.keys() and len(local_work) > 4 * 5
    assert [k for k in local_work if local_work[k] != dask_work[k]] == []
    assert report.units and any(k.startswith("sorted_units/") for k in dask_store)
    # The work ran on the cluster: one extraction task per CAR group, one clustering task per
    # electrode, spread over both workers.
    tasks = [t for t in stream.data if t["key"].startswith("one_thread_task")]
    assert len(tasks) == 2 + 4
    assert len({t["worker"] for t in tasks}) == 2
    assert ("extract", 2, 2) in seen and ("cluster", 4, 4) in seen


def _thread_limits():
    from threadpoolctl import threadpool_info
    return os.environ["BLECHRS_THREADS"], max((p["num_threads"] for p in threadpool_info()), default=1), os.getpid()


def test_tasks_run_with_one_engine_and_one_blas_thread(two_workers):
    results = two_workers.map_tasks(_thread_limits, [()] * 4, "probe", None)
    assert {(engine, blas) for engine, blas, _ in results} == {("1", 1)}
    assert os.getpid() not in {pid for *_, pid in results}


def _fails_on(electrode: int, bad: int) -> int:
    if electrode == bad:
        raise PipelineError(f"electrode {electrode}: broken")
    time.sleep(0.5)
    return electrode


def test_a_failing_task_raises_its_own_error_and_cancels_the_rest(two_workers):
    with pytest.raises(PipelineError, match="electrode 0: broken"):
        two_workers.map_tasks(_fails_on, [(e, 0) for e in range(8)], "cluster", None)
    deadline = time.time() + 10
    while any(two_workers.client.processing().values()) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(two_workers.client.processing().values())
    assert two_workers.map_tasks(_fails_on, [(e, -1) for e in range(3)], "cluster", None) == [0, 1, 2]
