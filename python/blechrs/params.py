"""The one parameter tree of blechrs, with its documented defaults.

One dataclass per stage (:class:`ExtractParams`, :class:`ClusterParams`, :class:`AutosortParams`,
:class:`TrialsParams`, :class:`QualityParams`, :class:`RunParams`), gathered in :class:`SortParams`.
A stage's resume fingerprint hashes that stage's dataclass, so a new parameter invalidates exactly
the stage that reads it. Field names are blech_clust's where blech_clust has them
(``waveform_threshold``, ``spike_snapshot_before``, ``max_clusters`` ...): the ``.params`` file is
a flat JSON object of those names (:meth:`SortParams.from_flat` / :meth:`SortParams.to_flat`), so a
person who knows blech_clust's file knows this one, and older ``.params`` files keep loading.
No other module holds a parameter default, nor a parameter's range: each field is declared with
its default and its :class:`Rule` (``rule(default, low=..., high=...)``), and
:meth:`SortParams.validate` checks every field at load, before any work, then what spans fields
(the band below Nyquist ...). A bad value is refused in one line naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, cast

from blechrs.errors import ParamsError

#: Keys older ``.params`` files may hold that no stage reads any more: accepted and dropped.
RETIRED_KEYS = ("auto_cluster", "auto_post_process", "mahalanobis_merge_thresh")
#: blech_clust nests some keys under these; their contents are read as flat keys.
_NESTED_KEYS = ("clustering_params", "auto_params", "qa_params")


@dataclass(frozen=True)
class Rule:
    """The type and range a parameter must have, checked when a ``.params`` file is loaded.

    ``kind``: bool, int, float, str or list (a list of ``length`` floats, each in the range);
    ``low``/``high``: inclusive bounds unless ``above``/``below`` (exclusive); ``choices``: the
    allowed strings; ``why``: said in the message when the bound keeps memory or time sane."""

    kind: type
    low: float | None = None
    high: float | None = None
    above: float | None = None
    below: float | None = None
    choices: tuple[str, ...] = ()
    length: int | None = None
    why: str = ""

    def describe(self) -> str:
        if self.kind is bool:
            return "true or false"
        if self.kind is str:
            return " or ".join(repr(c) for c in self.choices)
        noun = {int: "an integer", float: "a number", list: f"a list of {self.length} numbers, each"}[self.kind]
        bounds = [(">=", self.low), (">", self.above), ("<=", self.high), ("<", self.below)]
        text = " and ".join(f"{op} {_number(x)}" for op, x in bounds if x is not None)
        return f"{noun} {text}".strip() + (f" ({self.why})" if self.why else "")

    def coerce(self, value: Any) -> Any:
        """``value`` in this rule's type when it is one losslessly (7.0 -> 7, 3 -> 3.0), else as it is."""
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if self.kind is int and number and (isinstance(value, int) or value.is_integer()):
            return int(value)
        if self.kind is float and number:
            return float(value)
        if self.kind is list and isinstance(value, (list, tuple)):
            return [Rule(float).coerce(v) for v in value]
        return value

    def accepts(self, value: Any) -> bool:
        if self.kind is list:
            return (isinstance(value, list) and (self.length is None or len(value) == self.length)
                    and all(Rule(float, self.low, self.high, self.above, self.below).accepts(v) for v in value))
        if type(value) is not self.kind:  # bool is not an int here, nor an int a float: coerce first
            return False
        if self.kind is bool:
            return True
        if self.kind is str:
            return value in self.choices
        x = cast(float, value)  # an int or a float: kind is int or float here
        return ((self.kind is int or math.isfinite(x)) and (self.low is None or x >= self.low) and (self.high is None or x <= self.high)
                and (self.above is None or x > self.above) and (self.below is None or x < self.below))


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def rule(default: Any, kind: type | None = None, **bounds: Any) -> Any:
    """A dataclass field with its default and its :class:`Rule` (``metadata["rule"]``)."""
    r = Rule(kind or type(default), **bounds)
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"rule": r})
    return field(default=default, metadata={"rule": r})


#: The waveform window is bounded: memory and time grow with events x window, and a spike lasts ~2 ms.
_WINDOW_MS: dict[str, Any] = dict(above=0.0, high=20.0, why="ms; a spike lasts ~2 ms, and memory grows with the window")


