"""The pipeline's worker pool (pre-started before the extraction): the same output with one
process or several, and the parent's thread settings left as they were."""

from __future__ import annotations

import os

import numpy as np

from blechrs.io import paths, unit_store, work_files
from blechrs.pipeline import executors
from blechrs import pipeline
from support.sorting_reference import init_folder, simulated_folder


def _outputs(d, electrodes):
    out = {}
    for e in electrodes:
        work = work_files.load_electrode(paths.electrode_path(d, e))
        out[e] = {f"labels_{n}": sol.labels.tobytes() for n, sol in work.solutions.items()}
        out[e].update(auto_labels=work.auto_labels().tobytes(), features=work.features.tobytes())
    units = [(u.electrode, u.times.tobytes(), u.waveforms.tobytes()) for u in unit_store.read_units(paths.h5_path(d))]
    return out, units


def test_run_is_identical_with_one_or_two_workers(tmp_path):
    d = tmp_path / "rec"
    d.mkdir()
    simulated_folder(d, seed=5, n_channels=4, duration_s=6.0)
    init_folder(d, max_clusters=4, num_restarts=1, max_autosort_clusters=5, cluster_count_threshold=10)
    electrodes = pipeline.sorted_electrodes(d)
    before = {v: os.environ.get(v) for v in executors.THREAD_VARS}
    pipeline.run(d, jobs=2, plots=False, force=True)
    assert {v: os.environ.get(v) for v in executors.THREAD_VARS} == before
    two = _outputs(d, electrodes)
    pipeline.run(d, jobs=1, plots=False, force=True)
    one = _outputs(d, electrodes)
    assert one == two
    work, units = one
    assert units and any("labels_2" in labels for labels in work.values())  # something was sorted


def test_start_pool_runs_jobs_in_other_processes():
    pool = executors.start_pool(2)
    try:
        pids = {pool.submit(os.getpid).result() for _ in range(4)}
    finally:
        pool.shutdown()
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert executors.start_pool(1) is None


def test_every_worker_starts_with_ctrl_c_held_back():
    """A Ctrl-C while a worker's interpreter starts prints that worker's traceback over the
    terminal: every worker (and the resource tracker) must be spawned with SIGINT blocked. Run in
    a fresh interpreter, where multiprocessing's resource tracker is not running yet (starting it
    unblocks SIGINT in the spawning thread); the mask is read at each spawn."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import signal
        from multiprocessing import util
        from blechrs.pipeline import executors
        masks, spawn = [], util.spawnv_passfds
        def recording(path, args, passfds):
            masks.append(signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []))
            return spawn(path, args, passfds)
        util.spawnv_passfds = recording
        pool = executors.start_pool(3)
        pool.shutdown()
        print(masks, signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []))
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    masks, after = out.stdout.strip().rsplit(" ", 1)
    spawned = eval(masks)
    assert len(spawned) >= 3 and all(spawned), spawned  # 3 workers (+ the tracker), each SIGINT-blocked
    assert after == "False"  # and the parent's mask is back as it was


def _timed(seconds):
    import time
    start = time.monotonic()
    time.sleep(seconds)
    return start, time.monotonic()


def test_jobs_run_side_by_side_only_while_their_memory_fits():
    """map_jobs with a memory plan: no two jobs whose memory sums past the budget ever overlap,
    a job too large to share runs alone, smaller ones go ahead of a larger one that does not fit,
    and the results come back in input order."""
    cost = [6.0, 5.0, 1.0, 1.0, 4.0, 9.0]
    budget = 7.0
    pool = executors.start_pool(2)
    try:
        # without a plan both workers run at once (and both are warm after: the pool is first in, first out)
        free = executors.map_jobs(_timed, [(0.6,)] * 2, 2, "test", None, pool=pool)
        spans = executors.map_jobs(_timed, [(0.3,)] * len(cost), 2, "test", None, pool=pool, memory=(cost, budget))
    finally:
        pool.shutdown()
    overlapping = [(i, j) for i in range(len(cost)) for j in range(i + 1, len(cost))
                   if spans[i][0] < spans[j][1] and spans[j][0] < spans[i][1]]
    assert overlapping, "some jobs fit together and should have shared the pool"
    assert all(cost[i] + cost[j] <= budget for i, j in overlapping), overlapping
    assert all(5 not in pair for pair in overlapping)  # 9 > budget: alone
    assert spans[2][0] < spans[1][0]  # job 2 (1) went ahead of job 1 (5), which did not fit beside job 0 (6)
    assert free[0][0] < free[1][1] and free[1][0] < free[0][1]


def test_memory_plan_leaves_out_this_process_and_the_idle_workers():
    from blechrs.pipeline import clustering

    cost, free = clustering.memory_plan([1024, 2048], 2, 1024.0)
    assert cost == [1.0, 2.0]
    rss = executors.own_memory_mb()
    assert rss > 10
    assert abs(free - (1024.0 - rss - 2 * clustering.WORKER_MB - clustering.TRACKER_MB)) < 50  # rss moves a little
    # an electrode beyond max_refine_events costs less per event past it (refined on a sample)
    cost, _ = clustering.memory_plan([1024, 4096], 2, 1024.0, max_refine_events=2048)
    assert cost[0] == 1.0
    assert cost[1] == 2048 * clustering.CLUSTER_MB_PER_EVENT + 2048 * clustering.LONG_MB_PER_EVENT
