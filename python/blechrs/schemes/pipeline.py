"""The sorting pipeline: a recording folder in, sorted units out.

Stages (each also a CLI subcommand): init -> extract -> cluster -> autosort -> store -> plots.

- ``extract``: the engine (``blechrs.kernels.extract_electrodes``) streams the recording once,
  common-average references each CAR group, filters, detects and cuts waveforms for every electrode
  (multi-threaded in Rust). Each electrode's events go to ``DIR/blechrs_work/electrodeNN.npz``.
- ``cluster``: per electrode, in a process pool: features, every clustering solution, auto-sort
  choices and their quality metrics, saved back into the electrode's work file.
- ``autosort`` / ``post-process``: the chosen units (auto-sort's, or a sort file's) go to the unit
  store ``DIR/<name>.h5`` (``blechrs.store``).

``sort_electrode(recording_dir, electrode, params)`` is the whole per-electrode job as a pure
function (no files written), for executors that run electrodes elsewhere (a cluster).

Resume: an electrode whose work file is complete and was made with the same parameters is not
redone (``force`` redoes everything). Every fit is seeded, electrodes are independent of each
other and of the scheduling, so the same input and seed give identical output.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from blechrs import store
from blechrs.core import sort_file as sf
from blechrs.params import SortParams

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total)."""

#: Parameters whose change invalidates the extraction (the rest only affect later stages).
EXTRACT_KEYS = (
    "sampling_rate", "use_car", "bandpass_lower_cutoff", "bandpass_upper_cutoff", "bandpass_order",
    "voltage_cutoff", "max_breach_rate", "max_secs_above_cutoff", "max_mean_breach_rate_persec",
    "waveform_threshold", "use_rolling_threshold", "rolling_threshold_window", "rolling_threshold_step",
    "spike_polarity", "dead_time_ms", "spike_snapshot_before", "spike_snapshot_after", "align_subsample",
    "noise_subsample",
)
CLUSTER_KEYS = (
    "max_clusters", "num_iter", "thresh", "num_restarts", "max_autosort_clusters", "max_training_events",
    "autosort_base_clusters",
    "wf_amplitude_sd_cutoff", "random_seed", "cluster_threshold",
)
#: Parameters that never change a sort (execution, arrays, QA).
NON_SORT_KEYS = (
    "n_jobs", "extract_memory_mb", "spike_array_durations", "spike_array_bin_ms", "similarity_cutoff",
    "similarity_window_ms", "bridged_channel_threshold", "n_corr_samples", "similarity_waveform_count_cutoff",
    "n_trial_bins", "drift_baseline_ms", "drift_post_ms", "drift_alpha",
)
#: Every other parameter may change auto-sort's decisions (new auto-sort parameters count too).
AUTOSORT_KEYS = tuple(f.name for f in dataclasses.fields(SortParams)
                      if f.name not in EXTRACT_KEYS + CLUSTER_KEYS + NON_SORT_KEYS)
WORK_VERSION = 1


class PipelineError(RuntimeError):
    """A problem with the user's input (one clear line)."""


# ------------------------------------------------------------------------------------------------
# Small helpers


def recording_name(directory: str | os.PathLike) -> str:
    return Path(directory).resolve().name


def params_path(directory: str | os.PathLike) -> Path:
    return Path(directory) / f"{recording_name(directory)}.params"


def load_params(directory: str | os.PathLike) -> SortParams:
    path = params_path(directory)
    if not path.exists():
        raise PipelineError(f"{path}: no parameter file; run `blechrs init {directory}` first")
    return SortParams.load(path)