def check_rules(stage: Any, source: str) -> None:
    """Every field of a stage dataclass against its rule: ``<source>: <key> must be <rule>, not <value>``."""
    for f in dataclasses.fields(stage):
        r: Rule | None = f.metadata.get("rule")
        value = getattr(stage, f.name)
        if r is not None and not r.accepts(value):
            shown = json.dumps(value, default=repr)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise ParamsError(f"{source}: {f.name} must be {r.describe()}, not {shown}")


@dataclass
class ExtractParams:
    """Referencing, band-pass, recording cutoff, threshold, detection and waveforms (the Rust engine)."""

    sampling_rate: float = rule(30000.0, low=1000.0, high=200_000.0)
    """Samples per second; ``init`` copies it from the Intan header."""
    use_car: bool = rule(True)
    """Common average reference within each CAR group of the electrode layout."""
    reference_method: str = rule("mean", choices=("mean", "median", "clipped_mean"))
    """How a CAR group's reference combines its wires (each normalised by its median and MAD),
    sample by sample: 'mean' (blech_clust's CAR: it puts an inverted 1/N copy of every spike onto
    every other wire of the group, which can be sorted as units), 'median' (leaves spikes out), or
    'clipped_mean' (the mean of the wires within ``reference_clip`` of the group's median, so a wire
    in a spike is left out of that sample's mean). docs/benchmarks.md (Session 6) measures them."""
    reference_clip: float = rule(3.0, above=0.0)
    """'clipped_mean': wires further than this (x their MAD) from the group's median are left out."""
    bandpass_lower_cutoff: float = rule(300.0, above=0.0)
    bandpass_upper_cutoff: float = rule(3000.0, above=0.0)
    bandpass_order: int = rule(2, low=1, high=12)
    """Butterworth order of each edge (blech_clust: ``butter(2, [lo, hi], 'bandpass')``)."""
    # recording cutoff ("the headstage fell off", spec 4.2)
    voltage_cutoff: float = rule(10000.0, above=0.0)
    max_breach_rate: float = rule(1.0, low=0.0)
    max_secs_above_cutoff: float = rule(60.0, low=0.0)
    max_mean_breach_rate_persec: float = rule(100.0, low=0.0)
    waveform_threshold: float = rule(4.0, above=0.0)
    """Detection threshold = waveform_threshold x noise, noise = median(|x - median|) / 0.6745
    (blech_clust: 5). Events between this and ``cluster_threshold`` are not clustered; they join
    a unit only through the template assignment (``template_assignment``), which also rejects the
    noise crossings among them."""
    use_rolling_threshold: bool = rule(True)
    rolling_threshold_window: float = rule(5.0, above=0.0)
    """Seconds per noise window (blech_clust HEAD default)."""
    rolling_threshold_step: float = rule(5.0, above=0.0)
    noise_subsample: int = rule(10, low=1, high=1_000_000)
    """Noise statistics (each window's median and MAD, ``mad_val``, a global threshold) use every
    Nth filtered sample: 1 = every sample (exact, ~2x slower extraction). A 5 s window at 30 kHz
    keeps 15 000 samples with 10, so thresholds scatter ~1 % around the exact ones (shorter
    windows or lower rates scatter more, as 1 / sqrt(samples kept))."""
    spike_polarity: str = rule("both", choices=("negative", "positive", "both"))
    """'negative', 'positive' or 'both'."""
    dead_time_ms: float = rule(0.5, low=0.0, high=100.0)
    """After an event, no new event on the same electrode for this long: one spike, one event."""
    spike_snapshot_before: float = rule(1.0, **_WINDOW_MS)
    """ms before the extremum (30 samples at 30 kHz)."""
    spike_snapshot_after: float = rule(1.5, **_WINDOW_MS)
    """ms after the extremum (45 samples at 30 kHz): 75-sample waveforms, extremum at index 30."""
    align_subsample: bool = rule(True)
    """Refine each spike's time and waveform by interpolation around the extremum."""

    @property
    def samples_before(self) -> int:
        return int(round(self.spike_snapshot_before * self.sampling_rate / 1000.0))

    @property
    def samples_after(self) -> int:
        return int(round(self.spike_snapshot_after * self.sampling_rate / 1000.0))

    def validate(self, source: str) -> None:
        """What one field's rule cannot say: the band within Nyquist, a waveform of >= 1 sample each side."""
        nyq = self.sampling_rate / 2
        if not (self.bandpass_lower_cutoff < self.bandpass_upper_cutoff < nyq):
            raise ParamsError(
                f"{source}: band {self.bandpass_lower_cutoff}-{self.bandpass_upper_cutoff} Hz must satisfy "
                f"0 < low < high < Nyquist ({nyq:g} Hz)"
            )
        if self.samples_before < 1 or self.samples_after < 1:
            raise ParamsError(f"{source}: spike_snapshot_before and spike_snapshot_after must each be at least one "
                              f"sample ({1000 / self.sampling_rate:.3g} ms at {self.sampling_rate:g} Hz), not "
                              f"{self.spike_snapshot_before} and {self.spike_snapshot_after} ms")


