"""Merge the clusters of a solution that are one unit, closest pair first, re-scoring after each
merge.

For a pair, the events of both are projected on their linear discriminant (pooled covariance):

- refractory evidence first: events of the two clusters closer than the refractory period
  (0.5-2 ms) are counted against the count expected if they fired independently
  (core/refractory.py). Clearly independent firing (observed > max(3, half the expected)) means
  two neurons: never merged. A shared refractory period (expected >= 5, observed <= 10 % of it)
  means one neuron: merged up to d' < ``ISI_MERGE_DPRIME``.
- otherwise the pair is one unit when the separation d' of the projections is below
  ``autosort_merge_dprime`` (halves of one Gaussian cluster sit at d' ~ 2.7, well separated
  units far above) AND the projection is unimodal: the density at the deepest point between the
  two clusters is more than ``autosort_merge_valley`` of the smaller peak (two close but distinct
  units leave a valley).

Merged groups are scored as wholes, so small clusters between two units (a bursting neuron's
later, smaller spikes reaching a smaller neighbour's size, events of both) could chain them into
one. Two groups are therefore never merged when their largest clusters would not merge on their
own: independent firing, or, with enough close pairs expected to tell, no shared refractory
period and a valley between them (a unit cut in three along its noise or its drift keeps its
refractory period between its parts; two neurons on one wire lose most close pairs to detection,
but not all: 4 of 23 expected for two neighbours of a bursting neuron, where a neuron keeps 0).
"""

from __future__ import annotations

import numpy as np

from blechrs.core.refractory import cross_refractory, fire_independently

#: Two clusters whose events keep a shared refractory period (see cross_refractory) are merged up
#: to this d' even when their projection looks bimodal.
ISI_MERGE_DPRIME = 6.0

#: Events per cluster used to score a pair (deterministic subsample): plenty for a d' estimate.
PAIR_SAMPLE = 3000


#: A shared refractory period (one neuron): at least this many close pairs expected if the two
#: fired independently, and at most SHARED_MAX_SEEN of them seen.
SHARED_MIN_EXPECTED = 5.0
SHARED_MAX_SEEN = 0.1


def _shared_refractory(observed: int, expected: float) -> bool:
    """Close pairs (core.refractory.cross_refractory) say the two groups are one neuron."""
    return expected >= SHARED_MIN_EXPECTED and observed <= SHARED_MAX_SEEN * expected


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
        if _shared_refractory(obs, exp) and d < ISI_MERGE_DPRIME:
            return min(d, max_dprime * 0.999)  # a shared refractory period: one neuron
        if d >= max_dprime:
            return float("inf")
        return d if _valley_ratio(a, b) > min_valley else float("inf")

    def core(group):
        return max(group, key=lambda c: (len(members[c]), -c))

    def chained(ga, gb):
        """Their largest clusters, on their own, are two units: they fire independently, or
        enough close pairs are expected to tell, they share no refractory period, and they leave
        a valley between them."""
        if len(ga) == 1 and len(gb) == 1:
            return False
        ia, ib = members[core(ga)], members[core(gb)]
        obs, exp = cross_refractory(times[ia], times[ib], fs, duration_s)
        if fire_independently(obs, exp):
            return True
        if exp < SHARED_MIN_EXPECTED or _shared_refractory(obs, exp):
            return False  # too few to tell, or one neuron's refractory period
        return _valley_ratio(features[_subsample(ia, PAIR_SAMPLE)], features[_subsample(ib, PAIR_SAMPLE)]) <= min_valley

    scores: dict[tuple, float] = {}
    while len(groups) > 1:
        best = None
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                key = (tuple(groups[i]), tuple(groups[j]))
                if key not in scores:
                    scores[key] = float("inf") if chained(groups[i], groups[j]) else score(groups[i], groups[j])
                if scores[key] < max_dprime and (best is None or scores[key] < best[0]):
                    best = (scores[key], i, j)
        if best is None:
            break
        _, i, j = best
        merged = sorted(groups[i] + groups[j])
        groups = [g for k, g in enumerate(groups) if k not in (i, j)] + [merged]
        groups.sort()
    return groups
