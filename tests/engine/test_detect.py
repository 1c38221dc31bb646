"""Noise, detection, waveforms and cutoff kernels against independent numpy implementations."""

import numpy as np
import pytest
import scipy.signal as ss
from hypothesis import given, settings, strategies as st

from support import engine_reference as ref
from blechrs import kernels

FS = 30000.0


def spike_template(fs=FS):
    """A biphasic extracellular spike (uV): sharp trough then a slower positive lobe."""
    t = np.arange(int(3e-3 * fs)) / fs
    tr = 1e-3
    return -120 * np.exp(-(((t - tr) / 0.00012) ** 2)) + 45 * np.exp(-(((t - tr - 0.0004) / 0.00025) ** 2))


def synthetic(n_spikes=60, seconds=4.0, fs=FS, seed=0, noise_uv=8.0):
    """Filtered-domain test signal: band-passed noise plus spikes at known times."""
    rng = np.random.default_rng(seed)
    n = int(seconds * fs)
    b, a = ss.butter(2, [300, 3000], "bandpass", fs=fs)
    x = ss.filtfilt(b, a, rng.normal(size=n)) 
    x *= noise_uv / x.std()
    tpl = spike_template(fs)
    trough = int(np.argmin(tpl))
    # spikes at least 4 ms apart, away from the edges
    gaps = rng.integers(int(4e-3 * fs), int(2 * seconds * fs / n_spikes), size=n_spikes)
    starts = int(0.01 * fs) + np.cumsum(gaps)
    starts = starts[starts + len(tpl) < n - int(0.01 * fs)]
    for s in starts:
        x[s : s + len(tpl)] += tpl
    return x.astype(np.float32), starts + trough


def test_noise_level_matches_numpy():
    x, _ = synthetic()
    for w in (None, 0.5, 1.0, 1.3):
        win = None if w is None else int(round(w * FS))
        bounds = ref.windows(len(x), win)
        expect = [v for v, _ in ref.noise(x, bounds)]
        got = kernels.noise_level(x, FS, w)
        assert got.dtype == np.float64 and len(got) == len(bounds)
        np.testing.assert_allclose(got, expect, rtol=1e-6)
    # 2-D gives channels x windows
    two = np.stack([x, 2 * x])
    got = kernels.noise_level(two, FS, 1.0)
    np.testing.assert_allclose(got[1], 2 * got[0], rtol=1e-6)
    # float64 and int16 input too
    np.testing.assert_allclose(kernels.noise_level(x.astype(np.float64), FS), kernels.noise_level(x, FS), rtol=1e-6)
    xi = np.round(x * 10).astype(np.int16)
    np.testing.assert_allclose(kernels.noise_level(xi, FS), [ref.noise(xi, [(0, len(xi))])[0][0]], rtol=1e-6)


@pytest.mark.parametrize("step", [2, 7, 10])
def test_subsampled_noise_and_centres_match_numpy(step):
    """subsample=N: both medians over x[a:b:N] of each window, checked against numpy exactly."""
    x, _ = synthetic(seed=3)
    for w in (None, 1.0, 1.3):
        bounds = ref.windows(len(x), None if w is None else int(round(w * FS)))
        nz = ref.noise(x, bounds, step)
        got = kernels.noise_level(x, FS, w, subsample=step)
        np.testing.assert_allclose(got, [v for v, _ in nz], rtol=1e-6)
        # detection centres each window on the same subsampled median
        th = 5 * got
        times, pol = kernels.detect_spikes(x, th, FS, w, "both", 0.5, subsample=step)
        et, ep = ref.detect(x, bounds, th, "both", int(round(0.5 * FS / 1000)), centres=[m for _, m in nz])
        np.testing.assert_array_equal(times, et)
        np.testing.assert_array_equal(pol, ep)
    np.testing.assert_array_equal(kernels.noise_level(x, FS, 1.0, subsample=1), kernels.noise_level(x, FS, 1.0))
    with pytest.raises(ValueError, match="subsample"):
        kernels.noise_level(x, FS, subsample=0)