@dataclass
class ClusterParams:
    """Features and the clustering solutions of each electrode."""

    max_clusters: int = rule(7, low=2, high=100, why="one GMM is fitted per K")
    """GMM solutions are fitted for K = 2 .. max_clusters."""
    num_iter: int = rule(1000, low=1, high=1_000_000)
    thresh: float = rule(1e-3, above=0.0)
    """EM convergence tolerance (change of the mean log-likelihood per event). blech_clust uses
    1e-4; 1e-3 halves the clustering time with the same ground-truth accuracy (docs/benchmarks.md)."""
    num_restarts: int = rule(1, low=1, high=1000)
    """GMM restarts per solution. blech_clust uses 10; on the ground-truth benchmark 10 restarts
    sorted no better than 1 (docs/benchmarks.md, Accuracy) at 10x the clustering time."""
    max_autosort_clusters: int = rule(10, low=2, high=100)
    """Components of the Dirichlet-process Bayesian GMM (saved as solution ``max_autosort_clusters``)."""
    autosort_base_clusters: int = rule(9, low=2, high=100)
    """Auto-sort starts from the GMM with this many clusters (over-clustered on purpose: auto-sort
    and the template step merge what is one unit, and cannot undo a lump). Fitted and saved as
    solution ``autosort_base_clusters`` when above ``max_clusters``. 9 instead of 7: seed 1 at
    600 s 21 -> 23/66 well detected (docs/benchmarks.md)."""
    max_training_events: int = rule(10000, low=100, high=10_000_000, why="events the clustering is fitted on")
    """Clustering fits on at most this many events (drawn without replacement), then labels all."""
    wf_amplitude_sd_cutoff: float = rule(3.0, low=0.0)
    """Events whose amplitude lies more than this many SD from their cluster's are outliers (0: none are)."""
    random_seed: int = rule(0, low=0, high=2**32 - 1)
    cluster_threshold: float = rule(4.5, above=0.0)
    """Events whose extremum exceeds cluster_threshold x noise (of their noise window) are
    clustered; a value at or below ``waveform_threshold`` clusters every event."""

    def validate(self, source: str) -> None:
        if self.autosort_base_clusters == self.max_autosort_clusters:
            raise ParamsError(f"{source}: autosort_base_clusters must be >= 2 and differ from "
                              f"max_autosort_clusters ({self.max_autosort_clusters}, the Bayesian GMM's "
                              f"solution number), not {self.autosort_base_clusters}")


