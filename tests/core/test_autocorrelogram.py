"""core.metrics.autocorrelogram against every pair counted directly."""

from __future__ import annotations

import numpy as np

from blechrs.core.metrics import autocorrelogram


def test_autocorrelogram_counts_every_pair_within_the_window():
    rng = np.random.default_rng(1)
    fs = 30000.0
    times = np.sort(rng.choice(600000, 700, replace=False)).astype(np.int64)
    counts, edges = autocorrelogram(times, fs, window_ms=20.0, bin_ms=1.0)
    lags = (times[None, :] - times[:, None]).astype(np.float64) * 1000.0 / fs
    lags = lags[~np.eye(len(times), dtype=bool)]
    lags = lags[(lags != 0) & (np.abs(lags) <= 20.0)]
    expected, _ = np.histogram(np.abs(lags), bins=edges[20:])
    np.testing.assert_array_equal(counts[20:], expected // 2)  # each pair once per direction
    np.testing.assert_array_equal(counts, counts[::-1])
    assert len(edges) == 41 and edges[0] == -20 and edges[-1] == 20


def test_autocorrelogram_of_few_spikes():
    assert autocorrelogram(np.array([], np.int64), 30000.0)[0].sum() == 0
    assert autocorrelogram(np.array([5], np.int64), 30000.0)[0].sum() == 0
    counts, edges = autocorrelogram(np.array([0, 45, 3000000], np.int64), 30000.0, 5.0, 1.0)
    assert counts.sum() == 2 and counts[6] == 1 and counts[3] == 1  # a lag of 1.5 ms: bins 1..2 and -2..-1 ms
