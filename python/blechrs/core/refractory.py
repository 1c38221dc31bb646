"""Refractory evidence between two groups of events: do they fire as one neuron or as two?

One neuron never fires twice within its refractory period, so events of two groups that are one
neuron keep that gap between them; two independent neurons give close pairs as often as chance.
Auto-sort's cluster merging (merge_clusters) and the template step's unit merging (merge_units)
both ask this.
"""

from __future__ import annotations

import numpy as np

from blechrs.core.metrics import CENSORED_MS, REFRACTORY_MS


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