@dataclass
class AutosortParams:
    """Which clusters become units, and the template assignment of every event."""

    cluster_count_threshold: int = rule(50, low=1, high=10**9)
    """Fewest spikes a unit may have (blech_clust uses 2000 on 1 h recordings; blechrs scales by rate).
    An electrode with fewer events is not clustered (no solutions; its status says why): part of
    its clustering fingerprint (``SortParams.cluster_fingerprint``)."""
    min_firing_rate: float = rule(0.05, low=0.0)
    """Hz; a cluster firing slower than this is not saved as a unit."""
    autosort_merge_dprime: float = rule(3.5, low=0.0)
    """Auto-sort merges two clusters when their discriminant separation d' is below this ..."""
    autosort_merge_valley: float = rule(0.5, low=0.0, high=1.0)
    """... and their discriminant projection has no valley deeper than this fraction of its peaks."""
    autosort_max_l_ratio: float = rule(1.0, low=0.0)
    """A cluster whose L-ratio (contamination by its neighbours in feature space) exceeds this is
    a mixture, not saved as a unit."""
    template_assignment: bool = rule(True)
    """After auto-sort picks its units, re-assign every event to a unit or to noise by the units'
    mean waveforms and the electrode's noise covariance, and split units whose amplitudes are
    bimodal (core/assign_templates.py, core/split_units.py); saved as solution 1 (kind 'templates')."""
    ISI_violations_thresholds: list[float] = rule([0.5, 2.0], list, length=2, low=0.0, high=100.0, why="%")
    """Largest % of ISIs below 1 ms and below 2 ms a unit may have (blech_clust's limits)."""
    min_snr: float = rule(3.0, low=0.0)
    max_threshold_share: float = rule(0.65, low=0.0, high=1.0)
    """A cluster is kept as a unit only when, of its events above the detection threshold
    (``waveform_threshold``), at most this share peak within 1 noise SD of it (metric
    ``threshold_share``). More, and its events are the upper tail of activity mostly below the
    threshold, distant background units and noise, not a neuron one can sort: a unit whose mean
    amplitude sits on the threshold (half its spikes undetected) has ~0.68 there, one 1 SD above
    it ~0.4 (docs/benchmarks.md, session 11: 18 of 18 background "units" on 32 wires, no
    well-detected unit). 1 turns the test off (blech_clust has none)."""
    max_multi_threshold_share: float = rule(0.5, low=0.0, high=1.0)
    """The same test, stricter, for a cluster that would be a multi-unit (it fails the single-unit
    tests below): kept only when at most this share of its events peak within 1 noise SD of the
    threshold. A multi-unit mostly at the threshold is a hash of background units, their upper
    tail (ISIs of independent neurons, contamination 0.2-1), not a neuron or a few; multi-units of
    sortable neurons have ~0-0.3 (docs/benchmarks.md, session 13). 1 turns it off."""
    single_unit_max_contamination: float = rule(0.1, low=0.0, high=1.0)
    fast_spiking_max_width_ms: float = rule(0.4, low=0.0, high=20.0)
    """Trough-to-peak width below which a single unit is called fast spiking."""

    max_refine_events: int = rule(500_000, low=1000, high=100_000_000,
                                  why="events the template refinement holds in memory")
    """The template refinement (assignment, splits, merges) of an electrode with more events works
    on this many of them: contiguous stretches spread evenly over the session (so ISIs, bursts and
    drift stay as they are); the other events then go to its final units, or to noise, a chunk at
    a time, and its waveforms stay in its work file (memory-mapped, read a chunk at a time). A
    worker then holds ~730 MB up to ~2 M events and ~0.17 kB per event more beyond (times,
    features, solution labels), where it needed ~1.2 kB per event (docs/benchmarks.md, session
    10). 500 k events is ~2 h of the busiest simulated wire: sessions up to that length sort
    exactly as on every event."""

    # --- the unit model of real neurons (issue 14; figures: docs/benchmarks.md, "Phenomena") ---
    amplitude_model: str = rule("gaussian", choices=("gaussian", "mixture"))
    """The template assignment's amplitude model of a unit: 'gaussian' (one relative spread around
    the template) or 'mixture' (a distribution over scales learned from the unit's events: bursts'
    smaller later spikes, drift; core/assign_templates.py)."""
    burst_merge: bool = rule(True)
    """Merge units of one shape whose spikes come in bursts together (pairs a few ms apart, the later
    smaller), whatever their amplitudes (core/merge_units.py): a bursting neuron's smaller later
    spikes are otherwise a unit of their own. On by default: on simulated bursts +7 well-detected
    units and 18 fewer false ones, the same sort on the public sets (docs/benchmarks.md)."""
    matched_filter_z: float = rule(0.0, low=0.0, high=100.0)
    """Matched-filter pass (core/matched_filter.py): after auto-sort, each unit's whitened template is
    correlated with the filtered trace, peaks above this many noise SDs that are not events yet are
    added as candidates, and auto-sort assigns again. 0 = off. Needs the filtered trace: run by
    ``schemes.sort_electrode.matched_filter_work`` (benchmarks/phenomena.py, benchmarks/accuracy.py
    --extract engine: ``--param matched_filter_z=4.25``); not yet run by ``blechrs run``."""


@dataclass
class TrialsParams:
    """Trial-aligned spike-train arrays."""

    spike_array_durations: list[float] = rule([2000.0, 5000.0], list, length=2, low=0.0, high=60_000.0, why="ms")
    """ms before and after each trial onset."""
    spike_array_bin_ms: float = rule(1.0, above=0.0, high=60_000.0)
    compact_spike_arrays: bool = rule(False)
    """False (default): ``spike_array`` holds blech_clust's 0/1 values (a spike in the bin or not) as
    float64, gzip-compressed: every HDF5 reader opens it (h5py, MATLAB, h5dump) and arithmetic on it
    never wraps. True: spike counts as uint8 compressed with blosc:lz4, ~4x faster to write and
    smaller, but only PyTables (or the HDF5 blosc plugin) can read it."""

    #: Bins per trial at most: the arrays hold trials x units x bins.
    MAX_BINS = 120_000

    def validate(self, source: str) -> None:
        bins = sum(self.spike_array_durations) / self.spike_array_bin_ms
        if bins > self.MAX_BINS:
            raise ParamsError(f"{source}: spike_array_durations {self.spike_array_durations} ms in bins of "
                              f"{self.spike_array_bin_ms:g} ms make {bins:.0f} bins per trial; at most {self.MAX_BINS} "
                              f"(the arrays hold trials x units x bins)")


