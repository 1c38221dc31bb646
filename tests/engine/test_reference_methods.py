"""The echo-free CAR references (``reference_method`` 'median' and 'clipped_mean') against numpy,
whole-array and streamed, and what they are for: a large spike on one wire leaves no inverted
copy on the other wires of its group."""

import numpy as np
import pytest

from support import engine_reference as ref
from blechrs import kernels
from blechrs.params import SortParams

FS = 20000.0


def numpy_car(x, groups, method, clip=3.0):
    """Each member minus MAD x the per-sample combination of the normalised members (median and
    MAD from every 100th sample), written out here independently of tests/support."""
    x = np.asarray(x, dtype=np.float64)
    dec = x[:, ::100]
    med = np.median(dec, axis=1)
    mad = np.median(np.abs(dec - med[:, None]), axis=1)
    out = x.copy()
    for g in set(groups) - {-1}:
        idx = [i for i, gi in enumerate(groups) if gi == g]
        z = (x[idx] - med[idx, None]) / mad[idx, None]
        zs = np.sort(z, axis=0)
        n = len(idx)
        m = zs[n // 2] if n % 2 else (zs[n // 2 - 1] + zs[n // 2]) / 2
        if method == "median":
            r = m
        else:
            near = np.abs(z - m) <= clip
            r = np.array([z[near[:, j], j].mean() if near[:, j].any() else m[j] for j in range(z.shape[1])])
        out[idx] = x[idx] - mad[idx, None] * r
    return out


def recording(nch=7, n=60000, seed=1):
    rng = np.random.default_rng(seed)
    common = rng.normal(size=n) * 30
    x = common + rng.normal(size=(nch, n)) * 20 + rng.uniform(-500, 500, size=(nch, 1))
    t = np.arange(40)
    big = -3000 * np.exp(-(((t - 10) / 2.0) ** 2))  # ~150 x the own noise
    spikes = np.arange(1000, n - 100, 1500)
    for s in spikes:
        x[0, s:s + 40] += big
    return np.round(x).astype(np.int16), spikes + 10


@pytest.mark.parametrize("method", ["median", "clipped_mean"])
@pytest.mark.parametrize("groups", [[0, 0, 0, 0, 1, 1, 1], [0] * 7])
def test_whole_array_matches_numpy(method, groups):
    x, _ = recording()
    y, dead = kernels.common_average_reference(x, groups, method, 3.0)
    assert dead == []
    np.testing.assert_allclose(y, numpy_car(x, groups, method), rtol=1e-6, atol=2e-3)


@pytest.mark.parametrize("method", ["mean", "median", "clipped_mean"])
@pytest.mark.parametrize("skip", [0, 1, 255, 257, 33333, 60000])
def test_skip_references_the_rest_with_the_whole_statistics(method, skip):
    """``skip``: the first samples set the medians and MADs but are not referenced nor returned;
    the rest are referenced as in the whole array (the store's own-wire test: a recording's head
    for the statistics, spike windows after it), to the bit."""
    x, _ = recording()
    x[2, :5000] = 7  # a wire flat in the head only: live by the whole statistics, referenced as such
    groups = [0, 0, 0, 0, 1, 1, -1]
    whole, dead = kernels.common_average_reference(x, groups, method, 3.0)
    y, dead_skip = kernels.common_average_reference(x, groups, method, 3.0, skip=skip)
    assert y.shape == (7, x.shape[1] - skip) and dead_skip == dead
    np.testing.assert_array_equal(y, whole[:, skip:])
    if method != "mean":
        np.testing.assert_allclose(y, numpy_car(x, groups, method)[:, skip:], rtol=1e-6, atol=2e-3)
    else:
        ours = np.asarray(x, np.float64)
        dec = ours[:, ::100]
        med = np.median(dec, axis=1)
        mad = np.median(np.abs(dec - med[:, None]), axis=1)
        for idx in ([0, 1, 2, 3], [4, 5]):
            r = np.mean((ours[idx] - med[idx, None]) / mad[idx, None], axis=0)
            ours[idx] -= mad[idx, None] * r
        np.testing.assert_allclose(y, ours[:, skip:], rtol=1e-6, atol=2e-3)
    with pytest.raises(ValueError, match="skip"):
        kernels.common_average_reference(x, groups, method, 3.0, skip=x.shape[1] + 1)


@pytest.mark.parametrize("method", ["median", "clipped_mean"])
def test_streamed_matches_numpy_pipeline(method):
    x, _ = recording()
    groups = [0, 0, 0, 0, 1, 1, 1]
    p = SortParams().replace(sampling_rate=FS, rolling_threshold_window=1.0, waveform_threshold=5.0,
                             reference_method=method)
    got = kernels.extract_electrodes(x, [0, 1, 4], groups, p.extract, threads=2)
    exp = ref.pipeline(x, FS, p.to_flat(), [0, 1, 4], groups)
    for g, e in zip(got, exp):
        np.testing.assert_array_equal(g["times"], e["times"])
        np.testing.assert_allclose(g["waveforms"], e["waveforms"], atol=1e-4 * np.abs(e["waveforms"]).max(initial=1.0))
    assert len(got[0]["times"]) >= 35 and len(got[1]["times"]) == 0  # the big unit, and no echo of it


def test_robust_references_leave_no_echo():
    x, spikes = recording()
    groups = [0] * 7
    size = {}
    for method in ("mean", "median", "clipped_mean"):
        y, _ = kernels.common_average_reference(x, groups, method, 3.0)
        # the other wires' (own-noise-free) deflection at the big spike's trough
        size[method] = np.abs(np.median(y[1:, spikes] - np.median(y[1:], axis=1, keepdims=True)))
    assert size["mean"] > 3000 / 7 * 0.8  # the mean's inverted 1/N copy
    assert size["median"] < 10 and size["clipped_mean"] < 10


def test_bad_method_is_refused():
    with pytest.raises(ValueError, match="method"):
        kernels.common_average_reference(np.zeros((2, 300), np.int16), [0, 0], "mode", 3.0)
    from blechrs.errors import ParamsError
    with pytest.raises(ParamsError, match="reference_method"):
        SortParams.from_flat({"reference_method": "mode"}, source="x.params")
