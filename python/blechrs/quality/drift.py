"""Does a unit drift over the session? (spec 8.3)

Per unit, spikes are counted per trial in ``[-drift_baseline_ms, 0)`` (baseline) and
``[0, drift_post_ms)`` (response) around the onset. The session's trials are cut, in delivery
order, into ``n_trial_bins`` consecutive groups. A linear-model F test asks whether the group
explains the counts beyond the taste (taste + group vs taste alone; with one taste this is the
one-way ANOVA). blech_clust uses pingouin's two-way / repeated-measures ANOVA; blechrs needs no
scipy at run time (:mod:`blechrs.quality.stats`). Trials whose window leaves the recording are
left out. A unit is flagged when either window's p is below ``drift_alpha / 2`` (Bonferroni over
the two windows, so a stable unit is flagged with probability ~``drift_alpha``; checked by
simulation: 10.8 % of 400 stationary Poisson units had a p < 0.05 in either window).

The F test needs independent counts: when trials are closer together than
``drift_baseline_ms + drift_post_ms``, consecutive trials' windows share spikes, their counts are
a moving average of one spike train, and the groups differ by chance far more than the test
allows (on the simulator's default trials, 1-2 s apart, 43 of 78 stationary units were flagged).
So only trials whose windows overlap no earlier kept trial's are used (in delivery order: the
first trial, then each trial starting after the last kept one's window ended); the record says
how many were left out (``n_overlapping``).

A test also needs at least as many residual degrees of freedom as the full model has parameters
(tastes + trial groups - 1): with fewer trials, small integer counts are often fitted exactly and
the F statistic is infinite or wild. Such a unit is not tested (p NaN, ``too_few_trials``), not
flagged: a 30 s demo with 6 usable trials in 4 groups of 2 tastes (1 residual degree of freedom)
flagged 5 of its 14 stationary units with p = 0.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from blechrs.params import SortParams
from blechrs.quality.stats import f_sf


def trial_group(n_trials: int, n_groups: int) -> np.ndarray:
    """Group of each trial (in delivery order) when cut into ``n_groups`` consecutive, near-equal groups."""
    return (np.arange(n_trials) * n_groups) // max(n_trials, 1)


def _rss(y: np.ndarray, x: np.ndarray) -> tuple[float, int]:
    beta, _, rank, _ = np.linalg.lstsq(x, y, rcond=None)
    r = y - x @ beta
    return float(r @ r), int(rank)


def group_f_test(y: np.ndarray, group: np.ndarray, covariate: np.ndarray) -> tuple[float, float, int, int]:
    """F test of ``group`` beyond ``covariate`` (both categorical): (F, p, df1, df2)."""
    y = np.asarray(y, dtype=np.float64)
    _, cov = np.unique(covariate, return_inverse=True)
    _, grp = np.unique(group, return_inverse=True)
    x_red = np.eye(cov.max() + 1)[cov] if len(y) else np.zeros((0, 1))
    x_full = np.hstack([x_red, np.eye(grp.max() + 1)[grp][:, 1:]]) if len(y) else x_red
    rss_r, rank_r = _rss(y, x_red)
    rss_f, rank_f = _rss(y, x_full)
    df1, df2 = rank_f - rank_r, len(y) - rank_f
    if df1 <= 0 or df2 <= 0:
        return math.nan, math.nan, df1, df2
    scale = max(float(y @ y), 1.0)
    gain = max(rss_r - rss_f, 0.0)
    if rss_f <= 1e-12 * scale:  # no variance left (e.g. all counts equal)
        return (math.nan, math.nan, df1, df2) if gain <= 1e-12 * scale else (math.inf, 0.0, df1, df2)
    f = (gain / df1) / (rss_f / df2)
    return f, f_sf(f, df1, df2), df1, df2


def _window_counts(times: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.searchsorted(times, hi, side="left") - np.searchsorted(times, lo, side="left")


def non_overlapping(onsets: np.ndarray, pre: int, post: int) -> np.ndarray:
    """Which of the sorted ``onsets`` to keep so that no two kept trials' windows
    ``[onset - pre, onset + post)`` overlap: greedily, in order."""
    keep = np.zeros(len(onsets), dtype=bool)
    free = None  # the first sample after the last kept window
    for i, t in enumerate(onsets):
        if free is None or t - pre >= free:
            keep[i] = True
            free = t + post
    return keep


def drift_check(
    unit_times: Sequence[np.ndarray],
    onsets: np.ndarray,
    tastes: Sequence[str],
    sampling_rate: float,
    params: SortParams | None = None,
    n_samples: int | np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """One dict per unit: baseline and response F, p, group means (Hz) and ``flagged``.

    ``onsets``/``tastes``: every trial of the session, any order (sorted here by onset).
    ``n_samples``: the recording length, or per trial (aligned with ``onsets``) the end of the
    samples known to be recorded; trials whose windows pass it, or start before 0, are left out.
    """
    p = params or SortParams()
    fs = float(sampling_rate)
    onsets = np.asarray(onsets, dtype=np.int64)
    order = np.argsort(onsets, kind="stable")
    onsets, tastes = onsets[order], np.asarray(tastes, dtype=object)[order]
    if n_samples is not None and np.ndim(n_samples):
        n_samples = np.asarray(n_samples)[order]
    pre = int(round(p.quality.drift_baseline_ms * fs / 1000.0))
    post = int(round(p.quality.drift_post_ms * fs / 1000.0))
    keep = onsets - pre >= 0
    if n_samples is not None:
        keep &= onsets + post <= n_samples
    onsets, tastes = onsets[keep], tastes[keep]
    apart = non_overlapping(onsets, pre, post)
    n_overlapping = int(len(onsets) - apart.sum())
    onsets, tastes = onsets[apart], tastes[apart]
    group = trial_group(len(onsets), p.quality.n_trial_bins)
    parameters = len(np.unique(tastes)) + len(np.unique(group)) - 1  # of the full model (taste + group)
    too_few = len(onsets) - parameters < parameters
    out = []
    for times in unit_times:
        t = np.sort(np.asarray(times, dtype=np.int64))
        rec: dict[str, Any] = {"n_trials": int(len(onsets)), "n_overlapping": n_overlapping,
                               "too_few_trials": bool(too_few)}
        for label, lo, hi, ms in (("baseline", onsets - pre, onsets, p.quality.drift_baseline_ms),
                                  ("response", onsets, onsets + post, p.quality.drift_post_ms)):
            counts = _window_counts(t, lo, hi).astype(np.float64)
            f, pv, df1, df2 = (group_f_test(counts, group, tastes) if len(counts) and not too_few
                               else (math.nan, math.nan, 0, 0))
            rec[label] = {
                "F": f, "p": pv, "df": [df1, df2],
                "group_rate_hz": [float(counts[group == g].mean() * 1000.0 / ms) if np.any(group == g) else math.nan
                                  for g in range(p.quality.n_trial_bins)],
            }
        # Bonferroni over the two windows: a stable unit is flagged with probability ~alpha, not
        # ~2 alpha (blech_clust warns on either test at alpha)
        rec["flagged"] = any(
            not math.isnan(rec[k]["p"]) and rec[k]["p"] < p.quality.drift_alpha / 2 for k in ("baseline", "response")
        )
        out.append(rec)
    return out
