"""Reference for the unit-similarity statistic: sample-resolution masks, no search tricks."""

from __future__ import annotations

import numpy as np


def similarity_reference(units, w):
    """Sample-resolution masks: j's spikes dilated by +-w samples, looked up at i's spikes."""
    n_samples = max(int(t.max()) for t in units if len(t)) + w + 2
    out = np.full((len(units), len(units)), np.nan)
    for j, tj in enumerate(units):
        mark = np.zeros(n_samples + 2 * w + 2, np.int64)
        mark[tj + w + 1] = 1
        c = np.cumsum(mark)  # c[k] = spikes of j at samples <= k - w - 1
        for i, ti in enumerate(units):
            if i == j:
                continue
            if len(ti) == 0:
                out[i, j] = 0.0
                continue
            # spikes of j in [t - w, t + w]  =  c[t + 2w + 1] - c[t]
            n_near = c[ti + 2 * w + 1] - c[ti]
            out[i, j] = 100.0 * np.count_nonzero(n_near > 0) / len(ti)
    return out
