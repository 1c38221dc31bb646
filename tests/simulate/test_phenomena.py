"""Issue 14's simulated phenomena against their definitions (simulate/phenomena.py), checked on
the samples and the ground truth with numpy and scipy written here."""

import numpy as np
import pytest
from scipy.signal import butter, filtfilt

from blechrs.io.layout import load_layout
from blechrs.simulate import GroundTruth, Phenomena, Simulation
from blechrs.simulate.__main__ import main as simulate_main

FS = 30000.0


def test_default_phenomena_change_nothing():
    a = Simulation(seed=4, n_channels=6, duration_s=2.0)
    b = Simulation(seed=4, n_channels=6, duration_s=2.0, phenomena=Phenomena())
    assert np.array_equal(a.chunk(0, a.n_samples), b.chunk(0, b.n_samples))
    assert not a.ground_truth().unit_background.any()


def test_bursts_have_the_stated_isis_and_decay():
    sim = Simulation(seed=5, n_channels=6, duration_s=20.0, phenomena=Phenomena(burst_fraction=1.0))
    assert sim.unit_bursting.all()
    n_bursts = 0
    for u in range(len(sim.unit_channel)):
        t, g, p = sim.spikes_exact[u], sim.amp_jitter[u], sim.burst_position[u]
        assert np.all(np.diff(t) > 0)
        later = np.flatnonzero(p > 0)
        # each later burst spike follows its predecessor (the spike before it) by 3-8 ms and is
        # 10-20 % smaller; bursts are 2-5 spikes
        assert np.all(p[later - 1] == p[later] - 1)
        isi_ms = (t[later] - t[later - 1]) / FS * 1000
        assert np.all((isi_ms >= 3.0) & (isi_ms <= 8.0))
        ratio = g[later] / g[later - 1]
        assert np.all((ratio >= 0.8 - 1e-12) & (ratio <= 0.9 + 1e-12))
        assert p.max(initial=0) <= 4
        n_bursts += np.sum(p == 1)
        # no spike within 2 ms of another (the refractory period holds across bursts)
        assert np.all(np.diff(t) >= 2.0 * FS / 1000 - 1e-9)
    assert n_bursts > 50
    sizes = np.concatenate([np.bincount(np.cumsum(p == 0))[1:] for p in sim.burst_position if len(p)])
    assert set(np.unique(sizes)) <= {1, 2, 3, 4, 5} and {2, 5} <= set(np.unique(sizes))


def test_drift_follows_its_envelope():
    sim = Simulation(seed=6, n_channels=4, duration_s=10.0, phenomena=Phenomena(drift_fraction=1.0))
    base = Simulation(seed=6, n_channels=4, duration_s=10.0)
    d = sim.unit_drift
    assert np.all((np.abs(d) >= 0.10) & (np.abs(d) <= 0.20))
    for u in range(len(d)):
        t = sim.spikes_exact[u]
        assert np.array_equal(t, base.spikes_exact[u])
        env = 1 + d[u] * (1 - np.cos(np.pi * t / sim.n_samples)) / 2
        np.testing.assert_allclose(sim.amp_jitter[u] / base.amp_jitter[u], env, rtol=1e-12)
    # the filtered spike sizes of a drifting unit change by d from the first to the last tenth
    x = sim.chunk(0, sim.n_samples).T * 0.195
    b, a = butter(2, [300, 3000], btype="bandpass", fs=FS)
    f = filtfilt(b, a, x, axis=1)
    gt = sim.ground_truth()
    u = int(np.argmax(np.abs(gt.unit_peak_uv) / gt.noise_uv[gt.unit_channel]))
    t = gt.spike_times[u]
    v = np.abs(f[gt.unit_channel[u], t])
    first, last = np.median(v[t < sim.n_samples / 10]), np.median(v[t > sim.n_samples * 0.9])
    expect = 1 + d[u] * (1 - np.cos(np.pi * 0.95)) / 2
    assert abs(last / first - expect) < 0.06


def test_hum_and_common_noise_are_shared_by_a_car_group():
    ph = Phenomena(hum_uv=30.0, hum_hz=60.0, common_noise_uv=8.0, car_group_size=4)
    sim = Simulation(seed=7, n_channels=8, duration_s=4.0, max_units_per_channel=0, lfp_uv=0.0, dc_range_uv=0.0,
                     phenomena=ph)
    base = Simulation(seed=7, n_channels=8, duration_s=4.0, max_units_per_channel=0, lfp_uv=0.0, dc_range_uv=0.0)
    extra = (sim.chunk(0, sim.n_samples).astype(float) - base.chunk(0, base.n_samples)).T * 0.195
    assert list(sim.car_group) == [0, 0, 0, 0, 1, 1, 1, 1]
    # identical within a group (up to int16 rounding), different between groups
    assert np.max(np.abs(extra[:4] - extra[0])) <= 0.2
    assert np.std(extra[0] - extra[4]) > 5
    # the spectrum's largest peak is the mains frequency, with the stated amplitude
    spec = np.abs(np.fft.rfft(extra[0])) * 2 / extra.shape[1]
    freqs = np.fft.rfftfreq(extra.shape[1], 1 / FS)
    assert freqs[np.argmax(spec)] == pytest.approx(60.0, abs=0.3)
    assert spec[np.argmin(np.abs(freqs - 60))] == pytest.approx(30.0, rel=0.05)
    assert spec[np.argmin(np.abs(freqs - 120))] == pytest.approx(15.0, rel=0.1)
    # common-mode noise: its band-passed SD is the stated one
    b, a = butter(2, [300, 3000], btype="bandpass", fs=FS)
    assert np.std(filtfilt(b, a, extra[0])) == pytest.approx(8.0, rel=0.1)


def test_background_and_large_units(tmp_path):
    ph = Phenomena(background_units_per_wire=3, large_units=((2, 58.0),), car_group_size=4)
    sim = Simulation(seed=8, n_channels=8, duration_s=2.0, phenomena=ph)
    gt = sim.write(tmp_path / "rec")
    assert gt.unit_background.sum() == 24
    big = np.flatnonzero(~gt.unit_background)[-1]
    assert gt.unit_channel[big] == 2
    assert abs(gt.unit_peak_uv[big]) == pytest.approx(58.0 * gt.noise_uv[2], rel=1e-9)
    bg = gt.unit_background
    snr = np.abs(gt.unit_peak_uv[bg]) / gt.noise_uv[gt.unit_channel[bg]]
    assert np.all((snr >= 2.5) & (snr <= 4.5))
    back = GroundTruth.load(tmp_path / "rec" / "ground_truth.npz")
    assert np.array_equal(back.unit_background, gt.unit_background)
    assert back.neurons().n_units == gt.n_units - 24
    assert [r.car_group for r in load_layout(tmp_path / "rec")] == ["G00"] * 4 + ["G01"] * 4


def test_cli_flags(tmp_path):
    simulate_main([str(tmp_path / "r"), "--channels", "8", "--seconds", "1", "--large-unit", "3:58",
                   "--bursts", "0.5", "--hum", "10", "--hum-hz", "60", "--car-group-size", "4"])
    gt = GroundTruth.load(tmp_path / "r" / "ground_truth.npz")
    assert gt.unit_channel[-1] == 3 and list(gt.car_group) == [0] * 4 + [1] * 4
