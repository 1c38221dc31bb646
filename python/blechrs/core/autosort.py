"""Auto-sort: which clusters of an electrode are units, merged how, single or multi, RS or FS.

Transparent criteria, all computed here (no downloaded classifier):

1. Start from an over-clustered solution: the GMM with K = ``autosort_base_clusters`` (more clusters than
   units is the safe side: splitting one unit in two can be undone, lumping two cannot), but no
   more than one cluster per ``MIN_EVENTS_PER_CLUSTER`` events.
2. Merge clusters that are one unit, closest pair first, re-scoring after each merge. For a pair,
   the events of both are projected on their linear discriminant (pooled covariance):
   - refractory evidence first: events of the two clusters closer than the refractory period
     (0.5-2 ms) are counted against the count expected if they fired independently. Clearly
     independent firing (observed > max(3, half the expected)) means two neurons: never merged.
     A shared refractory period (expected >= 5, observed <= 10 % of it) means one neuron: merged
     up to d' < ``ISI_MERGE_DPRIME``.
   - otherwise the pair is one unit when the separation d' of the projections is below
     ``autosort_merge_dprime`` (halves of one Gaussian cluster sit at d' ~ 2.7, well separated
     units far above) AND the projection is unimodal: the density at the deepest point between the
     two clusters is more than ``autosort_merge_valley`` of the smaller peak (two close but distinct
     units leave a valley).
3. Drop echoes: a cluster most of whose events (> ``ECHO_FRACTION``) sit within ``ECHO_MS`` of a
   larger event of another cluster is a second detection of the same spikes (the rebound of a large
   spike re-crossing the threshold after the dead time), not a neuron.
4. Keep a (merged) cluster as a unit when it has >= ``cluster_count_threshold`` events, fires at
   >= ``min_firing_rate`` Hz, has SNR >= ``min_snr`` and an L-ratio <= ``autosort_max_l_ratio``
   (a higher one is a mixture of its neighbours).
5. Label it single unit when its ISI violations are within ``ISI_violations_thresholds`` (< 1 ms,
   < 2 ms) and its contamination estimate is <= ``single_unit_max_contamination``; else multi-unit.
   Fast spiking ('f') when the trough-to-peak width is below ``fast_spiking_max_width_ms``, else
   regular spiking ('r').

6. With ``template_assignment`` (default), the kept units are re-decided event by event against
   their mean waveforms and a noise model, units of one shape and one amplitude mode are merged
   and units with bimodal amplitudes split (core/templates.py); the units are then those of the
   template solution (number 1), judged by steps 4-5 without the L-ratio test.

Each choice carries its metrics and a one-line reason, so a person can check or overrule it in the
sort file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from blechrs.core.features import peak_index
from blechrs.core.metrics import CENSORED_MS, REFRACTORY_MS, isi_violations, unit_metrics

#: An event within this many ms of a larger event of another cluster is an echo candidate: the
#: rebound of a large spike (0.5-1 ms) and its after-hyperpolarisation dip (1.5-2 ms after the
#: trough, crossing a 4 x noise threshold on large units).
ECHO_MS = 2.5
#: A cluster is an echo when more than this fraction of its events are echo candidates.
ECHO_FRACTION = 0.5

#: Fewest events per cluster of the solution auto-sort starts from.
MIN_EVENTS_PER_CLUSTER = 40
#: Two clusters whose events keep a shared refractory period (see cross_refractory) are merged up
#: to this d' even when their projection looks bimodal.
ISI_MERGE_DPRIME = 6.0

#: Events per cluster used to score a pair (deterministic subsample): plenty for a d' estimate.
PAIR_SAMPLE = 3000


@dataclass
class UnitChoice:
    solution: int
    clusters: list[int]
    single_unit: bool
    unit_type: str
    """'r' regular spiking or 'f' fast spiking."""
    metrics: dict = field(default_factory=dict)
    reason: str = ""

    @property
    def regular_spiking(self) -> bool:
        return self.unit_type == "r"

    @property
    def fast_spiking(self) -> bool:
        return self.unit_type == "f"


def _lda_direction(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ca = np.atleast_2d(np.cov(a, rowvar=False))
    cb = np.atleast_2d(np.cov(b, rowvar=False))
    pooled = (ca * len(a) + cb * len(b)) / (len(a) + len(b))
    pooled += np.eye(len(pooled)) * 1e-6 * max(np.trace(pooled), 1e-12)
    return np.linalg.solve(pooled, a.mean(axis=0) - b.mean(axis=0))


def _pair_dprime(a: np.ndarray, b: np.ndarray) -> float:
    """Separation d' of two point clouds along their linear discriminant (pooled covariance)."""
    if len(a) < 3 or len(b) < 3:
        return 0.0
    w = _lda_direction(a, b)
    pa, pb = a @ w, b @ w
    spread = np.sqrt((pa.var() + pb.var()) / 2.0)
    return float(abs(pa.mean() - pb.mean()) / spread) if spread > 0 else float("inf")


