"""The whole job of one electrode, composed from the core steps: extracted events -> features ->
clustering solutions -> auto-sort's units. Pure functions of an electrode's work (a dict of arrays
and values, as in its work file) and the parameters: nothing here reads or writes the folder, except
``sort_electrode``, which reads the recording to extract one electrode (for executors that run
electrodes elsewhere, a cluster).

Every fit is seeded and BLAS runs on one thread, so an electrode sorts the same wherever it runs.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Sequence

import numpy as np

from blechrs import kernels
from blechrs.core import metrics
from blechrs.core.cluster import Solution, cluster_electrode
from blechrs.core.features import compute_features
from blechrs.io import layout, paths
from blechrs.io.params_file import load_params
from blechrs.io.qa_files import jsonable
from blechrs.io.recording import open_recording
from blechrs.params import SortParams
from blechrs.schemes.autosort import autosort_electrode


def quiet_reason(data: dict[str, Any], params: SortParams) -> str | None:
    n = len(data["times"])
    if bool(data.get("dead", False)):
        return "dead channel"
    if n == 0:
        return "no events"
    if n < params.cluster.max_clusters:
        return f"{n} events, fewer than max_clusters ({params.cluster.max_clusters})"
    return None


def duration_s(data: dict[str, Any], sampling_rate: float, or_last_event: bool = False) -> float:
    """The recording's length in s: where extraction stopped (0 when the work file does not say,
    or, with ``or_last_event``, up to the electrode's last event)."""
    n = int(data.get("cutoff_sample") or data.get("n_samples") or 0)
    if n <= 0 and or_last_event and len(data["times"]):
        n = int(data["times"][-1]) + 1
    return n / sampling_rate if n > 0 else 0.0


def unit_metrics(data: dict[str, Any], indices: np.ndarray, params: SortParams) -> dict[str, float]:
    """blechrs's quality metrics of one unit (core.metrics), made JSON-friendly."""
    member = np.zeros(len(data["times"]), dtype=bool)
    member[indices] = True
    peak = min(params.extract.samples_before, data["waveforms"].shape[1] - 1)
    m = metrics.unit_metrics(data["waveforms"], data["times"], data["features"], member,
                             params.extract.sampling_rate, float(data.get("mad_val", 0.0)), duration_s(data, params.extract.sampling_rate),
                             peak)
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


def autosort_data(data: dict[str, Any], params: SortParams) -> dict[str, Any]:
    """See ``_autosort_data``; one BLAS thread (see ``cluster_data``)."""
    with _one_blas_thread():
        return _autosort_data(data, params)


def _autosort_data(data: dict[str, Any], params: SortParams) -> dict[str, Any]:
    """Auto-sort one clustered electrode: adds ``auto_labels`` (unit index per event, -1 = none)
    and ``auto_units`` (one dict per unit: solution, clusters, single/RS/FS, metrics)."""
    out = dict(data)
    n = len(data["times"])
    auto_labels = np.full(n, -1, dtype=np.int64)
    units: list[dict[str, Any]] = []
    if data.get("status", "ok") == "ok":
        solutions = {int(k.split("_")[1]): Solution(int(k.split("_")[1]), data[k],
                                                             data["solution_kinds"][k.split("_")[1]])
                     for k in data if k.startswith("labels_")}
        # A template assignment saved by an earlier auto-sort is redone (or dropped) here.
        for number in [k for k, sol in solutions.items() if sol.kind == "templates"]:
            del solutions[number]
            out.pop(f"labels_{number}", None)
        kinds = {k: v for k, v in data["solution_kinds"].items() if v != "templates"}
        choices = autosort_electrode(
            data["waveforms"], data["times"], data["features"], solutions, params,
            sampling_rate=params.extract.sampling_rate, mad_val=float(data.get("mad_val", 0.0)),
            duration_s=duration_s(data, params.extract.sampling_rate), clustered=data.get("clustered"))
        for number, sol in solutions.items():
            if sol.kind == "templates":  # added by auto-sort
                out[f"labels_{number}"] = np.asarray(sol.labels, dtype=np.int64)
                kinds[str(number)] = sol.kind
        out["solution_kinds"] = kinds
        for unit in choices:
            members = np.flatnonzero(np.isin(solutions[unit.solution].labels, unit.clusters))
            indices = members[auto_labels[members] < 0]  # units never share events
            if len(indices) == 0:
                continue
            auto_labels[indices] = len(units)
            unit.electrode, unit.indices = int(data["electrode"]), indices
            if len(indices) < len(members):  # it lost events to an earlier unit
                unit.metrics = unit_metrics(data, indices, params)
            else:
                unit.metrics = jsonable(unit.metrics)
            units.append(unit.record())
    out["auto_labels"] = auto_labels
    out["auto_units"] = units
    out["fp_autosort"] = params.fingerprint("autosort")
    return out


