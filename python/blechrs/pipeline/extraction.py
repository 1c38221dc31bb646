"""The extraction stage: the recording streamed once through the engine, each electrode's events
saved to its work file."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Sequence

from blechrs.errors import PipelineError
from blechrs.io import paths, work_files
from blechrs.io.qa_files import add_warnings
from blechrs.io.recording import open_recording
from blechrs.params import SortParams
from blechrs.pipeline.executors import Progress, RemoteExecutor, map_jobs
from blechrs.pipeline.folder import car_group_ids, check_against_recording, load_params, read_layout
from blechrs.pipeline.lock import holds_folder_lock
from blechrs.pipeline.report import RunReport
from blechrs.pipeline.resume import work_state
from blechrs.quality.car_groups import SMALL_GROUP_PREFIX, small_group_warnings
from blechrs.schemes.sort_electrode import extract_events, work_from_extraction


def release_memory() -> None:
    """Hand the engine's freed buffers back to the OS before the worker processes start (glibc
    keeps freed heap pages otherwise: ~250 MB after a 32 x 600 s extraction)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


#: Samples of each electrode's filtered trace the engine keeps for the recording's noise level
#: (its ``SUBSAMPLE_MAX``, float32): what an electrode's extraction holds in memory at most,
#: since its events go to files (``paths.spill_prefix``) as they are cut.
ENGINE_SUBSAMPLE_MAX = 1 << 20