def _valley_ratio(a: np.ndarray, b: np.ndarray) -> float:
    """Density at the deepest point between two clouds on their discriminant, relative to the
    smaller of the two density peaks (1 = no valley: one unimodal cloud; 0 = an empty gap).

    Projections on the cross-fitted direction, Gaussian kernel density with Silverman's bandwidth.
    """
    d = a.shape[1]
    if len(a) < 2 * (d + 2) or len(b) < 2 * (d + 2):
        return 1.0
    pa, pb = [], []
    for fit, test in ((0, 1), (1, 0)):
        w = _lda_direction(a[fit::2], b[fit::2])
        sa, sb = a[test::2] @ w, b[test::2] @ w
        scale = np.sqrt((sa.var() + sb.var()) / 2.0)
        if scale <= 0:
            return 1.0
        shift = (sa.mean() + sb.mean()) / 2.0
        pa.append((sa - shift) / scale)
        pb.append((sb - shift) / scale)
    pa, pb = np.concatenate(pa), np.concatenate(pb)
    if pa.mean() < pb.mean():
        pa, pb = -pa, -pb
    x = np.concatenate([pa, pb])
    bw = 1.06 * x.std() * len(x) ** -0.2
    lo, hi = pb.mean(), pa.mean()
    if hi <= lo or bw <= 0:
        return 1.0
    grid = np.linspace(lo, hi, 41)
    sample = x if len(x) <= 4000 else x[np.linspace(0, len(x) - 1, 4000).astype(np.int64)]
    dens = np.exp(-0.5 * ((grid[:, None] - sample[None, :]) / bw) ** 2).sum(axis=1)
    half = len(grid) // 2
    il = int(np.argmax(dens[: half + 1]))
    ir = half + int(np.argmax(dens[half:]))
    peak = min(dens[il], dens[ir])
    return float(dens[il:ir + 1].min() / peak) if peak > 0 else 1.0


def _subsample(idx: np.ndarray, k: int) -> np.ndarray:
    if len(idx) <= k:
        return idx
    return idx[np.linspace(0, len(idx) - 1, k).astype(np.int64)]


def cross_refractory(ta: np.ndarray, tb: np.ndarray, fs: float, duration_s: float) -> tuple[int, float]:
    """(observed, expected-if-independent) pairs of one event of each group closer than the
    refractory period but farther than the detector's censored period (events closer than that
    cannot both be detected, whoever fired them)."""
    ta, tb = np.sort(ta), np.sort(tb)
    lo_s = CENSORED_MS * fs / 1000.0
    hi_s = REFRACTORY_MS * fs / 1000.0
    obs = 0
    if len(ta) and len(tb):
        for sign in (-1, 1):
            a = np.searchsorted(tb, ta + sign * lo_s, side="right" if sign > 0 else "left")
            b = np.searchsorted(tb, ta + sign * hi_s, side="left" if sign > 0 else "right")
            obs += int(np.abs(b - a).sum())
    expected = len(ta) * len(tb) * 2.0 * (hi_s - lo_s) / fs / max(duration_s, 1e-9)
    return obs, expected


def fire_independently(observed: int, expected: float) -> bool:
    """Close pairs (see cross_refractory) as often as chance predicts: two neurons."""
    return observed > max(3.0, 0.5 * expected)