def test_subsampled_threshold_is_close_to_exact():
    """The default 1/10 subsample moves 5 s-window thresholds of band-passed Gaussian noise by ~1 %."""
    fs = 30000.0
    rng = np.random.default_rng(11)
    y = kernels.bandpass(rng.normal(size=int(60 * fs)) * 40, fs)
    exact = kernels.noise_level(y, fs, 5.0)
    sub = kernels.noise_level(y, fs, 5.0, subsample=10)
    rel = np.abs(sub / exact - 1)
    assert len(rel) == 12
    assert rel.mean() < 0.01 and rel.max() < 0.02, rel
    whole = kernels.noise_level(y, fs, None, subsample=10)[0] / kernels.noise_level(y, fs)[0] - 1
    assert abs(whole) < 0.005


@pytest.mark.parametrize("polarity", ["negative", "positive", "both"])
@pytest.mark.parametrize("window_s", [None, 1.0])
@pytest.mark.parametrize("dead_ms", [0.0, 0.5, 1.0])
def test_detection_matches_numpy(polarity, window_s, dead_ms):
    x, truth = synthetic(seed=1)
    nz = kernels.noise_level(x, FS, window_s)
    th = 5 * nz
    times, pol = kernels.detect_spikes(x, th, FS, window_s, polarity, dead_ms)
    bounds = ref.windows(len(x), None if window_s is None else int(round(window_s * FS)))
    et, ep = ref.detect(x, bounds, th, polarity, int(round(dead_ms * FS / 1000)))
    assert times.dtype == np.int64 and pol.dtype == np.int8
    np.testing.assert_array_equal(times, et)
    np.testing.assert_array_equal(pol, ep)


def test_every_inserted_spike_found_once():
    x, truth = synthetic(seed=2)
    th = 5 * kernels.noise_level(x, FS, 1.0)
    times, pol = kernels.detect_spikes(x, th, FS, 1.0, "both", 0.5)
    # every spike within 1 sample, none twice (the positive lobe is not a second event)
    d = np.abs(times[:, None] - truth[None, :])
    assert np.all(d.min(axis=0) <= 1), "a spike was missed"
    assert np.all((d <= 1).sum(axis=0) == 1), "a spike was detected twice"
    assert len(times) == len(truth)
    assert np.all(pol == -1)
    # without dead time blech_clust's double detections come back
    t0, p0 = kernels.detect_spikes(x, th, FS, 1.0, "both", 0.0)
    assert len(t0) >= len(times)


def test_last_event_is_kept():
    x = np.zeros(1000, np.float32)
    x[100] = -10
    x[998] = -10  # last excursion runs to the end
    x[999] = -12
    t, p = kernels.detect_spikes(x, 5.0, FS)
    np.testing.assert_array_equal(t, [100, 999])
    np.testing.assert_array_equal(p, [-1, -1])


def test_flat_signal_detects_nothing():
    t, p = kernels.detect_spikes(np.zeros(5000, np.float32), 0.0, FS)
    assert len(t) == 0 and len(p) == 0


@pytest.mark.parametrize("align", [True, False])
def test_waveforms_match_numpy(align):
    x, truth = synthetic(seed=3)
    th = 5 * kernels.noise_level(x, FS, 1.0)
    times, _ = kernels.detect_spikes(x, th, FS, 1.0)
    # add events at the very edges: they must be dropped and counted
    times = np.concatenate([[1, 30], times, [len(x) - 44, len(x) - 2]])
    wf, tt, dropped = kernels.extract_waveforms(x, times, 30, 45, align=align)
    ew, et, ed = ref.waveforms(x, times, 30, 45, align)
    assert wf.shape == (len(times) - ed, 75) and wf.dtype == np.float32 and tt.dtype == np.float64
    assert dropped == ed and dropped >= 3
    np.testing.assert_allclose(tt, et, atol=1e-9)
    np.testing.assert_allclose(wf, ew, atol=1e-3)


