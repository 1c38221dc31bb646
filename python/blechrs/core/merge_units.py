"""Merge units of one shape whose amplitudes form one mode together: clustering cut a neuron in
two along its noise. Never when they fire independently (close pairs as often as chance).

With ``burst_merge`` (issue 14), units of one shape are also merged, whatever their amplitudes,
when their spikes come in bursts together: pairs a few ms apart (BURST_MS) where the later spike is
smaller, far more often than the other way round. A complex-spike burst's later spikes are 10-20 %
smaller each, so the clustering and the amplitude split cut a bursting neuron into a large unit
(the bursts' first spikes) and smaller ones; two independent neurons give such pairs as often one
way as the other, however fast they fire.
"""

from __future__ import annotations

import numpy as np

from blechrs.core.noise_model import mean_waveforms, noise_cholesky, whitening
from blechrs.core.metrics import CENSORED_MS, REFRACTORY_MS
from blechrs.core.refractory import cross_refractory, fire_independently
from blechrs.core.rows import mean_rows, project_rows
from blechrs.core.split_units import one_mode_and_shape

#: Two units whose whitened templates, one scaled to fit the other, are closer than this (in
#: noise SDs: the d' of a discriminant between the two shapes) have one shape. Halves of one
#: unit cut apart in feature space sit at ~1.6 (the means of a Gaussian cut in two), units of
#: different shape far above.
MERGE_MAX_SHAPE_DPRIME = 3.0
#: ... and for a merge on burst evidence (``burst_merge``): a burst's later spikes ride on the
#: after-potential of the spike before and change shape a little, which on a large unit is several
#: noise SDs (a 160 uV unit cut into its bursts' first and later spikes: d' 3.7-4.3); the burst
#: evidence itself is what tells one neuron from two (two neurons give either order as often).
BURST_MAX_SHAPE_DPRIME = 6.0
#: Burst evidence: among pairs (one event of each unit) between the censored period and BURST_MS
#: apart, those where the later spike is smaller outnumber those where it is larger by at least
#: BURST_MIN_PAIRS, BURST_Z binomial SDs (two independent neurons give either order as often:
#: the excess is what bursts add, however many chance pairs fast-firing units make beside them)
#: and BURST_MIN_SHARE of the smaller unit's events (bursts that explain a real part of it).
BURST_MS = 20.0
BURST_MIN_PAIRS = 20
BURST_Z = 5.0
BURST_MIN_SHARE = 0.5


def burst_pairs(t: np.ndarray, amp: np.ndarray, in_a: np.ndarray, sampling_rate: float,
                lo_ms: float = CENSORED_MS) -> tuple[int, int]:
    """(pairs where the later spike is smaller, pairs where it is larger) among pairs of one event of
    each group (``in_a`` marks group a) between ``lo_ms`` and BURST_MS apart."""
    order = np.argsort(t, kind="stable")
    t, amp, in_a = t[order], amp[order], in_a[order]
    lo = lo_ms * sampling_rate / 1000.0
    hi = BURST_MS * sampling_rate / 1000.0
    smaller = larger = 0
    start = np.searchsorted(t, t + lo, side="right")
    stop = np.searchsorted(t, t + hi, side="right")
    for k in range(1, int((stop - start).max(initial=0)) + 1):
        j = start + k - 1
        ok = j < stop
        i = np.flatnonzero(ok)
        j = j[ok]
        cross = in_a[i] != in_a[j]
        smaller += int(np.count_nonzero(cross & (amp[j] < amp[i])))
        larger += int(np.count_nonzero(cross & (amp[j] >= amp[i])))
    return smaller, larger


def shape_dprime(x: np.ndarray, y: np.ndarray) -> float:
    """How far whitened template ``x`` is from ``y`` scaled to fit it (noise SDs): 0 for one shape
    at two sizes (see MERGE_MAX_SHAPE_DPRIME)."""
    alpha = float(x @ y) / max(float(y @ y), 1e-12)
    diff = x - alpha * y
    return float(np.sqrt(diff @ diff))


def burst_linked(t: np.ndarray, amp: np.ndarray, in_a: np.ndarray, sampling_rate: float, duration_s: float) -> bool:
    """Burst evidence that two groups are one neuron (see the module doc)."""
    if duration_s <= 0:
        return False
    smaller, larger = burst_pairs(t, amp, in_a, sampling_rate)
    n_a, n_b = int(np.count_nonzero(in_a)), int(np.count_nonzero(~in_a))
    # A bursting neuron cut by size at 26 Hz makes ~2.5x the chance pairs in its bursts' order, and
    # ~0.9x chance the other way: an excess of ~30 SDs where independent neurons show < 3.
    excess = smaller - larger
    return excess >= max(BURST_MIN_PAIRS, BURST_Z * np.sqrt(smaller + larger), BURST_MIN_SHARE * min(n_a, n_b))


def _fire_independently(ta: np.ndarray, tb: np.ndarray, sampling_rate: float, duration_s: float) -> bool:
    """Pairs closer than the refractory period as often as chance predicts: two neurons (the veto
    of auto-sort's merge test). The converse (few close pairs: one neuron) is no evidence on one
    wire: two spikes that overlap in one window are lost to detection or to the assignment, so
    close pairs of two neurons go missing too."""
    return duration_s > 0 and fire_independently(*cross_refractory(ta, tb, sampling_rate, duration_s))


