"""The data model shared by every stage: an electrode's work and a sorted unit.

An :class:`ElectrodeWork` is one electrode's events, features, clustering solutions
(:class:`Solution`) and auto-sort's units, one type from extraction through clustering and
auto-sort to its work file (io.work_files) and back.

A :class:`Unit` is one type from the moment auto-sort or a sort-file row chooses it (``indices``
into its electrode's events), through the unit store (``times``, ``waveforms``, metrics) and back
out of it (``name``, ``hash``), so no stage converts between look-alike records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The keys of a unit chosen by auto-sort as kept in its electrode's work file.
_RECORD_KEYS = ("solution", "clusters", "single_unit", "regular_spiking", "fast_spiking", "metrics", "reason")


@dataclass
class Unit:
    """One sorted unit of one electrode."""

    electrode: int
    solution: int = -1
    """The clustering solution it was chosen from (1 = auto-sort's template assignment)."""
    clusters: tuple[int, ...] = ()
    """Its clusters in that solution (several: a merge)."""
    indices: np.ndarray | None = None
    """Its events among the electrode's events (sorted); None for a unit read from the store."""
    single_unit: bool = False
    regular_spiking: bool = False
    fast_spiking: bool = False
    label: str = ""
    """The sort-file notation of its clusters: "5", "1+5", "4 split 7: 0+2"."""
    source: str = ""
    """'autosort' or 'sort file row N'."""
    row: int | None = None
    """The sort-file row that chose it."""
    metrics: dict[str, Any] = field(default_factory=dict)
    """Quality metrics (core.metrics.unit_metrics); None or NaN where undefined."""
    reason: str = ""
    """Why auto-sort kept it."""
    times: np.ndarray | None = None
    """int64 sample indices of its spikes (once taken from the electrode's events, or read)."""
    waveforms: np.ndarray | None = None
    """n x samples, microvolts."""
    snr: float = 0.0
    name: str = ""
    """unitNNN once stored."""
    hash: str = ""

    @property
    def unit_type(self) -> str:
        """'r' (regular spiking), 'f' (fast spiking) or '' (the sort file's Type column)."""
        return "r" if self.regular_spiking else "f" if self.fast_spiking else ""

    def record(self) -> dict[str, Any]:
        """The JSON-able record of an auto-sort unit in a work file (its events are ``auto_labels``)."""
        return dict(solution=int(self.solution), clusters=[int(c) for c in self.clusters],
                    single_unit=bool(self.single_unit), regular_spiking=bool(self.regular_spiking),
                    fast_spiking=bool(self.fast_spiking), metrics=self.metrics, reason=self.reason)

    @classmethod
    def from_record(cls, record: dict[str, Any], electrode: int, indices: np.ndarray | None) -> "Unit":
        """An auto-sort unit back from its work-file record."""
        clusters = tuple(int(c) for c in record["clusters"])
        return cls(electrode=electrode, solution=int(record["solution"]), clusters=clusters, indices=indices,
                   single_unit=bool(record["single_unit"]), regular_spiking=bool(record["regular_spiking"]),
                   fast_spiking=bool(record["fast_spiking"]), label="+".join(map(str, clusters)),
                   source="autosort", metrics=record["metrics"], reason=str(record.get("reason", "")))


@dataclass
class Solution:
    """One clustering solution of an electrode: a label per event."""

    number: int
    """Solution number: K for a GMM, ``max_autosort_clusters`` for the Bayesian GMM, 1 for
    auto-sort's template assignment."""
    labels: np.ndarray
    """int64, one per event, 0..k-1; -1 = outlier (amplitude beyond wf_amplitude_sd_cutoff SD) or
    not clustered."""
    kind: str
    """'gmm', 'bgmm' or 'templates' (auto-sort's template assignment, schemes/autosort.py)."""

    @property
    def n_clusters(self) -> int:
        return int(self.labels.max()) + 1 if self.labels.size and self.labels.max() >= 0 else 0


@dataclass
class ElectrodeWork:
    """One electrode's work: what extraction, clustering and auto-sort made of it.

    An array is None where its stage has not run yet, or where the work file was read without it
    (``io.work_files.load_electrode(path, arrays=...)``; such a partial work is for reading, not for
    saving back). A value that is None was not recorded (the work file has no such key).
    """

    electrode: int
    # -- extraction (the engine's result) ------------------------------------------------------
    times: np.ndarray | None = None
    """int64 sample index of each event, sorted."""
    times_subsample: np.ndarray | None = None
    """float64, each event's time with sub-sample precision (its interpolated extremum)."""
    polarity: np.ndarray | None = None
    """int8, each event's sign (-1: a trough, +1: a peak)."""
    waveforms: np.ndarray | None = None
    """float32, n events x samples, microvolts."""
    noise: np.ndarray | None = None
    """float64, the noise (MAD / 0.6745) of each rolling-threshold window."""
    threshold: float = 0.0
    """The detection threshold, microvolts."""
    mad_val: float = 0.0
    cutoff_sample: int | None = None
    """Where extraction stopped (the recording cut off, e.g. the headstage fell off)."""
    n_edge_dropped: int = 0
    """Events too close to the recording's edges for a whole waveform."""
    dead: bool = False
    n_samples: int = 0
    """The recording's length in samples."""
    n_events: int = 0
    sampling_rate: float = 0.0
    stage: str = "extracted"
    """'extracted' or 'clustered'."""
    fp_extract: str | None = None
    """The fingerprint of the extraction parameters (resume)."""
    recording: str | None = None
    """The identity of the raw files it was extracted from (``Recording.identity``: resume)."""
    # -- clustering ----------------------------------------------------------------------------
    features: np.ndarray | None = None
    """n events x features."""
    clustered: np.ndarray | None = None
    """bool per event: whether the clustering saw it (the others are only template-assigned)."""
    solutions: dict[int, Solution] = field(default_factory=dict)
    """Every clustering solution by number, then auto-sort's template assignment (kind 'templates')."""
    status: str | None = None
    """'ok', or why the electrode was not clustered ('no events', 'dead channel', ...)."""
    fp_cluster: str | None = None
    # -- auto-sort -----------------------------------------------------------------------------
    units: list[Unit] | None = None
    """Auto-sort's units (their ``indices`` never overlap); None before auto-sort."""
    rejected: list[dict] | None = None
    """What auto-sort judged and did not keep as a unit, and why (core.judge_units.rejection:
    solution, clusters, events, reason); None before auto-sort."""
    fp_autosort: str | None = None

    def labels_of(self, solution: int) -> np.ndarray | None:
        """The labels of solution number ``solution``, or None if the electrode has no such solution."""
        sol = self.solutions.get(solution)
        return None if sol is None else sol.labels

    def auto_labels(self) -> np.ndarray:
        """int64 per event: the index of the auto-sort unit it belongs to, -1 = none."""
        out = np.full(len(self.times) if self.times is not None else self.n_events, -1, dtype=np.int64)
        for i, unit in enumerate(self.units or []):
            out[unit.indices] = i
        return out

    def duration_s(self, sampling_rate: float, or_last_event: bool = False) -> float:
        """The recording's length in s: where extraction stopped (0 when the work does not say, or,
        with ``or_last_event``, up to the electrode's last event)."""
        n = int(self.cutoff_sample or self.n_samples or 0)
        if n <= 0 and or_last_event and self.times is not None and len(self.times):
            n = int(self.times[-1]) + 1
        return n / sampling_rate if n > 0 else 0.0