def test_alignment_recovers_subsample_times():
    # a smooth peak at a known fractional position: the refined time is closer than the sample
    fs = FS
    t = np.arange(3000)
    true = np.array([500.3, 1200.7, 2000.5, 2500.0])
    x = np.zeros(3000)
    for c in true:
        x += -100 * np.exp(-(((t - c) / 4.0) ** 2))
    times = np.round(true).astype(np.int64)
    wf, tt, dropped = kernels.extract_waveforms(x.astype(np.float32), times, 30, 45)
    assert dropped == 0
    assert np.max(np.abs(tt - true)) < 0.05
    assert np.all(np.argmin(wf, axis=1) == 30)
    assert np.max(np.abs(wf[:, 30] + 100)) < 0.5  # interpolated peak near the true minimum


def test_cutoff_matches_numpy():
    fs = 1000.0
    rng = np.random.default_rng(4)
    y = rng.normal(size=int(200 * fs)).astype(np.float32) * 50
    assert kernels.recording_cutoff(y, fs) == len(y) == ref.cutoff(y, fs)
    # headstage falls off at 120 s: many breaches a second from then on
    y[int(120 * fs):] += np.where(rng.random(int(80 * fs)) < 0.3, 20000, 0).astype(np.float32)
    got = kernels.recording_cutoff(y, fs)
    assert got == ref.cutoff(y, fs) == 120 * 1000
    # custom limits
    assert kernels.recording_cutoff(y, fs, max_secs_above_cutoff=100) == len(y) == ref.cutoff(y, fs, max_secs_above_cutoff=100)
    assert kernels.recording_cutoff(y, fs, voltage_cutoff=1e6) == len(y)


def test_bad_input():
    x = np.zeros(1000, np.float32)
    x[10] = np.nan
    with pytest.raises(ValueError, match="channel 0"):
        kernels.noise_level(x, FS)
    with pytest.raises(ValueError, match="channel 0"):
        kernels.detect_spikes(x, 1.0, FS)
    with pytest.raises(ValueError, match="polarity"):
        kernels.detect_spikes(np.zeros(100, np.float32), 1.0, FS, polarity="up")
    with pytest.raises(ValueError, match="windows"):
        kernels.detect_spikes(np.zeros(100000, np.float32), [1.0, 2.0, 3.0, 4.0], FS, window_s=1.0)
    with pytest.raises(TypeError):
        kernels.extract_waveforms(np.zeros(100, np.complex64), np.array([50]), 5, 5)
    with pytest.raises(ValueError, match="1-D"):
        kernels.extract_waveforms(np.zeros((2, 100), np.float32), np.array([50]), 5, 5)
    with pytest.raises(ValueError, match="window_s"):
        kernels.noise_level(np.zeros(100, np.float32), FS, window_s=-1)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(min_value=200, max_value=20001),
    seed=st.integers(0, 2**31),
    polarity=st.sampled_from(["negative", "positive", "both"]),
    dead=st.integers(0, 20),
    w=st.sampled_from([None, 0.01, 0.0333]),
)
def test_detection_property(n, seed, polarity, dead, w):
    rng = np.random.default_rng(seed)
    x = (rng.standard_t(3, size=n) * 10).astype(np.float32)
    win = None if w is None else int(round(w * FS))
    bounds = ref.windows(n, win)
    th = [5 * v for v, _ in ref.noise(x, bounds)]
    t, p = kernels.detect_spikes(x, th, FS, w, polarity, dead * 1000 / FS)
    et, ep = ref.detect(x, bounds, th, polarity, dead)
    np.testing.assert_array_equal(t, et)
    np.testing.assert_array_equal(p, ep)
    wf, tt, d = kernels.extract_waveforms(x, t, 7, 9)
    ew, ett, ed = ref.waveforms(x, t, 7, 9)
    assert d == ed
    np.testing.assert_allclose(wf, ew, atol=1e-3 * max(1.0, float(np.abs(x).max())))
