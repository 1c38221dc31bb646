"""Band-pass filter against scipy.signal.butter + filtfilt (the independent reference)."""

import numpy as np
import pytest
import scipy.signal as ss
from hypothesis import given, settings, strategies as st

from blechrs import kernels


def rel_err(y, ref):
    rms = np.sqrt(np.mean(ref**2))
    return np.max(np.abs(y - ref)) / rms


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("fs,low,high", [(30000, 300, 3000), (20000, 300, 3000), (25000, 500, 5000), (30000, 600, 6000), (1000, 10, 200)])
def test_design_matches_scipy(order, fs, low, high):
    b, a = kernels.butter_bandpass(order, low, high, fs)
    rb, ra = ss.butter(order, [low, high], "bandpass", fs=fs)
    assert b.dtype == np.float64 and a.dtype == np.float64
    np.testing.assert_allclose(b, rb, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(a, ra, rtol=1e-10, atol=1e-14)


def noisy(rng, shape, dtype, offset=0.0):
    x = rng.normal(size=shape) * 80 + offset
    x += 400 * np.sin(np.arange(shape[-1]) * 2 * np.pi * 60 / 30000)  # hum + offset: real edges
    if dtype == np.int16:
        return np.round(x).astype(np.int16)
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.float64])
@pytest.mark.parametrize("fs,low,high", [(30000, 300, 3000), (20000, 300, 3000), (25000, 400, 6000)])
@pytest.mark.parametrize("twod", [False, True])
def test_bandpass_matches_filtfilt(dtype, fs, low, high, twod):
    rng = np.random.default_rng(1)
    shape = (5, 20011) if twod else (20011,)
    x = noisy(rng, shape, dtype, offset=1500.0)
    scale = 0.195 if dtype == np.int16 else 1.0
    y = kernels.bandpass(x, fs, low, high, scale=scale)
    b, a = ss.butter(2, [low, high], "bandpass", fs=fs)
    ref = ss.filtfilt(b, a, x.astype(np.float64) * scale, axis=-1)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert rel_err(y, ref) <= 1e-4
    # edges included: the first and last 100 samples alone
    assert np.max(np.abs(y[..., :100] - ref[..., :100])) <= 1e-4 * np.sqrt(np.mean(ref**2))
    assert np.max(np.abs(y[..., -100:] - ref[..., -100:])) <= 1e-4 * np.sqrt(np.mean(ref**2))


def test_higher_order():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 5000))
    y = kernels.bandpass(x, 30000, 300, 3000, order=3)
    b, a = ss.butter(3, [300, 3000], "bandpass", fs=30000)
    assert rel_err(y, ss.filtfilt(b, a, x)) <= 1e-4


def test_non_contiguous_and_memmap(tmp_path):
    rng = np.random.default_rng(3)
    x = noisy(rng, (4, 8000), np.int16)
    b, a = ss.butter(2, [300, 3000], "bandpass", fs=30000)
    # Fortran order, a strided view, a reversed view, and a memmap all give scipy's answer.
    for v in (np.asfortranarray(x), x[::2], x[:, ::3], x[::-1, ::-1]):
        y = kernels.bandpass(v, 30000, scale=0.195)
        assert rel_err(y, ss.filtfilt(b, a, v * 0.195)) <= 1e-4
    path = tmp_path / "x.dat"
    x.tofile(path)
    mm = np.memmap(path, dtype=np.int16, mode="r", shape=x.shape)
    assert rel_err(kernels.bandpass(mm, 30000, scale=0.195), ss.filtfilt(b, a, x * 0.195)) <= 1e-4


def test_short_signal_raises_like_scipy():
    b, a = ss.butter(2, [300, 3000], "bandpass", fs=30000)
    with pytest.raises(ValueError):
        ss.filtfilt(b, a, np.zeros(15))
    with pytest.raises(ValueError, match="too short"):
        kernels.bandpass(np.zeros(15), 30000)
    # one sample longer than the padding works, like scipy
    x = np.random.default_rng(0).normal(size=16)
    assert rel_err(kernels.bandpass(x, 30000), ss.filtfilt(b, a, x)) <= 1e-4


def test_bad_input():
    x = np.zeros((2, 1000))
    with pytest.raises(ValueError, match="Nyquist"):
        kernels.bandpass(x, 30000, 300, 15000)
    with pytest.raises(ValueError, match="Nyquist"):
        kernels.bandpass(x, 5000, 300, 3000)
    with pytest.raises(ValueError):
        kernels.butter_bandpass(2, 3000, 300, 30000)
    with pytest.raises(TypeError, match="int16, float32 or float64"):
        kernels.bandpass(x.astype(np.int32), 30000)
    with pytest.raises(TypeError):
        kernels.bandpass([1.0, 2.0, 3.0], 30000)
    with pytest.raises(ValueError, match="2-D"):
        kernels.bandpass(np.zeros((2, 2, 1000)), 30000)
    bad = np.zeros((3, 1000))
    bad[2, 500] = np.nan
    with pytest.raises(ValueError, match="channel 2"):
        kernels.bandpass(bad, 30000)
    bad[2, 500] = np.inf
    with pytest.raises(ValueError, match="channel 2"):
        kernels.bandpass(bad.astype(np.float32), 30000)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(min_value=16, max_value=3001),
    ch=st.integers(min_value=1, max_value=4),
    dtype=st.sampled_from([np.int16, np.float32, np.float64]),
    fs=st.sampled_from([20000.0, 25000.0, 30000.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_bandpass_property(n, ch, dtype, fs, seed):
    rng = np.random.default_rng(seed)
    x = noisy(rng, (ch, n), dtype, offset=rng.uniform(-2000, 2000))
    b, a = ss.butter(2, [300, 3000], "bandpass", fs=fs)
    ref = ss.filtfilt(b, a, x.astype(np.float64) * 0.195)
    y = kernels.bandpass(x, fs, scale=0.195)
    assert rel_err(y, ref) <= 1e-4


@pytest.mark.parametrize("dtype", [np.int16, np.float64])
def test_eight_channel_groups_match_filtfilt(dtype):
    """17 channels: full groups of 8 SIMD lanes (transposed in and out) plus a lone channel, on
    one or two threads, long enough for many tiles, against scipy."""
    rng = np.random.default_rng(4)
    x = noisy(rng, (17, 40001), dtype, offset=-2500.0)
    scale = 0.195 if dtype == np.int16 else 1.0
    b, a = ss.butter(2, [300, 3000], "bandpass", fs=30000)
    ref = ss.filtfilt(b, a, x.astype(np.float64) * scale, axis=-1)
    y = kernels.bandpass(x, 30000, scale=scale)
    assert rel_err(y, ref) <= 1e-4
    for r in range(17):  # each channel on its own scale, edges included
        assert rel_err(y[r], ref[r]) <= 1e-4
