"""The clustering stage: features, every clustering solution and auto-sort's units of each
electrode, in worker processes, saved back into the electrode's work file."""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from blechrs.errors import PipelineError
from blechrs.io import paths, work_files
from blechrs.mapped import release
from blechrs.params import SortParams
from blechrs.pipeline.executors import Progress, RemoteExecutor, map_jobs, n_workers, own_memory_mb
from blechrs.pipeline.folder import load_params, sorted_electrodes
from blechrs.pipeline.pictures import plot_solutions, plot_thumbnail_without_units
from blechrs.pipeline.report import RunReport, electrode_summary
from blechrs.pipeline.lock import holds_folder_lock
from blechrs.pipeline.resume import recording_identity, work_state
from blechrs.schemes.sort_electrode import autosort_work, cluster_work


#: What clustering an electrode adds to its worker, per event (MB): measured 0.87 kB at 199 k events
#: (the largest wire of 32 ch x 1 h, pictures included: 283 MB peak over 110 MB between electrodes).
CLUSTER_MB_PER_EVENT = 1.0 / 1024
#: ... and per event beyond ``max_refine_events`` (refined on a sample, waveforms memory-mapped:
#: times, features and solution labels remain), measured 0.17 kB (benchmarks/long_electrode.py).
LONG_MB_PER_EVENT = 0.25 / 1024
#: A worker process between electrodes (measured 103-136 MB when it still loaded matplotlib), and the
#: multiprocessing resource tracker beside the pool.
WORKER_MB = 150.0
TRACKER_MB = 15.0


def memory_plan(n_events: list[int], workers: int, memory_mb: float, max_refine_events: int | None = None
                ) -> tuple[list[float], float]:
    """(each electrode's clustering memory, what they may use together) for ``map_jobs``: the
    run's ``memory_mb`` less this process, the workers between electrodes and the tracker."""
    free = memory_mb - own_memory_mb() - workers * WORKER_MB - TRACKER_MB
    cap = max(n_events, default=0) if max_refine_events is None else int(max_refine_events)
    return [min(n, cap) * CLUSTER_MB_PER_EVENT + max(n - cap, 0) * LONG_MB_PER_EVENT for n in n_events], free


def _cluster_job(directory: str, electrode: int, params: SortParams, only_autosort: bool,
                 plots: bool = False) -> dict:
    path = paths.electrode_path(directory, electrode)
    # An electrode longer than the refinement holds keeps its waveforms in its work file (read a
    # chunk at a time): the worker's memory stays bounded however long the session.
    work = work_files.load_electrode(path, map_waveforms=params.autosort.max_refine_events)
    work = autosort_work(work, params) if only_autosort else cluster_work(work, params)
    work_files.save_electrode(path, work)
    if plots and not only_autosort:
        # Solution pictures while the electrode is in memory, in the worker that clustered it
        # (and its thumbnail when auto-sort gave it no unit: storing auto-sort adds none there).
        plot_solutions(directory, work, params)
        if not work.units:
            plot_thumbnail_without_units(directory, work, params)
    release(work.waveforms)
    return electrode_summary(work)


@holds_folder_lock
def cluster(directory: str | os.PathLike, params: SortParams | None = None, force: bool = False,
            jobs: int | None = None, progress: Progress | None = None, report: RunReport | None = None,
            only_autosort: bool = False, plots: bool = False,
            pool: ProcessPoolExecutor | RemoteExecutor | None = None) -> RunReport:
    """Features + solutions + auto-sort choices for every extracted electrode (process pool:
    ``pool`` if given, see ``start_pool``; or a cluster's workers)."""
    directory = Path(directory)
    params = params or load_params(directory)
    report = report or RunReport(directory)
    t0 = time.perf_counter()
    wanted = sorted_electrodes(directory)
    missing = [e for e in wanted if not paths.electrode_path(directory, e).exists()]
    if missing:
        raise PipelineError(f"electrode {missing[0]} has not been extracted; run `blechrs extract {directory}`")
    identity = recording_identity(directory)
    states = {e: work_state(directory, e, params, identity) for e in wanted}
    stale = [e for e, s in states.items() if s == "none"]
    if stale:
        raise PipelineError(f"electrode {stale[0]} was extracted with other parameters or from other recording "
                            f"files; run `blechrs extract {directory}`")
    # A cluster's workers get an absolute path: theirs is another working directory.
    where = str(directory.absolute() if isinstance(pool, RemoteExecutor) else directory)
    if only_autosort:
        not_clustered = [e for e, st in states.items() if st == "extracted"]
        if not_clustered:
            raise PipelineError(f"electrode {not_clustered[0]} has not been clustered; run `blechrs cluster {directory}`")
        todo = [(where, e, params, True, False) for e in wanted]
    else:
        todo = [(where, e, params, states[e] == "autosort-stale" and not force, plots)
                for e in wanted if force or states[e] != "clustered"]
    # Largest electrodes first: the pool then finishes together (longest-processing-time first).
    size = {e: work_files.read_meta(paths.electrode_path(directory, e)).n_events for e in wanted}
    todo.sort(key=lambda t: (-size[t[1]], t[1]))
    report.clustered_before = sorted(set(wanted) - {t[1] for t in todo})
    workers = n_workers(jobs)
    memory = memory_plan([size[t[1]] for t in todo], workers, params.run.memory_mb,
                         params.autosort.max_refine_events)
    map_jobs(_cluster_job, todo, workers, "cluster", progress, pool=pool, memory=memory)
    report.electrodes = [electrode_summary(work_files.read_meta(paths.electrode_path(directory, e))) for e in wanted]
    report.timings["cluster"] = time.perf_counter() - t0
    return report
