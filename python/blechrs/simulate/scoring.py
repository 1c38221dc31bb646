"""Score a sorting against a simulation's ground truth.

The score is the usual one (spikeinterface's compare_sorter_to_ground_truth): a sorted spike
matches a true spike within 0.4 ms; ground-truth and sorted units are paired one to one by the
Hungarian algorithm on their agreement; accuracy = matches / (true + sorted - matches). The
Hungarian algorithm is written here (scipy is not a runtime dependency of blechrs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


def linear_sum_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost one-to-one assignment of the rows and columns of a rectangular matrix
    (the Kuhn-Munkres / Jonker-Volgenant shortest augmenting path algorithm, O(n^2 m)).
    Returns (rows, cols) as scipy.optimize.linear_sum_assignment does."""
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError("cost must be a 2-D matrix")
    transposed = c.shape[0] > c.shape[1]
    if transposed:
        c = c.T
    n, m = c.shape  # n <= m
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if not np.all(np.isfinite(c)):
        raise ValueError("cost matrix has non-finite entries")
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    p = np.zeros(m + 1, dtype=np.int64)  # p[j] = row (1-based) matched to column j; 0 = free
    way = np.zeros(m + 1, dtype=np.int64)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            free = ~used[1:]
            cur = c[i0 - 1] - u[i0] - v[1:]
            js = np.flatnonzero(free)
            better = cur[js] < minv[js + 1]
            upd = js[better] + 1
            minv[upd] = cur[js][better]
            way[upd] = j0
            cand = js + 1
            j1 = int(cand[np.argmin(minv[cand])])
            delta = minv[j1]
            usedj = np.flatnonzero(used)
            u[p[usedj]] += delta
            v[usedj] -= delta
            minv[~used] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while True:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
            if j0 == 0:
                break
    rows, cols = [], []
    for j in range(1, m + 1):
        if p[j]:
            rows.append(p[j] - 1)
            cols.append(j - 1)
    rows_a, cols_a = np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64)
    if transposed:
        rows_a, cols_a = cols_a, rows_a
    order = np.argsort(rows_a)
    return rows_a[order], cols_a[order]


def count_matches(a: np.ndarray, b: np.ndarray, window: float) -> int:
    """Number of one-to-one pairs of events of two trains closer than ``window`` samples: each
    event of ``a`` is paired with its nearest event of ``b`` within the window, each ``b`` used
    once. Exact when each train's events are more than ``2 * window`` apart (true spike trains
    have a refractory period; detection has a dead time)."""
    a = np.sort(np.asarray(a, dtype=np.int64))
    b = np.sort(np.asarray(b, dtype=np.int64))
    if len(a) == 0 or len(b) == 0:
        return 0
    k = np.searchsorted(b, a)
    left = np.clip(k - 1, 0, len(b) - 1)
    right = np.clip(k, 0, len(b) - 1)
    dl = np.abs(a - b[left])
    dr = np.abs(b[right] - a)
    nearest = np.where(dr < dl, right, left)
    d = np.minimum(dl, dr)
    return int(len(np.unique(nearest[d <= window])))


@dataclass
class UnitScore:
    gt_unit: int
    channel: int
    n_true: int
    sorted_unit: str | None
    matches: int
    n_sorted: int

    @property
    def accuracy(self) -> float:
        denom = self.n_true + self.n_sorted - self.matches
        return self.matches / denom if denom else 0.0

    @property
    def precision(self) -> float:
        return self.matches / self.n_sorted if self.n_sorted else 0.0

    @property
    def recall(self) -> float:
        return self.matches / self.n_true if self.n_true else 0.0


def score_sorting(gt_times: Sequence[np.ndarray], gt_channels: Sequence[int], sorted_times: dict[str, np.ndarray],
                  sampling_rate: float, delta_ms: float = 0.4, min_agreement: float = 0.0,
                  sorted_channels: dict[str, int] | None = None) -> tuple[list[UnitScore], list[str]]:
    """Score sorted units against ground truth. Returns (one score per ground-truth unit, the
    names of sorted units matched to no ground-truth unit). With ``sorted_channels`` only units
    on the same wire are compared (the others cannot share spikes)."""
    window = int(round(delta_ms * sampling_rate / 1000.0))
    names = list(sorted_times)
    n_gt, n_s = len(gt_times), len(names)
    matches = np.zeros((n_gt, n_s), dtype=np.int64)
    agreement = np.zeros((n_gt, n_s))
    for i, t in enumerate(gt_times):
        for j, name in enumerate(names):
            if sorted_channels is not None and sorted_channels[name] != gt_channels[i]:
                continue
            m = count_matches(t, sorted_times[name], window)
            matches[i, j] = m
            denom = len(t) + len(sorted_times[name]) - m
            agreement[i, j] = m / denom if denom else 0.0
    scores: list[UnitScore] = []
    paired: dict[int, int] = {}
    if n_gt and n_s:
        rows, cols = linear_sum_assignment(-agreement)
        paired = {int(r): int(c) for r, c in zip(rows, cols) if agreement[r, c] > min_agreement}
    for i, t in enumerate(gt_times):
        j = paired.get(i)
        scores.append(UnitScore(i, int(gt_channels[i]), len(t), names[j] if j is not None else None,
                                int(matches[i, j]) if j is not None else 0,
                                len(sorted_times[names[j]]) if j is not None else 0))
    matched = {names[j] for j in paired.values()}
    return scores, [n for n in names if n not in matched]