def extraction_batches(electrodes: Sequence[int], groups: Sequence[int], n_samples: int,
                       params: SortParams, per_group: bool = False) -> list[list[int]]:
    """Electrodes to extract per engine pass: one CAR group per pass (the engine reads a group's
    channels together), split so that the engine's per-electrode memory (its noise subsample and
    chunk buffers: events go to files) fits ``extract_memory_mb``; all in one pass when they fit,
    unless ``per_group`` (a cluster runs the groups side by side). Does not grow with the
    recording's length beyond ~35 minutes at 30 kHz: every electrode of a group in one pass."""
    sub = min(n_samples // max(1, params.extract.noise_subsample) + 1, ENGINE_SUBSAMPLE_MAX)
    chunk = params.extract.rolling_threshold_window * params.extract.sampling_rate
    per_electrode = 4 * sub + 3 * 4 * chunk  # the subsample; a chunk's input, output and history
    size = max(1, int(params.run.extract_memory_mb * 2**20 // max(per_electrode, 1.0)))
    by_group: dict[int, list[int]] = {}
    for e in electrodes:
        by_group.setdefault(groups[e] if 0 <= e < len(groups) else -1, []).append(e)
    if len(electrodes) <= size and not per_group:
        return [list(electrodes)]
    batches: list[list[int]] = []
    for _, members in sorted(by_group.items()):
        for k in range(0, len(members), size):
            batches.append(members[k:k + size])
    return batches


def warn_small_car_groups(directory: Path, rows, params: SortParams, report: RunReport) -> None:
    """CAR groups too small for a common reference to help: a warning in the report and in
    QA_output/warnings.txt."""
    sizes: dict[str, int] = {}
    for r in rows:
        if r.sorted and params.extract.use_car:
            sizes[r.car_group] = sizes.get(r.car_group, 0) + 1
    lines = small_group_warnings(sizes, params.quality.small_car_group, params.extract.reference_method,
                                 paths.params_path(directory).name)
    report.notes.extend(f"warning: {x}" for x in lines)
    if lines or paths.qa_warnings_path(directory).exists():
        add_warnings(paths.qa_warnings_path(directory), lines, replace_prefix=SMALL_GROUP_PREFIX)


@holds_folder_lock
def extract(directory: str | os.PathLike, params: SortParams | None = None, force: bool = False,
            electrodes: Sequence[int] | None = None, progress: Progress | None = None,
            report: RunReport | None = None, pool: RemoteExecutor | None = None) -> RunReport:
    """Extract every sorted electrode whose work is not valid any more (all with ``force``): one
    engine pass per batch (``extraction_batches``), each electrode's events to its work file; on a
    cluster (``pool``), one task per CAR group (each opens the recording from its path)."""
    directory = Path(directory)
    params = params or load_params(directory)
    report = report or RunReport(directory)
    t0 = time.perf_counter()
    rows = read_layout(directory)
    wanted = sorted(electrodes) if electrodes is not None else sorted(r.electrode_ind for r in rows if r.sorted)
    # Opened on every run, even when all work can be reused: the header is checked against the
    # parameters and the layout, and the work is reused only if it was extracted from these files.
    rec = open_recording(directory)
    check_against_recording(directory, params, rec, rows)
    if not wanted and electrodes is None:
        raise PipelineError(f"{paths.layout_path(directory)}: no electrode to sort (every CAR_group is none or "
                            f"EMG)")
    warn_small_car_groups(directory, rows, params, report)
    identity = rec.identity()
    todo = [e for e in wanted if force or work_state(directory, e, params, identity) == "none"]
    report.skipped = [e for e in wanted if e not in todo]
    if todo:
        bad = [e for e in todo if not 0 <= e < rec.n_channels]
        if bad:
            raise PipelineError(f"electrode {bad[0]} is not a channel of {directory} "
                                f"({rec.n_channels} amplifier channels)")
        groups = car_group_ids(rows, rec.n_channels, params.extract.use_car)
        for stale in paths.spill_files(directory):  # left by a killed run
            stale.unlink(missing_ok=True)
        paths.work_dir(directory).mkdir(parents=True, exist_ok=True)
        if pool is not None:
            batches = extraction_batches(todo, groups, rec.n_samples, params, per_group=True)
            del rec
            # An absolute path: a worker elsewhere has another working directory.
            where = str(directory.absolute())
            map_jobs(_extract_batch, [(where, b, groups, params, identity) for b in batches], 1,
                     "extract", progress, pool=pool)
            report.timings["extract"] = time.perf_counter() - t0
            return report

        last = [1]

        def engine_progress(*args):
            if progress and len(args) >= 2:
                last[0] = max(int(args[1]), 1)
                progress("extract", int(args[0]), last[0])

        if progress:
            progress("extract", 0, 1)
        batches = extraction_batches(todo, groups, rec.n_samples, params)
        for i, batch in enumerate(batches):
            _extract_to_work_files(directory, rec, batch, groups, params, identity,
                                   None if len(batches) > 1 or not progress else engine_progress)
            if progress and len(batches) > 1:
                progress("extract", i + 1, len(batches))
        if progress and len(batches) == 1:
            progress("extract", last[0], last[0])
        del rec
        release_memory()
    report.timings["extract"] = time.perf_counter() - t0
    return report


def _extract_batch(directory: str, electrodes: list[int], groups: list[int], params: SortParams,
                   identity: str) -> None:
    """One cluster task: extract ``electrodes`` of the recording in ``directory`` and save their
    work files (with the engine thread count the worker allows: ``executors.one_thread_task``)."""
    rec = open_recording(directory)
    if rec.identity() != identity:
        raise PipelineError(f"{directory}: the recording files a cluster worker sees differ from the ones this "
                            f"machine sees (changed while sorting, or another folder under that path)")
    _extract_to_work_files(Path(directory), rec, electrodes, groups,
                           dataclasses.replace(params, run=dataclasses.replace(params.run, n_jobs=0)), identity)


def _extract_to_work_files(directory: Path, rec, electrodes: list[int], groups: Sequence[int], params: SortParams,
                           identity: str, progress=None) -> None:
    """One engine pass over ``electrodes``: their events go to spill files as they are cut, then
    each electrode's are read back and saved as its work file, one electrode in memory at a time."""
    spill = [paths.spill_prefix(directory, e) for e in electrodes]
    try:
        results = extract_events(rec, electrodes, groups, params, progress=progress, spill=[str(p) for p in spill])
        for d, prefix in zip(results, spill):
            if "n_spilled" in d:
                d.update(work_files.read_spilled_events(prefix, int(d["n_spilled"]), d["waveforms"].shape[1]))
            work = work_from_extraction(d, params, rec.n_samples)
            work.recording = identity
            work_files.save_electrode(paths.electrode_path(directory, work.electrode), work)
            d.clear()
            work = None
            work_files.remove_spilled_events(prefix)
    finally:
        for prefix in spill:
            work_files.remove_spilled_events(prefix)