def merge_same_units(waveforms: np.ndarray, unit_labels: np.ndarray, times: np.ndarray | None = None,
                     sampling_rate: float = 30000.0, duration_s: float = 0.0, burst_merge: bool = False
                     ) -> np.ndarray:
    """Merge pairs of units that are one neuron cut in two by the clustering: the same shape (see
    MERGE_MAX_SHAPE_DPRIME) and amplitudes that are one mode together (the BIC test of
    ``split_by_amplitude`` does not fire on their union); never when, given ``times``, they fire
    independently; with ``burst_merge`` and ``times``, also pairs of one shape with burst evidence
    (see the module doc) whatever their amplitudes. Most similar pair first, repeated until no pair merges. Returns the new labels (units
    renumbered 0..k-1 by first appearance)."""
    w = np.asarray(waveforms)  # float32 as extracted: rows are read in float64 (core/rows.py)
    labels = np.asarray(unit_labels, dtype=np.int64).copy()
    if labels.size == 0 or labels.max() < 1:
        return labels
    templates = mean_waveforms(w, labels, int(labels.max()) + 1)
    whiten = whitening(noise_cholesky(w, labels, templates))
    bursts = burst_merge and times is not None
    while True:
        ids = [k for k in np.unique(labels) if k >= 0]
        if len(ids) < 2:
            break
        u = {k: mean_rows(w, labels == k) @ whiten for k in ids}
        pairs = []
        for i, a in enumerate(ids):
            for b in ids[i + 1:]:
                dprime = shape_dprime(u[a], u[b])
                if dprime < MERGE_MAX_SHAPE_DPRIME:
                    pairs.append((dprime, a, b))
                elif bursts:
                    # the smaller unit's shape against the larger one's scaled to it (the later
                    # spikes' change of shape, at their own size)
                    small, large = (a, b) if u[a] @ u[a] < u[b] @ u[b] else (b, a)
                    if shape_dprime(u[small], u[large]) < BURST_MAX_SHAPE_DPRIME:
                        pairs.append((dprime, a, b))
        merged = False
        for dprime, a, b in sorted(pairs):
            if times is not None and _fire_independently(times[labels == a], times[labels == b],
                                                         sampling_rate, duration_s):
                continue
            idx = np.flatnonzero((labels == a) | (labels == b))
            # ... and only when their union is not one the split tests would split again (merge and
            # split must agree, or a split neighbour comes straight back)
            if (dprime < MERGE_MAX_SHAPE_DPRIME and one_mode_and_shape(w, idx, whiten)) or (
                    bursts and burst_linked(times[idx], project_rows(w, idx, whiten, u[a] + u[b]),
                                            labels[idx] == a, sampling_rate, duration_s)):
                labels[labels == b] = a
                merged = True
                break
        if not merged:
            break
    ids = [k for k in np.unique(labels) if k >= 0]
    remap = {k: i for i, k in enumerate(ids)}
    return np.array([remap[k] if k >= 0 else -1 for k in labels], dtype=np.int64)


def burst_leaders(times: np.ndarray, sampling_rate: float) -> np.ndarray:
    """For events sorted by time: True for the first event of each burst (no event of the set
    within BURST_MS before it)."""
    gap = np.diff(np.asarray(times, dtype=np.int64)) > BURST_MS * sampling_rate / 1000.0
    return np.concatenate([[True], gap])


def burst_members(waveforms: np.ndarray, unit_labels: np.ndarray, times: np.ndarray, sampling_rate: float
                  ) -> np.ndarray:
    """Give each burst's later spikes to the unit of its first spike: when unit b's spikes follow
    unit a's within bursts (one shape, pairs where the later spike is smaller outnumber the other
    order by BURST_MIN_PAIRS and BURST_Z binomial SDs: a bursts, and its smaller later spikes were
    assigned to b, a smaller neighbour of its shape), every event of b in a chain of a and b
    events less than BURST_MS apart that an event of a starts goes to a, unless those are
    BURST_MIN_SHARE of b or more (then b is a piece of a, which merge_same_units joins whole).
    Returns new labels."""
    w = np.asarray(waveforms)
    labels = np.asarray(unit_labels, dtype=np.int64).copy()
    t_all = np.asarray(times)
    if labels.size == 0 or labels.max() < 1:
        return labels
    k_units = int(labels.max()) + 1
    templates = mean_waveforms(w, labels, k_units)
    whiten = whitening(noise_cholesky(w, labels, templates))
    u = {k: mean_rows(w, labels == k) @ whiten for k in range(k_units) if np.any(labels == k)}
    size = {k: float(np.sqrt(v @ v)) for k, v in u.items()}
    for a in sorted(u, key=lambda k: -size[k]):
        for b in sorted(u, key=lambda k: -size[k]):
            if size[b] >= size[a]:
                continue
            if shape_dprime(u[b], u[a]) >= MERGE_MAX_SHAPE_DPRIME:
                continue
            idx = np.flatnonzero((labels == a) | (labels == b))
            in_a = labels[idx] == a
            amp = project_rows(w, idx, whiten, u[a] + u[b])
            # pairs closer than a refractory period are a's own rebound re-crossing the threshold
            # (echoes, noise-like), not burst spikes
            smaller, larger = burst_pairs(t_all[idx], amp, in_a, sampling_rate, lo_ms=REFRACTORY_MS)
            if smaller - larger < max(BURST_MIN_PAIRS, BURST_Z * np.sqrt(smaller + larger)):
                continue
            order = np.argsort(t_all[idx], kind="stable")
            ts = t_all[idx][order]
            lead = burst_leaders(ts, sampling_rate)
            starts_a = in_a[order][lead][np.cumsum(lead) - 1]  # the chain's first event is a's
            spaced = np.concatenate([[True], np.diff(ts) >= REFRACTORY_MS * sampling_rate / 1000.0])
            move = idx[order][starts_a & ~in_a[order] & spaced]
            if len(move) >= BURST_MIN_SHARE * np.count_nonzero(~in_a):
                continue  # b is mostly a's burst tails: a piece of a, for merge_same_units to join
            labels[move] = a
    return labels
