"""The whole job of one electrode, composed from the core steps: extracted events -> features ->
clustering solutions -> auto-sort's units. Pure functions of an electrode's work
(``model.ElectrodeWork``, as in its work file) and the parameters: nothing here reads or writes
the folder, except ``sort_electrode``, which reads the recording to extract one electrode (for
executors that run electrodes elsewhere, a cluster).

Every fit is seeded and BLAS runs on one thread, so an electrode sorts the same wherever it runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Any, Callable, Sequence

import numpy as np

from blechrs import kernels
from blechrs.core import metrics
from blechrs.core.cluster import cluster_electrode
from blechrs.core.features import compute_features
from blechrs.core.matched_filter import matched_filter_events
from blechrs.core.rows import rows
from blechrs.io import layout, paths
from blechrs.io.params_file import load_params
from blechrs.io.qa_files import jsonable
from blechrs.io.recording import open_recording
from blechrs.model import ElectrodeWork, Solution, Unit
from blechrs.params import SortParams
from blechrs.schemes.autosort import autosort_electrode


def quiet_reason(work: ElectrodeWork, params: SortParams) -> str | None:
    """Why an electrode is not clustered (None: it is)."""
    n = len(work.times)
    if work.dead:
        return "dead channel"
    if n == 0:
        return "no events"
    if n < params.cluster.max_clusters:
        return f"{n} events, fewer than max_clusters ({params.cluster.max_clusters})"
    # No cluster of it could become a unit, and on short recordings such electrodes were most of
    # the clustering's time (their clustering fingerprint says so: params.cluster_fingerprint).
    return too_few_events(n, params) or None


def too_few_events(n_events: int, params: SortParams) -> str:
    """Why an electrode is neither clustered nor has solution pictures ("" when it has): fewer
    events than ``cluster_count_threshold``, the fewest a unit may have."""
    least = int(params.autosort.cluster_count_threshold)
    return f"{n_events} events, fewer than a unit needs (cluster_count_threshold {least})" if n_events < least else ""


def unit_metrics(work: ElectrodeWork, indices: np.ndarray, params: SortParams) -> dict[str, float]:
    """blechrs's quality metrics of one unit (core.metrics), made JSON-friendly."""
    member = np.zeros(len(work.times), dtype=bool)
    member[indices] = True
    peak = min(params.extract.samples_before, work.waveforms.shape[1] - 1)
    m = metrics.unit_metrics(work.waveforms, work.times, work.features, member, params.extract.sampling_rate,
                             work.mad_val, work.duration_s(params.extract.sampling_rate), peak,
                             threshold_sds=float(params.extract.waveform_threshold))
    return jsonable(m)


@contextlib.contextmanager
def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits  # scikit-learn's own dependency
    except ImportError:  # pragma: no cover - scikit-learn requires it
        yield
        return
    with threadpool_limits(limits=1):
        yield


def autosort_work(work: ElectrodeWork, params: SortParams) -> ElectrodeWork:
    """See ``_autosort_work``; one BLAS thread (see ``cluster_work``)."""
    with _one_blas_thread():
        return _autosort_work(work, params)


def _autosort_work(work: ElectrodeWork, params: SortParams) -> ElectrodeWork:
    """Auto-sort one clustered electrode: its ``units`` (their events never overlap) and, when
    auto-sort assigned events to templates, that solution (kind 'templates'). Returns a new work."""
    # A template assignment saved by an earlier auto-sort is redone (or dropped) here.
    solutions = {k: sol for k, sol in work.solutions.items() if sol.kind != "templates"}
    auto_labels = np.full(len(work.times), -1, dtype=np.int64)
    units: list[Unit] = []
    rejected: list[dict] = []
    if work.status in (None, "ok"):
        found = dict(solutions)
        choices = autosort_electrode(
            work.waveforms, work.times, work.features, found, params,
            sampling_rate=params.extract.sampling_rate, mad_val=work.mad_val,
            duration_s=work.duration_s(params.extract.sampling_rate), clustered=work.clustered,
            rejected=rejected)
        for number, sol in found.items():
            if sol.kind == "templates":  # added by auto-sort
                solutions[number] = Solution(number, np.asarray(sol.labels, dtype=np.int64), sol.kind)
        for unit in choices:
            members = np.flatnonzero(np.isin(found[unit.solution].labels, unit.clusters))
            indices = members[auto_labels[members] < 0]  # units never share events
            if len(indices) == 0:
                continue
            auto_labels[indices] = len(units)
            if len(indices) < len(members):  # it lost events to an earlier unit
                unit.metrics = unit_metrics(work, indices, params)
            else:
                unit.metrics = jsonable(unit.metrics)
            # as it reads back from the work file
            units.append(Unit.from_record(unit.record(), work.electrode, indices))
    return dataclasses.replace(work, solutions=solutions, units=units, rejected=rejected,
                               fp_autosort=params.fingerprint("autosort"))


