"""The one parameter tree of blechrs, with its documented defaults.

One dataclass per stage (:class:`ExtractParams`, :class:`ClusterParams`, :class:`AutosortParams`,
:class:`TrialsParams`, :class:`QualityParams`, :class:`RunParams`), gathered in :class:`SortParams`.
A stage's resume fingerprint hashes that stage's dataclass, so a new parameter invalidates exactly
the stage that reads it. Field names are blech_clust's where blech_clust has them
(``waveform_threshold``, ``spike_snapshot_before``, ``max_clusters`` ...): the ``.params`` file is
a flat JSON object of those names (:meth:`SortParams.from_flat` / :meth:`SortParams.to_flat`), so a
person who knows blech_clust's file knows this one, and older ``.params`` files keep loading.
No other module holds a parameter default.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from blechrs.errors import ParamsError

#: Keys older ``.params`` files may hold that no stage reads any more: accepted and dropped.
RETIRED_KEYS = ("auto_cluster", "auto_post_process", "mahalanobis_merge_thresh")
#: blech_clust nests some keys under these; their contents are read as flat keys.
_NESTED_KEYS = ("clustering_params", "auto_params", "qa_params")


@dataclass
class ExtractParams:
    """Referencing, band-pass, recording cutoff, threshold, detection and waveforms (the Rust engine)."""

    sampling_rate: float = 30000.0
    """Samples per second; ``init`` copies it from the Intan header."""
    use_car: bool = True
    """Common average reference within each CAR group of the electrode layout."""
    bandpass_lower_cutoff: float = 300.0
    bandpass_upper_cutoff: float = 3000.0
    bandpass_order: int = 2
    """Butterworth order of each edge (blech_clust: ``butter(2, [lo, hi], 'bandpass')``)."""
    # recording cutoff ("the headstage fell off", spec 4.2)
    voltage_cutoff: float = 10000.0
    max_breach_rate: float = 1.0
    max_secs_above_cutoff: float = 60.0
    max_mean_breach_rate_persec: float = 100.0
    waveform_threshold: float = 4.0
    """Detection threshold = waveform_threshold x noise, noise = median(|x - median|) / 0.6745
    (blech_clust: 5). Events between this and ``cluster_threshold`` are not clustered; they join
    a unit only through the template assignment (``template_assignment``), which also rejects the
    noise crossings among them."""
    use_rolling_threshold: bool = True
    rolling_threshold_window: float = 5.0
    """Seconds per noise window (blech_clust HEAD default)."""
    rolling_threshold_step: float = 5.0
    noise_subsample: int = 10
    """Noise statistics (each window's median and MAD, ``mad_val``, a global threshold) use every
    Nth filtered sample: 1 = every sample (exact, ~2x slower extraction). A 5 s window at 30 kHz
    keeps 15 000 samples with 10, so thresholds scatter ~1 % around the exact ones (shorter
    windows or lower rates scatter more, as 1 / sqrt(samples kept))."""
    spike_polarity: str = "both"
    """'negative', 'positive' or 'both'."""
    dead_time_ms: float = 0.5
    """After an event, no new event on the same electrode for this long: one spike, one event."""
    spike_snapshot_before: float = 1.0
    """ms before the extremum (30 samples at 30 kHz)."""
    spike_snapshot_after: float = 1.5
    """ms after the extremum (45 samples at 30 kHz): 75-sample waveforms, extremum at index 30."""
    align_subsample: bool = True
    """Refine each spike's time and waveform by interpolation around the extremum."""

    @property
    def samples_before(self) -> int:
        return int(round(self.spike_snapshot_before * self.sampling_rate / 1000.0))

    @property
    def samples_after(self) -> int:
        return int(round(self.spike_snapshot_after * self.sampling_rate / 1000.0))

    def validate(self, source: str) -> None:
        nyq = self.sampling_rate / 2
        if not (0 < self.bandpass_lower_cutoff < self.bandpass_upper_cutoff < nyq):
            raise ParamsError(
                f"{source}: band {self.bandpass_lower_cutoff}-{self.bandpass_upper_cutoff} Hz must satisfy "
                f"0 < low < high < Nyquist ({nyq:g} Hz)"
            )
        if self.spike_polarity not in ("negative", "positive", "both"):
            raise ParamsError(f"{source}: spike_polarity must be negative, positive or both, "
                              f"not {self.spike_polarity!r}")
        if self.waveform_threshold <= 0:
            raise ParamsError(f"{source}: waveform_threshold must be > 0, not {self.waveform_threshold}")
        if self.spike_snapshot_before <= 0 or self.spike_snapshot_after <= 0:
            raise ParamsError(f"{source}: spike_snapshot_before and spike_snapshot_after must be > 0 ms")


@dataclass
class ClusterParams:
    """Features and the clustering solutions of each electrode."""

    max_clusters: int = 7
    """GMM solutions are fitted for K = 2 .. max_clusters."""
    num_iter: int = 1000
    thresh: float = 1e-3
    """EM convergence tolerance (change of the mean log-likelihood per event). blech_clust uses
    1e-4; 1e-3 halves the clustering time with the same ground-truth accuracy (docs/benchmarks.md)."""
    num_restarts: int = 1
    """GMM restarts per solution. blech_clust uses 10; on the ground-truth benchmark 10 restarts
    sorted no better than 1 (docs/benchmarks.md, Accuracy) at 10x the clustering time."""
    max_autosort_clusters: int = 10
    """Components of the Dirichlet-process Bayesian GMM (saved as solution ``max_autosort_clusters``)."""
    autosort_base_clusters: int = 9
    """Auto-sort starts from the GMM with this many clusters (over-clustered on purpose: auto-sort
    and the template step merge what is one unit, and cannot undo a lump). Fitted and saved as
    solution ``autosort_base_clusters`` when above ``max_clusters``. 9 instead of 7: seed 1 at
    600 s 21 -> 23/66 well detected (docs/benchmarks.md)."""
    max_training_events: int = 10000
    """Clustering fits on at most this many events (drawn without replacement), then labels all."""
    wf_amplitude_sd_cutoff: float = 3.0
    random_seed: int = 0
    cluster_threshold: float = 4.5
    """Events whose extremum exceeds cluster_threshold x noise (of their noise window) are
    clustered; a value at or below ``waveform_threshold`` clusters every event."""

    def validate(self, source: str) -> None:
        if self.max_clusters < 2:
            raise ParamsError(f"{source}: max_clusters must be >= 2, not {self.max_clusters}")
        if self.autosort_base_clusters < 2 or self.autosort_base_clusters == self.max_autosort_clusters:
            raise ParamsError(f"{source}: autosort_base_clusters must be >= 2 and differ from "
                              f"max_autosort_clusters ({self.max_autosort_clusters}, the Bayesian GMM's "
                              f"solution number), not {self.autosort_base_clusters}")


@dataclass
class AutosortParams:
    """Which clusters become units, and the template assignment of every event."""

    cluster_count_threshold: int = 50
    """Fewest spikes a unit may have (blech_clust uses 2000 on 1 h recordings; blechrs scales by rate)."""
    min_firing_rate: float = 0.05
    """Hz; a cluster firing slower than this is not saved as a unit."""
    autosort_merge_dprime: float = 3.5
    """Auto-sort merges two clusters when their discriminant separation d' is below this ..."""
    autosort_merge_valley: float = 0.5
    """... and their discriminant projection has no valley deeper than this fraction of its peaks."""
    autosort_max_l_ratio: float = 1.0
    """A cluster whose L-ratio (contamination by its neighbours in feature space) exceeds this is
    a mixture, not saved as a unit."""
    template_assignment: bool = True
    """After auto-sort picks its units, re-assign every event to a unit or to noise by the units'
    mean waveforms and the electrode's noise covariance, and split units whose amplitudes are
    bimodal (core/assign_templates.py, core/split_units.py); saved as solution 1 (kind 'templates')."""
    ISI_violations_thresholds: list[float] = field(default_factory=lambda: [0.5, 2.0])
    """Largest % of ISIs below 1 ms and below 2 ms a unit may have (blech_clust's limits)."""
    min_snr: float = 3.0
    single_unit_max_contamination: float = 0.1
    fast_spiking_max_width_ms: float = 0.4
    """Trough-to-peak width below which a single unit is called fast spiking."""

    def validate(self, source: str) -> None:
        if len(self.ISI_violations_thresholds) != 2:
            raise ParamsError(f"{source}: ISI_violations_thresholds must be two numbers (% of ISIs "
                              f"under 1 ms and under 2 ms), not {self.ISI_violations_thresholds}")


@dataclass
class TrialsParams:
    """Trial-aligned spike-train arrays."""

    spike_array_durations: list[float] = field(default_factory=lambda: [2000.0, 5000.0])
    """ms before and after each trial onset."""
    spike_array_bin_ms: float = 1.0
    compact_spike_arrays: bool = False
    """False (default): ``spike_array`` holds blech_clust's 0/1 values (a spike in the bin or not) as
    float64, gzip-compressed: every HDF5 reader opens it (h5py, MATLAB, h5dump) and arithmetic on it
    never wraps. True: spike counts as uint8 compressed with blosc:lz4, ~4x faster to write and
    smaller, but only PyTables (or the HDF5 blosc plugin) can read it."""


@dataclass
class QualityParams:
    """Unit QA (similarity, drift) and raw-data QA."""

    similarity_cutoff: float = 50.0
    """% of one unit's spikes coinciding with another unit's above which the pair is reported."""
    similarity_window_ms: float = 1.0
    """Two spikes coincide when at most this far apart."""
    similarity_waveform_count_cutoff: float = 10.0
    """A reported pair has "similar counts" when (max - min) / max of their spike counts is <= this %."""
    n_trial_bins: int = 4
    """Drift check: the session's trials are cut into this many consecutive groups (quarters)."""
    drift_baseline_ms: float = 1000.0
    """Drift check: spikes counted in [-drift_baseline_ms, 0) ms before each trial onset ..."""
    drift_post_ms: float = 2500.0
    """... and in [0, drift_post_ms) ms after it."""
    drift_alpha: float = 0.05
    """Drift check: a unit is flagged when the trial-group effect has p below this / 2 in either
    window (baseline or response)."""
    bridged_channel_threshold: float = 0.9
    n_corr_samples: int = 10000


@dataclass
class RunParams:
    """How the work is executed (never changes a sort)."""

    n_jobs: int = 0
    """Worker threads/processes; 0 = all cores."""
    extract_memory_mb: float = 512.0
    """Waveforms held at once by one extraction pass. Electrodes are extracted in batches (one CAR
    group at a time, split when its expected waveforms, at 50 events/s, exceed this)."""


STAGES = ("extract", "cluster", "autosort", "trials", "quality", "run")


@dataclass
class SortParams:
    """Every parameter of a run, one dataclass per stage."""

    extract: ExtractParams = field(default_factory=ExtractParams)
    cluster: ClusterParams = field(default_factory=ClusterParams)
    autosort: AutosortParams = field(default_factory=AutosortParams)
    trials: TrialsParams = field(default_factory=TrialsParams)
    quality: QualityParams = field(default_factory=QualityParams)
    run: RunParams = field(default_factory=RunParams)

    @property
    def sampling_rate(self) -> float:
        return self.extract.sampling_rate

    def validate(self, source: str = "parameters") -> "SortParams":
        for name in STAGES:
            check = getattr(getattr(self, name), "validate", None)
            if check is not None:
                check(source)
        return self

    # --- the flat (blech_clust) form, used only by the .params file -----------------------------
    def to_flat(self) -> dict[str, Any]:
        """Every parameter under its blech_clust key, stage after stage."""
        flat: dict[str, Any] = {}
        for name in STAGES:
            flat.update(dataclasses.asdict(getattr(self, name)))
        return flat

    @classmethod
    def from_flat(cls, data: Mapping[str, Any], source: str = "parameters") -> "SortParams":
        """A tree from flat keys (a ``.params`` file's object); missing keys take their defaults."""
        flat = _flatten_nested(data)
        unknown = sorted(k for k in flat if k not in _STAGE_OF and k not in RETIRED_KEYS)
        if unknown:
            raise ParamsError(f"{source}: unknown parameter(s) {', '.join(unknown)}")
        tree = cls()
        for key, value in flat.items():
            if key in RETIRED_KEYS:
                continue
            stage = getattr(tree, _STAGE_OF[key])
            setattr(stage, key, _coerce(key, getattr(stage, key), value, source))
        return tree.validate(source)

    def replace(self, **flat: Any) -> "SortParams":
        """A copy with some parameters changed, by their flat names (``replace(max_clusters=4)``)."""
        return SortParams.from_flat(self.to_flat() | flat)

    def fingerprint(self, stage: str, extra: Any = None) -> str:
        """A short hash of one stage's parameters (and ``extra``): its results are reused on resume
        only while this is unchanged."""
        from hashlib import sha256

        text = json.dumps(dataclasses.asdict(getattr(self, stage)) | {"__extra__": extra, "__v__": WORK_VERSION},
                          sort_keys=True)
        return sha256(text.encode()).hexdigest()[:16]


#: Bumped when the meaning of a work file changes, so older work files are redone.
WORK_VERSION = 1

_STAGE_OF: dict[str, str] = {}
for _stage, _cls in zip(STAGES, (ExtractParams, ClusterParams, AutosortParams, TrialsParams, QualityParams,
                                 RunParams)):
    for _f in dataclasses.fields(_cls):
        assert _f.name not in _STAGE_OF, f"parameter {_f.name} is in two stages"
        _STAGE_OF[_f.name] = _stage


def _flatten_nested(data: Mapping[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and key in _NESTED_KEYS:
            flat.update({k: v for k, v in value.items() if not isinstance(v, dict)})
            if "auto_params" in value:
                flat.update(value["auto_params"])
        else:
            flat[key] = value
    return flat


def _coerce(key: str, default: Any, value: Any, source: str) -> Any:
    try:
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise TypeError
            return value
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, list):
            return [float(v) for v in value]
        return type(default)(value)
    except (TypeError, ValueError):
        raise ParamsError(f"{source}: parameter {key} has a bad value {value!r}") from None
