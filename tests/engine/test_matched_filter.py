"""The engine's matched-filter detection against scipy's correlation and a greedy suppression
written here."""

import numpy as np
import pytest
from scipy.signal import correlate

from blechrs import kernels


def _reference(x, filters, before, thresholds, weights, biases, half_width):
    """scipy correlation, local maxima (>= left, > right) above each unit's threshold, greedy
    suppression by score (ties: earlier, lower unit)."""
    n, length = len(x), filters.shape[1]
    cand = []
    for u, f in enumerate(filters):
        z = correlate(x.astype(np.float64), f.astype(np.float64), mode="valid")  # z[i] at t = i + before
        t = np.arange(len(z)) + before
        left = np.concatenate([[-np.inf], z[:-1]])
        right = np.concatenate([z[1:], [-np.inf]])
        peak = (z > thresholds[u]) & (z >= left) & (z > right)
        for i in np.flatnonzero(peak):
            cand.append((-(weights[u] * z[i] + biases[u]), int(t[i]), u, z[i]))
    assert all(c[1] - before + length <= n for c in cand)
    kept = []
    for _, t, u, z in sorted(cand):
        if all(abs(t - k[0]) > half_width for k in kept):
            kept.append((t, u, z))
    kept.sort()
    return (np.array([k[0] for k in kept], dtype=np.int64), np.array([k[1] for k in kept], dtype=np.int64),
            np.array([k[2] for k in kept]))


def _trace(seed, n=200_000):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n).astype(np.float32)
    shapes = np.stack([np.sin(np.linspace(0, np.pi, 20)) * -1.0, np.sin(np.linspace(0, 2 * np.pi, 20))])
    truth = []
    for u, s in enumerate(shapes):
        t = np.sort(rng.choice(np.arange(50, n - 50), size=300, replace=False))
        for ti in t:
            x[ti - 5:ti + 15] += (3.0 + u) * s
        truth.append(t)
    filters = (shapes / np.linalg.norm(shapes, axis=1, keepdims=True)).astype(np.float32)
    return x, filters, truth


def test_detections_match_scipy_correlation_and_greedy_suppression():
    x, filters, _ = _trace(0)
    args = (5, [3.0, 3.5], [1.0, 1.5], [0.0, -2.0], 12)
    t, u, z = kernels.matched_filter_detect(x, filters, *args)
    rt, ru, rz = _reference(x, filters, *args)
    assert len(rt) > 500
    np.testing.assert_array_equal(t, rt)
    np.testing.assert_array_equal(u, ru)
    np.testing.assert_allclose(z, rz, rtol=1e-4, atol=1e-4)


def test_planted_spikes_are_found_and_threads_do_not_change_the_answer():
    x, filters, truth = _trace(1)
    args = (5, [4.0, 4.0], [1.0, 1.0], [0.0, 0.0], 10)
    one = kernels.matched_filter_detect(x, filters, *args, threads=1)
    two = kernels.matched_filter_detect(x[::-1].copy()[::-1], filters, *args, threads=2)  # strided input too
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
    t, u, _ = one
    every = np.sort(np.concatenate(truth))
    for k, tt in enumerate(truth):
        # the peak of the correlation sits at the planted window's start + before (+-2: the
        # half-sine's correlation peak is broad, noise moves it); spikes
        # overlapping another planted spike (within a window) are one event or distorted
        gap = np.abs(every[None, :] - tt[:, None])
        alone = np.sort(gap, axis=1)[:, 1] > 20
        near = np.abs(t[u == k][:, None] - tt[None, alone]).min(axis=0) <= 2
        assert alone.mean() > 0.8 and near.mean() > 0.99


@pytest.mark.parametrize("bad", [dict(before=20), dict(thresholds=[1.0]), dict(weights=[1.0, np.nan]),
                                 dict(filters=np.full((2, 20), np.inf, np.float32))])
def test_bad_arguments_are_one_line_value_errors(bad):
    x, filters, _ = _trace(2, n=1000)
    kw = dict(x=x, filters=filters, before=5, thresholds=[3.0, 3.0], weights=[1.0, 1.0], biases=[0.0, 0.0],
              half_width=10)
    kw.update(bad)
    with pytest.raises(ValueError) as e:
        kernels.matched_filter_detect(**kw)
    assert "\n" not in str(e.value)