def events_to_cluster(work: ElectrodeWork, params: SortParams) -> np.ndarray:
    """Which events the clustering sees: extremum beyond ``cluster_threshold`` x the noise of the
    event's noise window (the smaller ones are only template-assigned). Every event when that
    leaves fewer than ``max_clusters`` or the threshold is at or below detection."""
    n = len(work.times)
    everything = np.ones(n, dtype=bool)
    noise = np.atleast_1d(np.asarray(work.noise if work.noise is not None else [], dtype=np.float64))
    if n == 0 or params.cluster.cluster_threshold <= params.extract.waveform_threshold or noise.size == 0:
        return everything
    step = max(1, int(round(params.extract.rolling_threshold_step * params.extract.sampling_rate)))
    window = np.minimum(np.asarray(work.times) // step, noise.size - 1) if params.extract.use_rolling_threshold \
        else np.zeros(n, dtype=np.int64)
    peak = min(params.extract.samples_before, work.waveforms.shape[1] - 1)
    big = np.abs(rows(work.waveforms[:, peak], dtype=work.waveforms.dtype)) >= params.cluster.cluster_threshold * noise[window]
    return big if big.sum() >= params.cluster.max_clusters else everything


def cluster_work(work: ElectrodeWork, params: SortParams) -> ElectrodeWork:
    """Features, every clustering solution and the auto-sort choices of one extracted electrode.
    Solutions label only the events of ``events_to_cluster`` (the others -1). Returns a new work.

    BLAS runs on one thread here, as in the worker processes: a multi-threaded BLAS sums in
    another order, and the labels would depend on where the electrode was sorted."""
    with _one_blas_thread():
        return _cluster_work(work, params)


def _cluster_work(work: ElectrodeWork, params: SortParams) -> ElectrodeWork:
    reason = quiet_reason(work, params)
    features = compute_features(work.waveforms, params)
    clustered = events_to_cluster(work, params)
    solutions: dict[int, Solution] = {}
    if reason is None:
        idx = np.flatnonzero(clustered)
        for number, sol in sorted(cluster_electrode(features[idx], params).items()):
            labels = np.full(len(clustered), -1, dtype=np.int64)
            labels[idx] = sol.labels
            solutions[number] = Solution(number, labels, sol.kind)
    out = dataclasses.replace(work, features=features, clustered=clustered, solutions=solutions,
                              status="ok" if reason is None else reason, stage="clustered",
                              fp_cluster=params.cluster_fingerprint(len(work.times)))
    return _autosort_work(out, params)


def matched_filter_work(work: ElectrodeWork, trace: np.ndarray, params: SortParams) -> ElectrodeWork:
    """The matched-filter pass of one auto-sorted electrode (``params.autosort.matched_filter_z``,
    core/matched_filter.py): detections of its units' filters on ``trace`` (its filtered,
    referenced signal) that are not events yet join as events the clustering did not see, and
    auto-sort runs again. Returns a new work (the same when off or nothing is found)."""
    z = float(params.autosort.matched_filter_z)
    if z <= 0 or not work.units or work.status not in (None, "ok"):
        return work
    fs = float(params.extract.sampling_rate)
    half = max(1, int(round(params.extract.dead_time_ms * fs / 1000.0)))
    with _one_blas_thread():
        t, sub, pol, wv = matched_filter_events(trace, work.times, work.waveforms, work.auto_labels(),
                                                params.extract.samples_before, fs, work.duration_s(fs), z, half,
                                                threads=params.run.n_jobs)
        if not len(t):
            return work
        n_old = len(work.times)
        order = np.argsort(np.concatenate([work.times, t]), kind="stable")

        def joined(old, new):
            return None if old is None else np.concatenate([np.asarray(old), np.asarray(new, dtype=np.asarray(old).dtype)])[order]

        clustered = work.clustered if work.clustered is not None else np.ones(n_old, dtype=bool)
        waveforms = joined(work.waveforms, wv)
        solutions = {k: Solution(k, joined(s.labels, np.full(len(t), -1)), s.kind) for k, s in work.solutions.items()}
        out = dataclasses.replace(
            work, times=joined(work.times, t), times_subsample=joined(work.times_subsample, sub),
            polarity=joined(work.polarity, pol), waveforms=waveforms, n_events=n_old + len(t),
            clustered=joined(clustered, np.zeros(len(t), dtype=bool)), solutions=solutions,
            features=compute_features(waveforms, params))
        return _autosort_work(out, params)


def work_from_extraction(d: dict[str, Any], params: SortParams, n_samples: int) -> ElectrodeWork:
    """One engine result (``extract_events``) -> the work of an extracted electrode."""
    times = np.asarray(d["times"], dtype=np.int64)
    return ElectrodeWork(
        electrode=int(d["electrode"]), times=times, times_subsample=np.asarray(d["times_subsample"]),
        polarity=np.asarray(d["polarity"]), waveforms=np.asarray(d["waveforms"], dtype=np.float32),
        noise=np.asarray(d["noise"]), threshold=float(d.get("threshold", 0.0)),
        mad_val=float(d.get("mad_val", 0.0)), cutoff_sample=int(d.get("cutoff_sample", n_samples)),
        n_edge_dropped=int(d.get("n_edge_dropped", 0)), dead=bool(d.get("dead", False)),
        n_samples=int(n_samples), n_events=len(times), sampling_rate=float(params.extract.sampling_rate),
        stage="extracted", fp_extract=params.fingerprint("extract"))


def extract_events(recording, electrodes: Sequence[int], groups: Sequence[int], params: SortParams,
                   progress: Callable | None = None, spill: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The engine's extraction (CAR, band-pass, threshold, detection, waveforms) of ``electrodes``
    (with ``spill``, a file prefix per electrode, the events go to files: see ``kernels``)."""
    return kernels.extract_electrodes(recording.source, list(electrodes), list(groups), params.extract,
                                      threads=params.run.n_jobs, progress=progress, scale=recording.gain,
                                      spill=spill)


def sort_electrode(recording_dir: str | os.PathLike, electrode: int, params: SortParams | None = None
                   ) -> ElectrodeWork:
    """The whole job of one electrode, as a pure function: extract (referenced against its CAR
    group), features, clustering solutions, auto-sort. Returns its work; writes nothing."""
    params = params or load_params(paths.params_path(recording_dir))
    rec = open_recording(recording_dir)
    groups = layout.car_groups(layout.load_layout(recording_dir), rec.n_channels, params.extract.use_car)
    (result,) = extract_events(rec, [electrode], groups, params)
    return cluster_work(work_from_extraction(result, params, rec.n_samples), params)
