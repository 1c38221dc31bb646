"""The one parameter object of blechrs, with its documented defaults.

Keys use blech_clust's names where blech_clust has them (``waveform_threshold``,
``spike_snapshot_before``, ``max_clusters`` ...), so a person who knows its ``.params`` file knows
this one. ``blechrs init`` writes ``<name>.params`` (JSON) with every key; people edit it; every
stage reads it through :func:`SortParams.load`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Intan RHD2000 amplifier resolution, the same for every file format.
MICROVOLTS_PER_BIT = 0.195


@dataclass
class SortParams:
    # --- recording -----------------------------------------------------------------------------
    sampling_rate: float = 30000.0
    """Samples per second; ``init`` copies it from the Intan header."""

    # --- referencing ---------------------------------------------------------------------------
    use_car: bool = True
    """Common average reference within each CAR group of the electrode layout."""

    # --- band-pass -----------------------------------------------------------------------------
    bandpass_lower_cutoff: float = 300.0
    bandpass_upper_cutoff: float = 3000.0
    bandpass_order: int = 2
    """Butterworth order of each edge (blech_clust: ``butter(2, [lo, hi], 'bandpass')``)."""

    # --- recording cutoff ("the headstage fell off", spec 4.2) ---------------------------------
    voltage_cutoff: float = 10000.0
    max_breach_rate: float = 1.0
    max_secs_above_cutoff: float = 60.0
    max_mean_breach_rate_persec: float = 100.0

    # --- threshold and detection ---------------------------------------------------------------
    waveform_threshold: float = 4.0
    """Detection threshold = waveform_threshold x noise, noise = median(|x - median|) / 0.6745
    (blech_clust: 5). Events between this and ``cluster_threshold`` are not clustered; they join
    a unit only through the template assignment (``template_assignment``), which also rejects the
    noise crossings among them."""
    cluster_threshold: float = 4.5
    """Events whose extremum exceeds cluster_threshold x noise (of their noise window) are
    clustered; a value at or below ``waveform_threshold`` clusters every event."""
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

    # --- waveforms -----------------------------------------------------------------------------
    spike_snapshot_before: float = 1.0
    """ms before the extremum (30 samples at 30 kHz)."""
    spike_snapshot_after: float = 1.5
    """ms after the extremum (45 samples at 30 kHz): 75-sample waveforms, extremum at index 30."""
    align_subsample: bool = True
    """Refine each spike's time and waveform by interpolation around the extremum."""

    # --- clustering ----------------------------------------------------------------------------
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

    # --- auto-sort -----------------------------------------------------------------------------
    auto_cluster: bool = True
    auto_post_process: bool = True
    cluster_count_threshold: int = 50
    """Fewest spikes a unit may have (blech_clust uses 2000 on 1 h recordings; blechrs scales by rate)."""
    min_firing_rate: float = 0.05
    """Hz; a cluster firing slower than this is not saved as a unit."""
    mahalanobis_merge_thresh: float = 3.0
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
    bimodal (core/templates.py); the result is saved as solution 1 (kind 'templates')."""
    ISI_violations_thresholds: list[float] = field(default_factory=lambda: [0.5, 2.0])
    """Largest % of ISIs below 1 ms and below 2 ms a unit may have (blech_clust's limits)."""
    min_snr: float = 3.0
    single_unit_max_contamination: float = 0.1
    fast_spiking_max_width_ms: float = 0.4
    """Trough-to-peak width below which a single unit is called fast spiking."""

    # --- arrays and QA -------------------------------------------------------------------------
    spike_array_durations: list[float] = field(default_factory=lambda: [2000.0, 5000.0])
    """ms before and after each trial onset."""
    spike_array_bin_ms: float = 1.0
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

    # --- execution -----------------------------------------------------------------------------
    n_jobs: int = 0
    """Worker threads/processes; 0 = all cores."""
    extract_memory_mb: float = 512.0
    """Waveforms held at once by one extraction pass. Electrodes are extracted in batches (one CAR
    group at a time, split when its expected waveforms, at 50 events/s, exceed this)."""

    # ---------------------------------------------------------------------------------------------
    def validate(self) -> "SortParams":
        nyq = self.sampling_rate / 2
        if not (0 < self.bandpass_lower_cutoff < self.bandpass_upper_cutoff < nyq):
            raise ValueError(
                f"band {self.bandpass_lower_cutoff}-{self.bandpass_upper_cutoff} Hz must satisfy "
                f"0 < low < high < Nyquist ({nyq:g} Hz)"
            )
        if self.spike_polarity not in ("negative", "positive", "both"):
            raise ValueError(f"spike_polarity must be negative, positive or both, not {self.spike_polarity!r}")
        if self.waveform_threshold <= 0:
            raise ValueError(f"waveform_threshold must be > 0, not {self.waveform_threshold}")
        if self.max_clusters < 2:
            raise ValueError(f"max_clusters must be >= 2, not {self.max_clusters}")
        if self.autosort_base_clusters < 2 or self.autosort_base_clusters == self.max_autosort_clusters:
            raise ValueError(f"autosort_base_clusters must be >= 2 and differ from max_autosort_clusters "
                             f"({self.max_autosort_clusters}, the Bayesian GMM's solution number), "
                             f"not {self.autosort_base_clusters}")
        if self.spike_snapshot_before <= 0 or self.spike_snapshot_after <= 0:
            raise ValueError("spike_snapshot_before and spike_snapshot_after must be > 0 ms")
        return self

    @property
    def samples_before(self) -> int:
        return int(round(self.spike_snapshot_before * self.sampling_rate / 1000.0))

    @property
    def samples_after(self) -> int:
        return int(round(self.spike_snapshot_after * self.sampling_rate / 1000.0))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "parameters") -> "SortParams":
        known = {f.name: f for f in dataclasses.fields(cls)}
        # blech_clust nests some keys; accept its layout too.
        flat: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(value, dict) and key in ("clustering_params", "auto_params", "qa_params"):
                flat.update({k: v for k, v in value.items() if not isinstance(v, dict)})
                if "auto_params" in value:
                    flat.update(value["auto_params"])
            else:
                flat[key] = value
        unknown = sorted(k for k in flat if k not in known)
        if unknown:
            raise ValueError(f"{source}: unknown parameter(s) {', '.join(unknown)}")
        kwargs = {}
        for key, value in flat.items():
            default = getattr(cls(), key)
            try:
                if isinstance(default, bool):
                    if not isinstance(value, bool):
                        raise TypeError
                    kwargs[key] = value
                elif isinstance(default, int):
                    kwargs[key] = int(value)
                elif isinstance(default, float):
                    kwargs[key] = float(value)
                elif isinstance(default, list):
                    kwargs[key] = [float(v) for v in value]
                else:
                    kwargs[key] = type(default)(value)
            except (TypeError, ValueError):
                raise ValueError(f"{source}: parameter {key} has a bad value {value!r}") from None
        return cls(**kwargs).validate()

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SortParams":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object of parameters")
        return cls.from_dict(data, source=str(path))

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically (temp file + rename) so a crash never leaves half a file."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        os.replace(tmp, path)
