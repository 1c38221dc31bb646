"""``blechrs run``: the whole chain on a recording folder, and the steps after the unit store."""

from __future__ import annotations

import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from blechrs.errors import BlechrsError, PipelineError
from blechrs.io import paths
from blechrs.io.recording import open_recording
from blechrs.params import SortParams
from blechrs.pipeline.clustering import cluster
from blechrs.pipeline.executors import Progress, RemoteExecutor, n_workers, spawn_workers, start_pool
from blechrs.pipeline.extraction import extract
from blechrs.pipeline.folder import init, load_params, needs_init, sorted_electrodes
from blechrs.pipeline.init_recording import raw_qa_pictures
from blechrs.pipeline.lock import holds_folder_lock
from blechrs.pipeline.pictures import plot_recording, stale_solution_pictures, write_index
from blechrs.pipeline.report import RunReport
from blechrs.pipeline.store_units import save_autosort
from blechrs.pipeline.trial_arrays import make_arrays
from blechrs.pipeline.unit_qa import unit_qa


@holds_folder_lock
def run(directory: str | os.PathLike, params: SortParams | None = None, force: bool = False, jobs: int | None = None,
        plots: bool = True, progress: Progress | None = None, auto_car: bool = False,
        executor: RemoteExecutor | None = None) -> RunReport:
    """The whole chain: init (if needed) -> extract -> cluster -> auto-sort -> store -> plots.
    The extraction and clustering run in a local process pool, or on ``executor``'s cluster (left
    open: a batch shares it)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise PipelineError(f"{directory}: not a directory")
    report = RunReport(directory)
    t0 = time.perf_counter()
    # With local worker processes, the raw QA's pictures are drawn by one of them beside the
    # extraction: in this process they were ~0.8 s (then matplotlib's import and the drawing) before
    # any sorting began, most of a tiny recording's fixed cost.
    qa_in_pool = plots and executor is None and n_workers(jobs) > 1
    # Started first: the workers' start-up (~0.5 s each) runs beside init and the extraction.
    pool = executor or start_pool(min(n_workers(jobs), _electrodes_at_most(directory)))
    done = False
    try:
        if needs_init(directory):
            # (--no-plots: none; `blechrs plot` draws them)
            res = init(directory, auto_car=auto_car, pictures=plots and not qa_in_pool)
            # (the recording's own warnings are RecordingWarnings, shown where the recording is opened)
            own = {f"warning: {w}" for w in res.recording.warnings}
            report.notes.extend(f"init: {line}" for line in res.lines()
                                if line.startswith(("wrote", "warning")) and line not in own)
            if res.qa is not None:
                report.summaries.append(res.qa)
            report.timings["init"] = time.perf_counter() - t0
        params = params or load_params(directory)
        if jobs:
            params.run.n_jobs = int(jobs)
        qa_pictures = None
        if qa_in_pool:  # (those missing or older than the QA's numbers)
            if isinstance(pool, ProcessPoolExecutor):
                qa_pictures = pool.submit(raw_qa_pictures, directory)
            else:  # one electrode: no pool
                raw_qa_pictures(directory)
        extract(directory, params, force=force, progress=progress, report=report, pool=executor)
        cluster(directory, params, force=force, jobs=jobs, progress=progress, report=report, plots=plots,
                pool=pool)
        if qa_pictures is not None:
            qa_pictures.result()  # before the index page lists QA_output
        done = True
    finally:
        if pool is not None and executor is None:
            # (not kept for the pictures after the store: idle workers beside the store and unit
            # QA's own pool raised the peak memory of 32 ch x 600 s from 421 to 654 MB.) Idle
            # workers' exit (~0.3 s) is not waited for; after an error it is: none may still
            # write into the folder once its lock is let go.
            pool.shutdown(wait=not done, cancel_futures=True)
    save_autosort(directory, params, force=force, report=report)
    outputs_after_store(directory, params, report, pictures=plots, jobs=jobs, progress=progress)
    report.timings["total"] = time.perf_counter() - t0
    return report


def _electrodes_at_most(directory: Path) -> int:
    """The electrodes the run sorts (the layout's), or before init the recording's channels (the
    default layout sorts at most those); 1 when unknown (init then says why)."""
    if paths.layout_path(directory).exists():
        try:
            return max(1, len(sorted_electrodes(directory)))
        except BlechrsError:  # (the run refuses the layout with its own message)
            return 1
    try:
        with warnings.catch_warnings():  # (said where init opens the recording)
            warnings.simplefilter("ignore")
            return max(1, open_recording(directory).n_channels)
    except BlechrsError:
        return 1


#: Electrodes whose solution pictures a run may still have to redraw after the store (their marks
#: changed: units removed as reference echoes) for its pictures to be drawn by one worker beside
#: the arrays and unit QA (~0.6 s each at 32 x 600 s); with more, a pool draws them first.
BESIDE_QA_REDRAWS = 4


def outputs_after_store(directory: Path, params: SortParams, report: RunReport, pictures: bool = True,
                        jobs: int | None = None, progress: Progress | None = None) -> None:
    """Everything made from the unit store, redone after the store changed (``run``, ``autosort``,
    ``post-process``), so no picture, array or QA file describes a unit that is gone: the unit
    pictures (solution pictures are kept while their clustering is current), the trial arrays,
    unit QA and the index page."""
    directory = Path(directory)
    if (pictures and report.units and n_workers(jobs) > 1
            and stale_solution_pictures(directory, sorted_electrodes(directory)) <= BESIDE_QA_REDRAWS):
        # Mostly unit pictures and thumbnails to draw (~2 s at 32 x 600 s, one core): drawn by a
        # worker beside the trial arrays and unit QA here (as long, one core), under this
        # process's lock, which waits for it. The index page is written last, once both are done.
        pool = spawn_workers(1)
        try:
            drawing = pool.submit(_unit_pictures, directory, params)
            trials_and_qa(directory, params, report, pictures=True, progress=progress, index=False)
            report.timings["plots"] = drawing.result()  # (its own time, beside the arrays and unit QA)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        write_index(directory, sorted_electrodes(directory), params)
        return
    if pictures:
        t1 = time.perf_counter()
        plot_recording(directory, params, jobs=n_workers(jobs), progress=progress, redraw_solutions=False)
        report.timings["plots"] = time.perf_counter() - t1
    trials_and_qa(directory, params, report, pictures=pictures, progress=progress)


def _unit_pictures(directory: Path, params: SortParams) -> float:
    """The pictures :func:`outputs_after_store` has a worker draw (under its caller's lock); their
    time."""
    t = time.perf_counter()
    plot_recording.__wrapped__(directory, params, jobs=1, redraw_solutions=False)  # type: ignore[attr-defined]
    return time.perf_counter() - t


def trials_and_qa(directory: Path, params: SortParams, report: RunReport, pictures: bool = True,
                  progress: Progress | None = None, index: bool = True) -> None:
    """Spike-train arrays when the recording has digital-input pulses, then unit QA (similarity,
    drift across trials, a picture per unit). Skipped when no unit was stored. ``index``: write
    the index page again after the QA pictures (the caller may write it later)."""
    if not report.units:
        return
    t = time.perf_counter()
    recording = open_recording(directory)
    if any(len(onsets) for onsets, _ in recording.digital_inputs.values()):
        report.summaries.append(make_arrays(directory, params, recording=recording))
        report.timings["arrays"] = time.perf_counter() - t
        t = time.perf_counter()
    else:
        report.notes.append(f"no digital-input pulses in {recording.path.name or recording.path} ({recording.file_type}):"
                            f" no trials, so no spike-train arrays; the units are in the store")
    report.summaries.append(unit_qa(directory, params, recording=recording, pictures=pictures,
                                    jobs=n_workers(params.run.n_jobs) if pictures else 1,
                                    progress=(lambda done, total: progress("unit QA", done, total)) if progress
                                    else None))
    if pictures and index:  # the index was written before the QA pictures existed
        write_index(directory, sorted_electrodes(directory), params)
    report.timings["unit QA"] = time.perf_counter() - t