def merge_score(a: np.ndarray, b: np.ndarray, min_valley: float) -> float:
    """d' of the pair, or inf when their discriminant projection has a valley deeper than
    ``min_valley`` (two modes: two units, however close)."""
    d = _pair_dprime(a, b)
    return d if _valley_ratio(a, b) > min_valley else float("inf")


def merge_clusters(features, times, labels, fs, max_dprime, min_valley=0.5, duration_s=None) -> list[list[int]]:
    """Greedy closest-first merging of clusters (lists of label ids): see the module doc."""
    groups = [[int(c)] for c in np.unique(labels[labels >= 0])]
    members = {g[0]: np.nonzero(labels == g[0])[0] for g in groups}
    if duration_s is None:
        duration_s = max(float(times.max() - times.min()) / fs, 1.0) if len(times) else 1.0

    def idx_of(group):
        return np.sort(np.concatenate([members[c] for c in group]))

    def score(ga, gb):
        ia, ib = idx_of(ga), idx_of(gb)
        obs, exp = cross_refractory(times[ia], times[ib], fs, duration_s)
        if fire_independently(obs, exp):
            return float("inf")  # two neurons, whatever their features say
        a = features[_subsample(ia, PAIR_SAMPLE)]
        b = features[_subsample(ib, PAIR_SAMPLE)]
        d = _pair_dprime(a, b)
        if exp >= 5.0 and obs <= 0.1 * exp and d < ISI_MERGE_DPRIME:
            return min(d, max_dprime * 0.999)  # a shared refractory period: one neuron
        if d >= max_dprime:
            return float("inf")
        return d if _valley_ratio(a, b) > min_valley else float("inf")

    scores: dict[tuple, float] = {}
    while len(groups) > 1:
        best = None
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                key = (tuple(groups[i]), tuple(groups[j]))
                if key not in scores:
                    scores[key] = score(groups[i], groups[j])
                if scores[key] < max_dprime and (best is None or scores[key] < best[0]):
                    best = (scores[key], i, j)
        if best is None:
            break
        _, i, j = best
        merged = sorted(groups[i] + groups[j])
        groups = [g for k, g in enumerate(groups) if k not in (i, j)] + [merged]
        groups.sort()
    return groups


def echo_fraction(times, amplitude, member, window) -> float:
    """Fraction of the member events that have a larger non-member event within ``window``
    samples."""
    idx = np.nonzero(member)[0]
    others = np.nonzero(~member)[0]
    if len(idx) == 0 or len(others) == 0:
        return 0.0
    ot = times[others]
    order = np.argsort(ot, kind="stable")
    ot, oa = ot[order], np.abs(amplitude[others][order])
    lo = np.searchsorted(ot, times[idx] - window, side="left")
    hi = np.searchsorted(ot, times[idx] + window, side="right")
    own = np.abs(amplitude[idx])
    # Windows hold a handful of events: step through them for all members at once.
    echo = np.zeros(len(idx), dtype=bool)
    count = hi - lo
    for j in range(int(count.max()) if len(count) else 0):
        has = count > j
        echo[has] |= oa[lo[has] + j] > own[has]
    return float(echo.mean())


