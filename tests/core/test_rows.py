"""core/rows.py: float64 means and products over waveform rows, a chunk at a time, against numpy on
the whole float64 copy (bit for bit); and the sorting steps given the extracted float32 waveforms
against the same steps given their float64 copy (what auto-sort computed on before: issue 17)."""

import numpy as np
import pytest
from scipy.signal import butter, lfilter
from threadpoolctl import threadpool_limits

from blechrs.core import rows as R
from blechrs.core.assign_templates import assign_to_templates
from blechrs.core.features import compute_features
from blechrs.core.merge_units import merge_same_units
from blechrs.core.metrics import unit_metrics
from blechrs.core.noise_units import noise_like_units
from blechrs.core.split_units import split_by_amplitude, split_by_shape
from blechrs.params import SortParams

SIZES = [1, 5, R.CHUNK - 1, R.CHUNK, R.CHUNK + 1, R.CHUNK + R.MIN_TAIL - 1, R.CHUNK + R.MIN_TAIL,
         3 * R.CHUNK + 17, 5 * R.CHUNK + 2000]


def test_spans_cover_every_row_once_without_a_short_tail():
    for n in SIZES + [0]:
        spans = list(R.spans(n))
        assert [i for a, b in spans for i in range(a, b)] == list(range(n))
        if len(spans) > 1:
            assert min(b - a for a, b in spans) >= R.MIN_TAIL


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mean_rows_is_numpy_mean_of_the_copy(n, dtype):
    rng = np.random.default_rng(n)
    w = (rng.standard_normal((n + 50, 75)) * 40.0).astype(np.float32)
    mask = rng.random(n + 50) < 0.9
    for idx in (None, mask, np.flatnonzero(mask)[::-1].copy()):
        copy = (w if idx is None else w[idx]).astype(dtype)
        got = R.mean_rows(w, idx, dtype)
        assert got.dtype == copy.mean(axis=0).dtype
        assert np.array_equal(got, copy.mean(axis=0))


@pytest.mark.parametrize("n", SIZES)
def test_project_rows_is_the_product_of_the_copy(n):
    rng = np.random.default_rng(n + 1)
    w = (rng.standard_normal((n, 75)) * 40.0).astype(np.float32)
    m, v = rng.standard_normal((75, 75)), rng.standard_normal(75)
    idx = np.flatnonzero(rng.random(n) < 0.95)
    with threadpool_limits(limits=1):  # as in the clustering workers
        copy = w[idx].astype(np.float64)
        assert np.array_equal(R.project_rows(w, idx, v), copy @ v)
        assert np.array_equal(R.project_rows(w, idx, m), copy @ m)
        assert np.array_equal(R.project_rows(w, idx, m, v), (copy @ m) @ v)


FS = 30000.0


def _electrode(seed=0, counts=(9000, 6000, 2500), n_noise=3000):
    """Events of three units (trough 60, 90, 140 uV, two shapes) and noise crossings in band-passed
    noise, float32 as the engine extracts them; more events than three chunks."""
    rng = np.random.default_rng(seed)
    t = (np.arange(75) - 30) / FS * 1000.0
    b, a = butter(2, [300, 3000], btype="bandpass", fs=FS)
    n = sum(counts) + n_noise
    noise = lfilter(b, a, rng.standard_normal(n * 75 + 1000))[1000:].reshape(n, 75)
    noise *= 10.0 / noise.std()
    w, k0 = noise.copy(), 0
    for k, (count, size) in enumerate(zip(counts, (60.0, 90.0, 140.0))):
        width = 1.0 + 0.3 * (k == 1)
        shape = -np.exp(-0.5 * (t / (0.12 * width)) ** 2) + 0.35 * np.exp(-0.5 * ((t - 0.45 * width) / (0.25 * width)) ** 2)
        w[k0:k0 + count] += rng.normal(1.0, 0.08, count)[:, None] * shape * size
        k0 += count
    truth = np.concatenate([np.full(c, k) for k, c in enumerate(counts)] + [np.full(n_noise, -1)])
    times = np.sort(rng.choice(600 * int(FS), n, replace=False))
    return w.astype(np.float32), truth, times


def test_sorting_steps_give_the_same_on_float32_waveforms_as_on_their_float64_copy():
    w32, truth, times = _electrode()
    w64 = w32.astype(np.float64)
    params = SortParams()
    with threadpool_limits(limits=1):
        assert np.array_equal(compute_features(w32, params), compute_features(w64, params))
        # a lumped start: units 0 and 1 as one, unit 2, noise crossings in the first
        start = np.where(truth == 2, 1, 0)
        a32 = assign_to_templates(w32, start, FS, 600.0)
        assert np.array_equal(a32, assign_to_templates(w64, start, FS, 600.0))
        s32 = split_by_shape(w32, split_by_amplitude(w32, a32, 40.0, 30))
        assert np.array_equal(s32, split_by_shape(w64, split_by_amplitude(w64, a32, 40.0, 30)))
        assert s32.max() > a32.max()  # the lumped unit was split: the chunked paths ran
        assert np.array_equal(merge_same_units(w32, s32, times, FS, 600.0, burst_merge=True),
                              merge_same_units(w64, s32, times, FS, 600.0, burst_merge=True))
        assert noise_like_units(w32, s32, 30, FS, 600.0) == noise_like_units(w64, s32, 30, FS, 600.0)
        features = compute_features(w32, params)
        for k in range(int(s32.max()) + 1):
            m32 = unit_metrics(w32, times, features, s32 == k, FS, 10.0, 600.0, 30, dtype=np.float64)
            m64 = unit_metrics(w64, times, features, s32 == k, FS, 10.0, 600.0, 30)
            assert m32.keys() == m64.keys()
            assert all(m32[key] == m64[key] or (np.isnan(m32[key]) and np.isnan(m64[key])) for key in m32)
