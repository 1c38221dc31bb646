"""Which units share their spikes (spec 8.2).

``similarity[i, j]`` = % of unit *i*'s spikes that have at least one spike of unit *j* at most
``similarity_window_ms`` (1 ms) away, in samples. Numerator and denominator both count unit *i*'s
spikes, so it lies in [0, 100]. blech_clust counts *i*'s spikes that share the same or the
previous 1-ms bin with *j* and then divides by *j*'s spike count, mixing the two units (the result
can exceed 100 % and depends on which unit bursts). A pair is reported when either direction
exceeds ``similarity_cutoff`` (50 %): a small unit that is a copy of part of a big one is caught
from its own side even though it is a small share of the big one.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def unit_similarity(
    unit_times: Sequence[np.ndarray], sampling_rate: float, window_ms: float = 1.0, chunk: int = 1 << 18
) -> np.ndarray:
    """``(n, n)`` float64: % of unit i's spikes with a unit-j spike within ``window_ms``; diagonal NaN.

    The session is cut into stretches of about ``chunk`` spikes; each stretch's spikes, with those
    of every unit up to a window beyond its ends, are merged in time order, where each spike's
    neighbours within the window are a contiguous run, so every (spike, neighbouring unit) pair is
    found in one pass (O(total spikes x neighbours), not O(units^2) searches). Memory follows the
    stretch, not the session.
    """
    w = int(round(window_ms * sampling_rate / 1000.0))
    n = len(unit_times)
    times = [_sorted(t) for t in unit_times]
    lens = np.array([len(t) for t in times], dtype=np.int64)
    hits = np.zeros(n * n, dtype=np.int64)
    if n and lens.sum():
        first = min(int(t[0]) for t in times if len(t))
        last = max(int(t[-1]) for t in times if len(t))
        span = max(1, -(-(last - first + 1) * chunk // int(lens.sum())))
        for start in range(first, last + 1, span):
            hits += _stretch_hits(times, start, start + span, w)
    hits = hits.reshape(n, n).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        sim = np.where(lens[:, None] > 0, 100.0 * hits / np.maximum(lens, 1)[:, None], 0.0)
    np.fill_diagonal(sim, np.nan)
    return sim


def _sorted(t) -> np.ndarray:
    t = np.asarray(t, dtype=np.int64).reshape(-1)
    return t if len(t) < 2 or bool(np.all(t[1:] >= t[:-1])) else np.sort(t)


def _stretch_hits(times: list[np.ndarray], start: int, stop: int, w: int) -> np.ndarray:
    """(n * n) counts of the spikes in [start, stop) of unit i with a unit-j spike within ``w``."""
    n = len(times)
    parts, labels, centres = [], [], []
    for k, t in enumerate(times):
        a, b, c = np.searchsorted(t, [start - w, start, stop], side="left")
        d = int(np.searchsorted(t, stop - 1 + w, side="right"))  # neighbours of the last centre
        idx = np.arange(a, d)
        parts.append(t[a:d])
        labels.append(np.full(d - a, k, dtype=np.int64))
        centres.append((idx >= b) & (idx < c))
    all_t = np.concatenate(parts)
    if not len(all_t):
        return np.zeros(n * n, dtype=np.int64)
    lab, is_centre = np.concatenate(labels), np.concatenate(centres)
    order = np.argsort(all_t, kind="stable")
    all_t, lab, is_centre = all_t[order], lab[order], is_centre[order]
    p = np.flatnonzero(is_centre)
    if not len(p):
        return np.zeros(n * n, dtype=np.int64)
    tp = all_t[p]
    lo = np.searchsorted(all_t, tp - w, side="left")
    hi = np.searchsorted(all_t, tp + w, side="right")
    cnt = hi - lo  # >= 1: the spike itself
    total = int(cnt.sum())
    first = np.repeat(np.cumsum(cnt) - cnt, cnt)
    q = np.arange(total, dtype=np.int64) - first + np.repeat(lo, cnt)
    pp = np.repeat(p, cnt)
    # one count per (spike, neighbouring unit), however many of that unit's spikes are near
    key = np.sort(pp * n + lab[q])  # already grouped by spike: a cheap sort
    key = key[np.concatenate(([True], key[1:] != key[:-1]))]
    return np.bincount(lab[key // n] * n + key % n, minlength=n * n)


def similarity_violations(
    similarity: np.ndarray,
    spike_counts: Sequence[int],
    names: Sequence[str] | None = None,
    cutoff: float = 50.0,
    count_cutoff: float = 10.0,
) -> list[dict[str, Any]]:
    """Pairs (i < j) with ``max(sim[i, j], sim[j, i]) > cutoff``, most similar first."""
    n = similarity.shape[0]
    names = list(names) if names is not None else [f"unit{i:03d}" for i in range(n)]
    out = []
    for i in range(n):
        for j in range(i + 1, n):
            a, b = float(similarity[i, j]), float(similarity[j, i])
            if max(a, b) > cutoff:
                hi, lo = max(spike_counts[i], spike_counts[j]), min(spike_counts[i], spike_counts[j])
                out.append(
                    {
                        "unit_a": names[i], "unit_b": names[j],
                        "pct_a_in_b": round(a, 3), "pct_b_in_a": round(b, 3),
                        "spikes_a": int(spike_counts[i]), "spikes_b": int(spike_counts[j]),
                        "similar_counts": bool(hi > 0 and 100.0 * (hi - lo) / hi <= count_cutoff),
                    }
                )
    out.sort(key=lambda v: (-max(v["pct_a_in_b"], v["pct_b_in_a"]), v["unit_a"], v["unit_b"]))
    return out


def closest_unit(similarity: np.ndarray, i: int) -> tuple[int, float, float] | None:
    """The unit sharing most of unit ``i``'s or its own spikes with the other: (its index, % of
    unit i's spikes near it, % of its spikes near unit i), or None if no unit shares any."""
    n = similarity.shape[0]
    row = np.where(np.isnan(similarity[i]), -1.0, similarity[i]) if n > 1 else np.zeros(0)
    col = np.where(np.isnan(similarity[:, i]), -1.0, similarity[:, i]) if n > 1 else np.zeros(0)
    both = np.maximum(row, col) if row.size else row
    j = int(np.argmax(both)) if both.size else -1
    if j < 0 or not both[j] > 0:
        return None
    return j, float(row[j]), float(col[j])