@dataclass
class QualityParams:
    """Unit QA (similarity, drift) and raw-data QA."""

    similarity_cutoff: float = rule(50.0, low=0.0, high=100.0)
    """% of one unit's spikes coinciding with another unit's above which the pair is reported."""
    similarity_window_ms: float = rule(1.0, above=0.0, high=1000.0)
    """Two spikes coincide when at most this far apart."""
    similarity_waveform_count_cutoff: float = rule(10.0, low=0.0, high=100.0)
    """A reported pair has "similar counts" when (max - min) / max of their spike counts is <= this %."""
    n_trial_bins: int = rule(4, low=2, high=1000)
    """Drift check: the session's trials are cut into this many consecutive groups (quarters)."""
    drift_baseline_ms: float = rule(1000.0, above=0.0, high=600_000.0)
    """Drift check: spikes counted in [-drift_baseline_ms, 0) ms before each trial onset ..."""
    drift_post_ms: float = rule(2500.0, above=0.0, high=600_000.0)
    """... and in [0, drift_post_ms) ms after it."""
    drift_alpha: float = rule(0.05, above=0.0, below=1.0)
    """Drift check: a unit is flagged when the trial-group effect has p below this / 2 in either
    window (baseline or response)."""
    bridged_channel_threshold: float = rule(0.9, low=0.0, high=1.0)
    small_car_group: int = rule(8, low=2, high=4096)
    """A CAR group of fewer wires than this (a tetrode, a stereotrode) is warned about: its
    reference holds 1/N of every wire's spikes and noise, so referencing can hurt more than it
    helps (QA_output/warnings.txt and the run report say what to do)."""
    n_corr_samples: int = rule(10000, low=100, high=1_000_000, why="samples of every channel held at once")


@dataclass
class RunParams:
    """How the work is executed (never changes a sort)."""

    n_jobs: int = rule(0, low=0, high=4096)
    """Worker threads/processes; 0 = all cores."""
    extract_memory_mb: float = rule(512.0, above=0.0)
    """Memory of one extraction pass. Electrodes are extracted in batches (one CAR group at a time,
    split when the engine's per-electrode buffers, its noise subsample and chunks, exceed this;
    events go to files as they are cut, so the length of the recording hardly matters)."""
    memory_mb: float = rule(1024.0, above=0.0)
    """Memory the run aims to stay within, every process summed. Clustering runs electrodes side by
    side only while their estimated needs (``pipeline.clustering``: ~1 kB per event, 0.25 kB beyond
    ``max_refine_events``) fit beside the main process and the idle workers; an electrode that
    alone needs more runs alone. Extraction's share is ``extract_memory_mb``."""


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
        """Every field against its rule (:class:`Rule`), then each stage's checks across fields."""
        for name in STAGES:
            check_rules(getattr(self, name), source)
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
            setattr(stage, key, _RULE_OF[key].coerce(value))
        return tree.validate(source)

    def replace(self, **flat: Any) -> "SortParams":
        """A copy with some parameters changed, by their flat names (``replace(max_clusters=4)``)."""
        return SortParams.from_flat(self.to_flat() | flat)

    def cluster_fingerprint(self, n_events: int) -> str:
        """The clustering stage's fingerprint of an electrode of ``n_events`` events. One with fewer
        events than ``cluster_count_threshold`` (the fewest a unit may have: it can hold none) is
        not clustered, and says so here, so moving the threshold across it redoes it; any other
        electrode's is the stage's own (auto-sort's parameters stay out of it)."""
        few = int(n_events) < int(self.autosort.cluster_count_threshold)
        return self.fingerprint("cluster", extra="fewer events than a unit needs" if few else None)

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
_RULE_OF: dict[str, Rule] = {}
for _stage, _cls in zip(STAGES, (ExtractParams, ClusterParams, AutosortParams, TrialsParams, QualityParams,
                                 RunParams)):
    for _f in dataclasses.fields(_cls):
        assert _f.name not in _STAGE_OF, f"parameter {_f.name} is in two stages"
        _STAGE_OF[_f.name] = _stage
        _RULE_OF[_f.name] = _f.metadata["rule"]


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