def base_solution(features, solutions, params) -> int:
    """The over-clustered GMM solution auto-sort starts from: K = autosort_base_clusters, but no
    more clusters than one per ``MIN_EVENTS_PER_CLUSTER`` events (a cluster needs enough events
    for its covariance, or its merges cannot be judged)."""
    max_clusters = int(params.cluster.autosort_base_clusters)
    gmm = sorted(k for k, s in solutions.items() if s.kind == "gmm")
    if not gmm:
        return max(solutions)
    cap = max(2, len(features) // MIN_EVENTS_PER_CLUSTER)
    fitting = [k for k in gmm if k <= min(max_clusters, cap)]
    return fitting[-1] if fitting else gmm[0]


def judge_unit(waveforms, times, features, member, params, fs, mad_val, duration_s, number, clusters,
               origin, check_isolation: bool = True) -> UnitChoice | None:
    """The events where ``member`` is True as a unit: None when they fail a keep criterion (step 4
    of the module doc), else the choice with its single/multi and RS/FS labels (step 5)."""
    isi_limits = list(params.autosort.ISI_violations_thresholds)
    peak = peak_index(params, waveforms.shape[1] if waveforms.ndim == 2 else 0)
    m = unit_metrics(waveforms, times, features, member, fs, mad_val, duration_s, peak)
    if m["n_events"] < int(params.autosort.cluster_count_threshold):
        return None
    if m["firing_rate"] < float(params.autosort.min_firing_rate):
        return None
    if m["snr"] < float(params.autosort.min_snr):
        return None
    if check_isolation and np.isfinite(m["l_ratio"]) and m["l_ratio"] > float(params.autosort.autosort_max_l_ratio):
        return None
    isi_ok = m["isi_violations_1ms"] < isi_limits[0] and m["isi_violations_2ms"] < isi_limits[1]
    single = bool(isi_ok and m["contamination"] <= float(params.autosort.single_unit_max_contamination))
    fs_width = float(params.autosort.fast_spiking_max_width_ms)
    unit_type = "f" if np.isfinite(m["width_ms"]) and m["width_ms"] < fs_width else "r"
    reason = (f"{origin}: {m['n_events']} events, "
              f"{m['firing_rate']:.2f} Hz, SNR {m['snr']:.1f}, ISI<1ms {m['isi_violations_1ms']:.2f}% "
              f"ISI<2ms {m['isi_violations_2ms']:.2f}%, contamination {m['contamination']:.2f} -> "
              f"{'single' if single else 'multi'} unit, width {m['width_ms']:.2f} ms -> {unit_type}")
    return UnitChoice(number, list(clusters), single, unit_type, m, reason)


def autosort_electrode(waveforms, times, features, solutions, params, sampling_rate=None, mad_val=0.0,
                       duration_s: float | None = None, clustered: np.ndarray | None = None
                       ) -> list[UnitChoice]:
    """Units of one electrode chosen from its clustering ``solutions`` (see the module doc).

    ``sampling_rate`` defaults to ``params.extract.sampling_rate``; ``duration_s`` (the recording's length,
    for firing rates) defaults to the span of ``times``. ``clustered`` marks the events the
    clustering saw (default: all); the others (label -1 in every solution) can join a unit only
    through the template assignment, which also adds the template solution to ``solutions``.
    """
    waveforms = np.asarray(waveforms)
    times = np.asarray(times)
    features = np.asarray(features, dtype=np.float64)
    n = len(times)
    if n == 0 or not solutions:
        return []
    fs = float(sampling_rate if sampling_rate is not None else params.extract.sampling_rate)
    if duration_s is None or duration_s <= 0:
        duration_s = max(float(times.max() - times.min()) / fs, 1.0 / fs)
    number = base_solution(features, solutions, params)
    labels = np.asarray(solutions[number].labels)
    max_dprime = float(params.autosort.autosort_merge_dprime)
    min_valley = float(params.autosort.autosort_merge_valley)
    peak = peak_index(params, waveforms.shape[1] if waveforms.ndim == 2 else 0)

    groups = merge_clusters(features, times, labels, fs, max_dprime, min_valley, duration_s)
    amplitude = waveforms[:, peak] if len(waveforms) else np.zeros(n)
    echo_window = ECHO_MS * fs / 1000.0
    choices = []
    for group in groups:
        member = np.isin(labels, group)
        if echo_fraction(times, amplitude, member, echo_window) > ECHO_FRACTION:
            continue
        merged = "+".join(str(c) for c in group)
        choice = judge_unit(waveforms, times, features, member, params, fs, mad_val, duration_s,
                            number, list(group), f"clusters {merged} of solution {number}")
        if choice is not None:
            choices.append(choice)
    if choices and bool(params.autosort.template_assignment):
        from blechrs.core.templates import refine_choices
        solution, choices = refine_choices(waveforms, times, features, choices, solutions, params, fs,
                                           mad_val, duration_s, clustered)
        if solution is not None:
            solutions[solution.number] = solution
    return choices