def events_to_cluster(data: dict[str, Any], params: SortParams) -> np.ndarray:
    """Which events the clustering sees: extremum beyond ``cluster_threshold`` x the noise of the
    event's noise window (the smaller ones are only template-assigned). Every event when that
    leaves fewer than ``max_clusters`` or the threshold is at or below detection."""
    n = len(data["times"])
    everything = np.ones(n, dtype=bool)
    noise = np.atleast_1d(np.asarray(data.get("noise", []), dtype=np.float64))
    if n == 0 or params.cluster.cluster_threshold <= params.extract.waveform_threshold or noise.size == 0:
        return everything
    step = max(1, int(round(params.extract.rolling_threshold_step * params.extract.sampling_rate)))
    window = np.minimum(np.asarray(data["times"]) // step, noise.size - 1) if params.extract.use_rolling_threshold \
        else np.zeros(n, dtype=np.int64)
    peak = min(params.extract.samples_before, data["waveforms"].shape[1] - 1)
    big = np.abs(np.asarray(data["waveforms"])[:, peak]) >= params.cluster.cluster_threshold * noise[window]
    return big if big.sum() >= params.cluster.max_clusters else everything


def cluster_data(data: dict[str, Any], params: SortParams) -> dict[str, Any]:
    """Features, every clustering solution and the auto-sort choices of one extracted electrode.
    Solutions label only the events of ``events_to_cluster`` (the others -1).

    BLAS runs on one thread here, as in the worker processes: a multi-threaded BLAS sums in
    another order, and the labels would depend on where the electrode was sorted."""
    with _one_blas_thread():
        return _cluster_data(data, params)


def _cluster_data(data: dict[str, Any], params: SortParams) -> dict[str, Any]:
    out = {k: v for k, v in data.items() if not k.startswith("labels_")}
    reason = quiet_reason(data, params)
    out["features"] = compute_features(data["waveforms"], params)
    out["solution_kinds"] = {}
    clustered = events_to_cluster(data, params)
    out["clustered"] = clustered
    if reason is None:
        idx = np.flatnonzero(clustered)
        solutions = cluster_electrode(out["features"][idx], params)
        for number, sol in sorted(solutions.items()):
            labels = np.full(len(clustered), -1, dtype=np.int64)
            labels[idx] = sol.labels
            out[f"labels_{number}"] = labels
            out["solution_kinds"][str(number)] = sol.kind
    out["status"] = "ok" if reason is None else reason
    out["stage"] = "clustered"
    out["fp_cluster"] = params.fingerprint("cluster")
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
    data["sampling_rate"] = float(params.extract.sampling_rate)
    data["stage"] = "extracted"
    data["fp_extract"] = params.fingerprint("extract")
    return data


def extract_events(recording, electrodes: Sequence[int], groups: Sequence[int], params: SortParams,
                   progress: Callable | None = None) -> list[dict[str, Any]]:
    """The engine's extraction (CAR, band-pass, threshold, detection, waveforms) of ``electrodes``."""
    return kernels.extract_electrodes(recording.source, list(electrodes), list(groups), params.extract,
                                      threads=params.run.n_jobs, progress=progress)


def sort_electrode(recording_dir: str | os.PathLike, electrode: int, params: SortParams | None = None
                   ) -> dict[str, Any]:
    """The whole job of one electrode, as a pure function: extract (referenced against its CAR
    group), features, clustering solutions, auto-sort. Returns the work-file dict; writes nothing."""
    params = params or load_params(paths.params_path(recording_dir))
    rec = open_recording(recording_dir)
    groups = layout.car_groups(layout.load_layout(recording_dir), rec.n_channels, params.extract.use_car)
    (result,) = extract_events(rec, [electrode], groups, params)
    return cluster_data(extraction_to_data(result, params, rec.n_samples), params)