def fingerprint(params: SortParams, keys: Sequence[str], extra: Any = None) -> str:
    d = params.to_dict()
    text = json.dumps({k: d[k] for k in keys} | {"__extra__": extra, "__v__": WORK_VERSION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_layout(directory: str | os.PathLike):
    """The electrode layout rows (``blechrs.io.layout``): which channels are sorted, how referenced."""
    from blechrs.io import layout
    return layout.load_layout(directory)


def car_group_ids(rows, n_channels: int, use_car: bool) -> list[int]:
    from blechrs.io import layout
    return layout.car_groups(rows, n_channels, use_car)


# ------------------------------------------------------------------------------------------------
# Per-electrode clustering (pure)


def _core():
    from blechrs.core import autosort, cluster, features, metrics
    return features, cluster, autosort, metrics


def quiet_reason(data: dict[str, Any], params: SortParams) -> str | None:
    n = len(data["times"])
    if bool(data.get("dead", False)):
        return "dead channel"
    if n == 0:
        return "no events"
    if n < params.max_clusters:
        return f"{n} events, fewer than max_clusters ({params.max_clusters})"
    return None


def duration_s(data: dict[str, Any], params: SortParams) -> float:
    n = int(data.get("cutoff_sample") or data.get("n_samples") or 0)
    return n / params.sampling_rate if n > 0 else 0.0


def unit_metrics(data: dict[str, Any], indices: np.ndarray, params: SortParams) -> dict[str, float]:
    """blechrs's quality metrics of one unit (core.metrics), made JSON-friendly."""
    _, _, _, metrics = _core()
    member = np.zeros(len(data["times"]), dtype=bool)
    member[indices] = True
    peak = min(params.samples_before, data["waveforms"].shape[1] - 1)
    m = metrics.unit_metrics(data["waveforms"], data["times"], data["features"], member,
                             params.sampling_rate, float(data.get("mad_val", 0.0)), duration_s(data, params),
                             peak)
    return _jsonable(m)


def _choice_to_selection(electrode: int, choice: Any, labels_of: Callable[[int], np.ndarray]) -> sf.Selection:
    """Adapt core.autosort's UnitChoice (solution, clusters, single_unit, unit_type 'r'/'f')."""
    solution = int(choice.solution)
    clusters = tuple(int(c) for c in np.atleast_1d(choice.clusters))
    indices = np.flatnonzero(np.isin(labels_of(solution), clusters))
    unit_type = str(getattr(choice, "unit_type", "") or "")
    return sf.Selection(
        electrode=electrode, solution=solution, clusters=clusters, indices=indices,
        single_unit=bool(choice.single_unit), regular_spiking=unit_type == "r", fast_spiking=unit_type == "f",
        label="+".join(map(str, clusters)), source="autosort")


def _jsonable(metrics: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in metrics.items():
        if isinstance(v, (bool, np.bool_)):
            out[k] = bool(v)
        elif isinstance(v, (int, np.integer)):
            out[k] = int(v)
        elif isinstance(v, (float, np.floating)):
            out[k] = float(v) if np.isfinite(v) else None
        else:
            out[k] = v
    return out


@contextlib.contextmanager
def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits  # scikit-learn's own dependency
    except ImportError:  # pragma: no cover - scikit-learn requires it
        yield
        return
    with threadpool_limits(limits=1):
        yield


def autosort_data(data: dict[str, Any], params: SortParams) -> dict[str, Any]:
    """See ``_autosort_data``; one BLAS thread (see ``cluster_data``)."""
    with _one_blas_thread():
        return _autosort_data(data, params)


def _autosort_data(data: dict[str, Any], params: SortParams) -> dict[str, Any]:
    """Auto-sort one clustered electrode: adds ``auto_labels`` (unit index per event, -1 = none)
    and ``auto_units`` (one dict per unit: solution, clusters, single/RS/FS, metrics)."""
    _, cluster, autosort, _ = _core()
    out = dict(data)
    n = len(data["times"])
    auto_labels = np.full(n, -1, dtype=np.int64)
    units: list[dict[str, Any]] = []
    if data.get("status", "ok") == "ok":
        solutions = {int(k.split("_")[1]): cluster.Solution(int(k.split("_")[1]), data[k],
                                                             data["solution_kinds"][k.split("_")[1]])
                     for k in data if k.startswith("labels_")}
        # A template assignment saved by an earlier auto-sort is redone (or dropped) here.
        for number in [k for k, sol in solutions.items() if sol.kind == "templates"]:
            del solutions[number]
            out.pop(f"labels_{number}", None)
        kinds = {k: v for k, v in data["solution_kinds"].items() if v != "templates"}
        choices = autosort.autosort_electrode(
            data["waveforms"], data["times"], data["features"], solutions, params,
            sampling_rate=params.sampling_rate, mad_val=float(data.get("mad_val", 0.0)),
            duration_s=duration_s(data, params), clustered=data.get("clustered"))
        for number, sol in solutions.items():
            if sol.kind == "templates":  # added by auto-sort
                out[f"labels_{number}"] = np.asarray(sol.labels, dtype=np.int64)
                kinds[str(number)] = sol.kind
        out["solution_kinds"] = kinds
        for i, choice in enumerate(choices):
            sel = _choice_to_selection(int(data["electrode"]), choice, lambda s: solutions[s].labels)
            sel.indices = sel.indices[auto_labels[sel.indices] < 0]  # units never share events
            if len(sel.indices) == 0:
                continue
            auto_labels[sel.indices] = len(units)
            units.append(dict(solution=sel.solution, clusters=list(sel.clusters), single_unit=sel.single_unit,
                              regular_spiking=sel.regular_spiking, fast_spiking=sel.fast_spiking,
                              metrics=_jsonable(choice.metrics) if len(sel.indices) == len(
                                  np.flatnonzero(np.isin(solutions[sel.solution].labels, sel.clusters)))
                              else unit_metrics(data, sel.indices, params),
                              reason=str(getattr(choice, "reason", ""))))
    out["auto_labels"] = auto_labels
    out["auto_units"] = units
    out["fp_autosort"] = fingerprint(params, AUTOSORT_KEYS)
    return out


def events_to_cluster(data: dict[str, Any], params: SortParams) -> np.ndarray:
    """Which events the clustering sees: extremum beyond ``cluster_threshold`` x the noise of the
    event's noise window (the smaller ones are only template-assigned). Every event when that
    leaves fewer than ``max_clusters`` or the threshold is at or below detection."""
    n = len(data["times"])
    everything = np.ones(n, dtype=bool)
    noise = np.atleast_1d(np.asarray(data.get("noise", []), dtype=np.float64))
    if n == 0 or params.cluster_threshold <= params.waveform_threshold or noise.size == 0:
        return everything
    step = max(1, int(round(params.rolling_threshold_step * params.sampling_rate)))
    window = np.minimum(np.asarray(data["times"]) // step, noise.size - 1) if params.use_rolling_threshold \
        else np.zeros(n, dtype=np.int64)
    peak = min(params.samples_before, data["waveforms"].shape[1] - 1)
    big = np.abs(np.asarray(data["waveforms"])[:, peak]) >= params.cluster_threshold * noise[window]
    return big if big.sum() >= params.max_clusters else everything


def cluster_data(data: dict[str, Any], params: SortParams) -> dict[str, Any]:
    """Features, every clustering solution and the auto-sort choices of one extracted electrode.
    Solutions label only the events of ``events_to_cluster`` (the others -1).

    BLAS runs on one thread here, as in the worker processes: a multi-threaded BLAS sums in
    another order, and the labels would depend on where the electrode was sorted."""
    with _one_blas_thread():
        return _cluster_data(data, params)


def _cluster_data(data: dict[str, Any], params: SortParams) -> dict[str, Any]:
    features, cluster, _, _ = _core()
    out = {k: v for k, v in data.items() if not k.startswith("labels_")}
    reason = quiet_reason(data, params)
    out["features"] = features.compute_features(data["waveforms"], params)
    out["solution_kinds"] = {}
    clustered = events_to_cluster(data, params)
    out["clustered"] = clustered
    if reason is None:
        idx = np.flatnonzero(clustered)
        solutions = cluster.cluster_electrode(out["features"][idx], params)
        for number, sol in sorted(solutions.items()):
            labels = np.full(len(clustered), -1, dtype=np.int64)
            labels[idx] = sol.labels
            out[f"labels_{number}"] = labels
            out["solution_kinds"][str(number)] = sol.kind
    out["status"] = "ok" if reason is None else reason
    out["stage"] = "clustered"
    out["fp_cluster"] = fingerprint(params, CLUSTER_KEYS)
    return _autosort_data(out, params)


def extraction_to_data(d: dict[str, Any], params: SortParams, n_samples: int) -> dict[str, Any]:
    """One engine result dict -> the work-file dict of an extracted electrode."""
    data = {k: (np.asarray(v) if isinstance(v, np.ndarray) else v) for k, v in d.items()}
    data["electrode"] = int(d["electrode"])
    data["times"] = np.asarray(d["times"], dtype=np.int64)
    data["waveforms"] = np.asarray(d["waveforms"], dtype=np.float32)
    for key in ("threshold", "mad_val"):
        data[key] = float(d.get(key, 0.0))
    data["cutoff_sample"] = int(d.get("cutoff_sample", n_samples))
    data["n_edge_dropped"] = int(d.get("n_edge_dropped", 0))
    data["dead"] = bool(d.get("dead", False))
    data["n_samples"] = int(n_samples)
    data["n_events"] = int(len(data["times"]))
    data["sampling_rate"] = float(params.sampling_rate)
    data["stage"] = "extracted"
    data["fp_extract"] = fingerprint(params, EXTRACT_KEYS)
    return data


def _open(directory: str | os.PathLike):
    from blechrs.io import open_recording
    return open_recording(directory)


def _extract(recording, electrodes: Sequence[int], groups: Sequence[int], params: SortParams,
             progress: Callable | None = None) -> list[dict[str, Any]]:
    from blechrs import kernels
    # (SortParams carries the extraction parameters as attributes, as kernels.extract_electrodes reads them)
    return kernels.extract_electrodes(recording.source, list(electrodes), list(groups), params,
                                      threads=params.n_jobs, progress=progress)


def sort_electrode(recording_dir: str | os.PathLike, electrode: int, params: SortParams | None = None
                   ) -> dict[str, Any]:
    """The whole job of one electrode, as a pure function: extract (referenced against its CAR
    group), features, clustering solutions, auto-sort. Returns the work-file dict; writes nothing."""
    params = params or load_params(recording_dir)
    rec = _open(recording_dir)
    groups = car_group_ids(read_layout(recording_dir), rec.n_channels, params.use_car)
    (result,) = _extract(rec, [electrode], groups, params)
    return cluster_data(extraction_to_data(result, params, rec.n_samples), params)


# ------------------------------------------------------------------------------------------------
# Jobs run in worker processes (top-level so they pickle)


def _cluster_job(directory: str, electrode: int, params_dict: dict[str, Any], only_autosort: bool,
                 plots: bool = False) -> dict:
    params = SortParams.from_dict(params_dict)
    path = store.electrode_path(directory, electrode)
    data = store.load_electrode(path)
    data = autosort_data(data, params) if only_autosort else cluster_data(data, params)
    store.save_electrode(path, data)
    if plots and not only_autosort:
        # Solution pictures while the electrode is in memory, in the worker that clustered it.
        from blechrs import plots as plots_mod
        plots_mod.plot_solutions(directory, data, params)
    return electrode_summary(data)


def electrode_summary(data: dict[str, Any]) -> dict[str, Any]:
    n = data["n_events"] if "n_events" in data else len(data["times"])
    return dict(electrode=int(data["electrode"]), events=int(n), status=data.get("status", "ok"),
                units=len(data.get("auto_units", [])), threshold=float(data.get("threshold", 0.0)))


def _read_meta(path: Path) -> dict[str, Any]:
    """The scalar part of a work file, without loading its arrays."""
    with np.load(path, allow_pickle=False) as z:
        return json.loads(str(z["__meta__"]))


def _worker_init() -> None:
    # One BLAS/OpenMP thread per worker process: the parallelism is across electrodes.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
        os.environ[var] = "1"


def n_workers(jobs: int | None) -> int:
    return max(1, jobs or os.cpu_count() or 1)


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS")


def _warm_worker() -> None:
    """A pre-started worker's first task: import the clustering code."""
    _core()


def start_pool(jobs: int) -> ProcessPoolExecutor | None:
    """``jobs`` spawned worker processes, started now and importing the clustering code (None for
    one job). ``run`` starts them before the extraction, which leaves part of a core idle, so their
    start-up (~0.4 s each) is off the critical path."""
    if jobs <= 1:
        return None
    saved = {v: os.environ.get(v) for v in _THREAD_VARS}
    _worker_init()  # inherited by the spawned workers before they import numpy
    try:
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"), initializer=_worker_init)
        for _ in range(jobs):  # a process is spawned per submitted task while none is idle
            pool.submit(_warm_worker)
    finally:
        # The parent keeps its own thread settings (the engine's thread pool may start later).
        for v, old in saved.items():
            if old is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = old
    return pool


def _map(fn, args: list[tuple], jobs: int, stage: str, progress: Progress | None,
         pool: ProcessPoolExecutor | None = None) -> list:
    """Run fn(*a) for every a, in a process pool when jobs > 1 (``pool`` if given, else a new
    one); results in input order."""
    results: list = [None] * len(args)
    if progress:
        progress(stage, 0, len(args))
    if jobs <= 1 or len(args) <= 1:
        for i, a in enumerate(args):
            results[i] = fn(*a)
            if progress:
                progress(stage, i + 1, len(args))
        return results
    own = pool is None
    if own:
        pool = start_pool(min(jobs, len(args)))
    try:
        futures = {pool.submit(fn, *a): i for i, a in enumerate(args)}
        done = 0
        from concurrent.futures import as_completed
        for fut in as_completed(futures):
            results[futures[fut]] = fut.result()
            done += 1
            if progress:
                progress(stage, done, len(args))
    finally:
        if own:
            pool.shutdown(cancel_futures=True)
    return results


# ------------------------------------------------------------------------------------------------
# Stages


@dataclass
class RunReport:
    directory: Path
    electrodes: list[dict[str, Any]] = field(default_factory=list)
    units: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    """Electrodes whose earlier results were reused (resume)."""
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    h5: Path | None = None
    summaries: list[Any] = field(default_factory=list)
    """Printable results of the later steps (raw QA, arrays, unit QA), in order."""
    store_written: bool = False
    """The unit store was (re)written by this command (False: left as it was)."""

    @property
    def quiet(self) -> list[dict[str, Any]]:
        return [e for e in self.electrodes if e["status"] != "ok"]


def sorted_electrodes(directory: str | os.PathLike) -> list[int]:
    return sorted(r.electrode_ind for r in read_layout(directory) if r.sorted)


def init(directory: str | os.PathLike, force: bool = False, qa: bool = True, auto_car: bool = False):
    """Write ``<name>.info``, the electrode layout and ``<name>.params`` (kept if they exist,
    unless ``force``) and, with ``qa``, the raw-data QA under ``DIR/QA_output``; ``auto_car``
    splits CAR groups by channel correlation in a new layout. Returns blechrs.io.layout's InitResult."""
    from blechrs.io.layout import init_experiment
    return init_experiment(directory, force=force, qa=qa, auto_car=auto_car)


def needs_init(directory: str | os.PathLike) -> bool:
    from blechrs.io import layout
    return not all(p.exists() for p in (layout.info_path(directory), layout.layout_path(directory),
                                        layout.params_path(directory)))


def _work_state(directory, electrode: int, params: SortParams) -> str:
    """'none', 'extracted' or 'clustered' (valid for the current parameters)."""
    path = store.electrode_path(directory, electrode)
    if not path.exists():
        return "none"
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["__meta__"]))
    except Exception:  # an unreadable work file is redone
        return "none"
    if meta.get("fp_extract") != fingerprint(params, EXTRACT_KEYS):
        return "none"
    if meta.get("stage") == "clustered" and meta.get("fp_cluster") == fingerprint(params, CLUSTER_KEYS):
        if meta.get("fp_autosort") == fingerprint(params, AUTOSORT_KEYS):
            return "clustered"
        return "autosort-stale"
    return "extracted"


def _release_memory() -> None:
    """Hand the engine's freed buffers back to the OS before the worker processes start (glibc
    keeps freed heap pages otherwise: ~250 MB after a 32 x 600 s extraction)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def extraction_batches(electrodes: Sequence[int], groups: Sequence[int], n_samples: int,
                       params: SortParams) -> list[list[int]]:
    """Electrodes to extract per engine pass: one CAR group per pass (the engine reads a group's
    channels together), split so the expected waveforms (50 events/s) fit ``extract_memory_mb``."""
    per_electrode = (n_samples / params.sampling_rate) * 50.0 * (params.samples_before + params.samples_after) * 4
    size = max(1, int(params.extract_memory_mb * 2**20 // max(per_electrode, 1.0)))
    by_group: dict[int, list[int]] = {}
    for e in electrodes:
        by_group.setdefault(groups[e] if 0 <= e < len(groups) else -1, []).append(e)
    if len(electrodes) <= size:
        return [list(electrodes)]
    batches: list[list[int]] = []
    for _, members in sorted(by_group.items()):
        for k in range(0, len(members), size):
            batches.append(members[k:k + size])
    return batches


def extract(directory: str | os.PathLike, params: SortParams | None = None, force: bool = False,
            electrodes: Sequence[int] | None = None, progress: Progress | None = None,
            report: RunReport | None = None) -> RunReport:
    directory = Path(directory)
    params = params or load_params(directory)
    report = report or RunReport(directory)
    t0 = time.perf_counter()
    rows = read_layout(directory)
    wanted = sorted(electrodes) if electrodes is not None else sorted(r.electrode_ind for r in rows if r.sorted)
    todo = [e for e in wanted if force or _work_state(directory, e, params) == "none"]
    report.skipped = [e for e in wanted if e not in todo]
    if todo:
        rec = _open(directory)
        bad = [e for e in todo if not 0 <= e < rec.n_channels]
        if bad:
            raise PipelineError(f"electrode {bad[0]} is not a channel of {directory} "
                                f"({rec.n_channels} amplifier channels)")
        groups = car_group_ids(rows, rec.n_channels, params.use_car)

        last = [1]

        def engine_progress(*args):
            if progress and len(args) >= 2:
                last[0] = max(int(args[1]), 1)
                progress("extract", int(args[0]), last[0])

        if progress:
            progress("extract", 0, 1)
        batches = extraction_batches(todo, groups, rec.n_samples, params)
        for i, batch in enumerate(batches):
            results = _extract(rec, batch, groups, params, progress=None if len(batches) > 1 or not progress
                               else engine_progress)
            for d in results:
                data = extraction_to_data(d, params, rec.n_samples)
                store.save_electrode(store.electrode_path(directory, data["electrode"]), data)
            results = None  # free this batch before the next
            if progress and len(batches) > 1:
                progress("extract", i + 1, len(batches))
        if progress and len(batches) == 1:
            progress("extract", last[0], last[0])
        del rec
        _release_memory()
    report.timings["extract"] = time.perf_counter() - t0
    return report


def cluster(directory: str | os.PathLike, params: SortParams | None = None, force: bool = False,
            jobs: int | None = None, progress: Progress | None = None, report: RunReport | None = None,
            only_autosort: bool = False, plots: bool = False, pool: ProcessPoolExecutor | None = None) -> RunReport:
    """Features + solutions + auto-sort choices for every extracted electrode (process pool:
    ``pool`` if given, see ``start_pool``)."""
    directory = Path(directory)
    params = params or load_params(directory)
    report = report or RunReport(directory)
    t0 = time.perf_counter()
    wanted = sorted_electrodes(directory)
    missing = [e for e in wanted if not store.electrode_path(directory, e).exists()]
    if missing:
        raise PipelineError(f"electrode {missing[0]} has not been extracted; run `blechrs extract {directory}`")
    states = {e: _work_state(directory, e, params) for e in wanted}
    stale = [e for e, s in states.items() if s == "none"]
    if stale:
        raise PipelineError(f"electrode {stale[0]} was extracted with other parameters; "
                            f"run `blechrs extract {directory} --force`")
    if only_autosort:
        not_clustered = [e for e, st in states.items() if st == "extracted"]
        if not_clustered:
            raise PipelineError(f"electrode {not_clustered[0]} has not been clustered; run `blechrs cluster {directory}`")
        todo = [(str(directory), e, params.to_dict(), True, False) for e in wanted]
    else:
        todo = [(str(directory), e, params.to_dict(), states[e] == "autosort-stale" and not force, plots)
                for e in wanted if force or states[e] != "clustered"]
    # Largest electrodes first: the pool then finishes together (longest-processing-time first).
    size = {e: int(_read_meta(store.electrode_path(directory, e)).get("n_events", 0)) for e in wanted}
    todo.sort(key=lambda t: (-size[t[1]], t[1]))
    _map(_cluster_job, todo, n_workers(jobs), "cluster", progress, pool=pool)
    report.electrodes = [electrode_summary(_read_meta(store.electrode_path(directory, e))) for e in wanted]
    report.timings["cluster"] = time.perf_counter() - t0
    return report


def _units_from_selections(directory, selections: Iterable[sf.Selection], params: SortParams,
                           metrics_of: Callable[[sf.Selection, dict], dict], needs_arrays: Sequence[str] | None = None
                           ) -> tuple[list[store.Unit], list[sf.Selection]]:
    """Units in electrode order (stable within an electrode) and their selections in that order.
    ``needs_arrays``: the work-file arrays ``metrics_of`` uses besides times and waveforms (None: all)."""
    if needs_arrays is not None:
        needs_arrays = ("times", "waveforms", *needs_arrays)
    units: list[store.Unit] = []
    ordered: list[sf.Selection] = []
    by_electrode: dict[int, list[sf.Selection]] = {}
    for s in selections:
        by_electrode.setdefault(s.electrode, []).append(s)
    for electrode in sorted(by_electrode):
        data = store.load_electrode(store.electrode_path(directory, electrode), arrays=needs_arrays)
        for sel in by_electrode[electrode]:
            m = metrics_of(sel, data)
            units.append(store.Unit(
                electrode=electrode, times=data["times"][sel.indices], waveforms=data["waveforms"][sel.indices],
                single_unit=sel.single_unit, regular_spiking=sel.regular_spiking, fast_spiking=sel.fast_spiking,
                snr=float(m.get("snr") or 0.0), metrics={k: (np.nan if v is None else v) for k, v in m.items()
                                                         if isinstance(v, (int, float)) or v is None},
                solution=sel.solution, clusters=sel.label, source=sel.source))
            ordered.append(sel)
    return units, ordered


def stored_units_table(h5: Path) -> list[dict[str, Any]]:
    """The summary rows of the units already in a unit store."""
    rows = []
    for u in store.read_units(h5, waveforms=False):
        m = u.metrics
        rows.append(dict(unit=u.name, electrode=u.electrode, spikes=len(u.times), rate=m.get("firing_rate", np.nan),
                         snr=u.snr, isi_1ms=m.get("isi_violations_1ms", np.nan),
                         isi_2ms=m.get("isi_violations_2ms", np.nan), single_unit=u.single_unit,
                         kind="RS" if u.regular_spiking else "FS" if u.fast_spiking else "", source=u.source,
                         clusters=u.clusters, solution=u.solution))
    return rows


def _units_table(units: Sequence[store.Unit], names: Sequence[str]) -> list[dict[str, Any]]:
    rows = []
    for name, u in zip(names, units):
        m = u.metrics
        rows.append(dict(unit=name, electrode=u.electrode, spikes=len(u.times),
                         rate=m.get("firing_rate", np.nan), snr=u.snr,
                         isi_1ms=m.get("isi_violations_1ms", np.nan), isi_2ms=m.get("isi_violations_2ms", np.nan),
                         single_unit=u.single_unit,
                         kind="RS" if u.regular_spiking else "FS" if u.fast_spiking else "",
                         source=u.source, clusters=u.clusters, solution=u.solution))
    return rows


def _h5_origin(path: Path) -> str | None:
    if not path.exists():
        return None
    import tables
    try:
        with tables.open_file(str(path), "r") as f:
            return str(f.root._v_attrs.units_from) if "units_from" in f.root._v_attrs._v_attrnames else None
    except Exception:
        return None


def autosort_sort_file_path(directory) -> Path:
    return Path(directory) / f"{recording_name(directory)}_autosort.csv"


def _stamp_path(directory) -> Path:
    return store.work_dir(directory) / "autosort_csv.sha256"


def write_autosort_sort_file(directory, selections: Sequence[sf.Selection], comments: Sequence[str],
                             force: bool = False) -> tuple[Path, bool]:
    """Write the sort file auto-sort applied (``<name>_autosort.csv``). A file a person has edited
    since blechrs wrote it is kept unless ``force``. Returns (path, written)."""
    path = autosort_sort_file_path(directory)
    text = sf.format_sort_file([sf.selection_row(i, s, c) for i, (s, c) in enumerate(zip(selections, comments))])
    stamp = _stamp_path(directory)
    if path.exists() and not force:
        current = hashlib.sha256(path.read_bytes()).hexdigest()
        ours = stamp.read_text().strip() if stamp.exists() else None
        if current != ours:
            return path, False
    store.write_text_atomic(path, text)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    store.write_text_atomic(stamp, hashlib.sha256(text.encode()).hexdigest() + "\n")
    return path, True


def save_autosort(directory: str | os.PathLike, params: SortParams | None = None, force: bool = False,
                  report: RunReport | None = None) -> RunReport:
    """Store auto-sort's units of every electrode in ``DIR/<name>.h5`` and write the sort file it
    applied. Units a person chose with a sort file are kept unless ``force``."""
    directory = Path(directory)
    params = params or load_params(directory)
    report = report or RunReport(directory)
    t0 = time.perf_counter()
    h5 = store.h5_path(directory)
    origin = _h5_origin(h5)
    if origin and origin.startswith("sort file") and not force:
        report.notes.append(f"{h5.name} holds units from a {origin}; kept them (use --force to replace "
                            "them with auto-sort's)")
        report.h5 = h5
        report.units = stored_units_table(h5)
        return report
    selections, comments = [], []
    for e in sorted_electrodes(directory):
        path = store.electrode_path(directory, e)
        data = store.load_electrode(path, arrays=("auto_labels",))
        if data.get("stage") != "clustered":
            raise PipelineError(f"electrode {e} has not been clustered; run `blechrs cluster {directory}`")
        for i, u in enumerate(data.get("auto_units", [])):
            idx = np.flatnonzero(data["auto_labels"] == i)
            sel = sf.Selection(electrode=e, solution=int(u["solution"]), clusters=tuple(u["clusters"]),
                               indices=idx, single_unit=bool(u["single_unit"]),
                               regular_spiking=bool(u["regular_spiking"]), fast_spiking=bool(u["fast_spiking"]),
                               label="+".join(map(str, u["clusters"])), source="autosort")
            sel.metrics = u["metrics"]  # type: ignore[attr-defined]
            selections.append(sel)
            m = u["metrics"]
            comments.append(f"auto: {len(idx)} spikes, snr {_f(m.get('snr'))}, "
                            f"isi<2ms {_f(m.get('isi_violations_2ms'))}%" + (f", {u['reason']}" if u.get("reason") else ""))
    units, _ = _units_from_selections(directory, selections, params, lambda s, d: s.metrics,  # type: ignore[attr-defined]
                                      needs_arrays=())
    names = store.write_units(h5, units, attrs={"units_from": "autosort"})
    report.store_written = True
    path, written = write_autosort_sort_file(directory, selections, comments, force=force)
    if not written:
        report.notes.append(f"{path.name} was edited since blechrs wrote it; kept it (use --force to replace it)")
    report.units = _units_table(units, names)
    report.h5 = h5
    report.timings["store"] = time.perf_counter() - t0
    return report


def _f(x) -> str:
    return "nan" if x is None else f"{float(x):.2f}"


def post_process(directory: str | os.PathLike, sort_file: str | os.PathLike, params: SortParams | None = None,
                 report: RunReport | None = None) -> tuple[RunReport, list[sf.RowProblem], Path]:
    """Apply a person's sort file: its units replace the store's units. Bad rows save nothing and
    are returned as problems; the applied report is written beside the sort file."""
    directory = Path(directory)
    rows, problems, cells = sf.read_sort_file(sort_file)
    params = params or load_params(directory)
    report = report or RunReport(directory)
    known = set(sorted_electrodes(directory))

    def load(e: int):
        path = store.electrode_path(directory, e)
        if e not in known or not path.exists():
            return None
        data = store.load_electrode(path)
        return data if data.get("stage") == "clustered" else None

    selections, more, by_row = sf.apply_sort_rows(rows, load, params)
    problems = sorted(problems + more, key=lambda p: p.row)
    h5 = store.h5_path(directory)
    if not selections:
        # Nothing usable: the store keeps its units rather than being emptied by a broken file.
        applied = sf.write_applied_report(sort_file, cells, problems, by_row, {})
        report.notes.append(f"{Path(sort_file).name} selects no unit; {h5.name} left as it was")
        report.h5 = h5
        report.units = stored_units_table(h5) if h5.exists() else []
        return report, problems, applied
    units, ordered = _units_from_selections(directory, selections, params,
                                            lambda s, d: unit_metrics(d, s.indices, params))
    names = store.write_units(h5, units, attrs={"units_from": f"sort file {Path(sort_file).name}"})
    info = {id(sel): dict(unit_name=name, spikes=len(sel.indices),
                          isi_1ms_pct=unit.metrics.get("isi_violations_1ms"),
                          isi_2ms_pct=unit.metrics.get("isi_violations_2ms"))
            for name, sel, unit in zip(names, ordered, units)}
    applied = sf.write_applied_report(sort_file, cells, problems, by_row, info)
    report.units = _units_table(units, names)
    report.h5 = h5
    report.store_written = True
    return report, problems, applied


def run(directory: str | os.PathLike, params: SortParams | None = None, force: bool = False, jobs: int | None = None,
        plots: bool = True, progress: Progress | None = None, auto_car: bool = False) -> RunReport:
    """The whole chain: init (if needed) -> extract -> cluster -> auto-sort -> store -> plots."""
    directory = Path(directory)
    if not directory.is_dir():
        raise PipelineError(f"{directory}: not a directory")
    report = RunReport(directory)
    t0 = time.perf_counter()
    if needs_init(directory):
        res = init(directory, auto_car=auto_car)
        report.notes.extend(f"init: {line}" for line in res.lines() if line.startswith(("wrote", "warning")))
        if res.qa is not None:
            report.summaries.append(res.qa)
        report.timings["init"] = time.perf_counter() - t0
    params = params or load_params(directory)
    if jobs:
        params.n_jobs = int(jobs)
    pool = start_pool(min(n_workers(jobs), max(1, len(sorted_electrodes(directory)))))
    try:
        extract(directory, params, force=force, progress=progress, report=report)
        cluster(directory, params, force=force, jobs=jobs, progress=progress, report=report, plots=plots,
                pool=pool)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    save_autosort(directory, params, force=force, report=report)
    if plots:
        t1 = time.perf_counter()
        from blechrs import plots as plots_mod
        plots_mod.plot_recording(directory, params, jobs=n_workers(jobs), progress=progress,
                                 redraw_solutions=False)
        report.timings["plots"] = time.perf_counter() - t1
    trials_and_qa(directory, params, report, pictures=plots)
    report.timings["total"] = time.perf_counter() - t0
    return report


def trials_and_qa(directory: Path, params: SortParams, report: RunReport, pictures: bool = True) -> None:
    """Spike-train arrays when the recording has digital-input pulses, then unit QA (similarity,
    drift across trials, a picture per unit). Skipped when no unit was stored."""
    if not report.units:
        return
    from blechrs import arrays, qa

    t = time.perf_counter()
    recording = _open(directory)
    if any(len(onsets) for onsets, _ in recording.digital_inputs.values()):
        report.summaries.append(arrays.make_arrays(directory, params, recording=recording))
        report.timings["arrays"] = time.perf_counter() - t
        t = time.perf_counter()
    report.summaries.append(qa.unit_qa(directory, params, recording=recording, pictures=pictures,
                                       jobs=n_workers(params.n_jobs) if pictures else 1))
    if pictures:  # the index was written before the QA pictures existed
        from blechrs import plots as plots_mod
        plots_mod.write_index(directory, sorted_electrodes(directory))
    report.timings["unit QA"] = time.perf_counter() - t
