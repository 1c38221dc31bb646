"""Accuracy of labels against the true unit of each event: scipy's Hungarian matching, no blechrs code."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def accuracy_per_unit(truth, labels):
    """Hungarian matching of true units to labels; accuracy = tp / (n_true + n_label - tp)."""
    t_ids = [u for u in np.unique(truth) if u >= 0]
    l_ids = [u for u in np.unique(labels) if u >= 0]
    acc = np.zeros((len(t_ids), max(1, len(l_ids))))
    for i, a in enumerate(t_ids):
        for j, b in enumerate(l_ids):
            tp = np.sum((truth == a) & (labels == b))
            acc[i, j] = tp / (np.sum(truth == a) + np.sum(labels == b) - tp)
    rows, cols = linear_sum_assignment(-acc)
    out = np.zeros(len(t_ids))
    out[rows] = acc[rows, cols]
    return out
