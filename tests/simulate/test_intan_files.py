"""The simulated recordings are what their ground truth says, checked with scipy's filters."""

import numpy as np
from scipy.signal import butter, filtfilt

from blechrs.simulate import GroundTruth, Simulation


def test_ground_truth_matches_the_samples(tmp_path):
    sim = Simulation(seed=12, n_channels=8, duration_s=6.0)
    gt = sim.ground_truth()
    x = sim.chunk(0, sim.n_samples).T.astype(np.float64) * 0.195
    b, a = butter(2, [300, 3000], btype="bandpass", fs=30000)
    f = filtfilt(b, a, x, axis=1)
    # units: 0-4 per wire, sizes on a wire differ by >= 1.4, rates 1-30 Hz, refractory >= 2 ms
    counts = np.bincount(gt.unit_channel, minlength=8)
    assert counts.max() <= 4 and gt.n_units > 4
    for c in range(8):
        peaks = np.sort(np.abs(gt.unit_peak_uv[gt.unit_channel == c]))
        assert np.all(peaks[1:] / peaks[:-1] >= 1.4 - 1e-9)
    assert np.all((gt.unit_rate_hz >= 1) & (gt.unit_rate_hz <= 30))
    for u, t in enumerate(gt.spike_times):
        assert np.all(np.diff(t) >= 2 * 30 - 1)
        assert np.all((t > 0) & (t < sim.n_samples))
    # a channel without units: its band-passed noise has the stated size
    for c in np.flatnonzero(counts == 0):
        mad = np.median(np.abs(f[c])) / 0.6745
        assert abs(mad - gt.noise_uv[c]) / gt.noise_uv[c] < 0.15
    # each unit's spikes: the filtered trace at the ground-truth times has the unit's peak sign,
    # and the median value is close to the stated peak (other units and noise add scatter)
    for u, t in enumerate(gt.spike_times):
        if len(t) < 5:
            continue
        v = f[gt.unit_channel[u], t]
        assert np.median(np.sign(v) == np.sign(gt.unit_peak_uv[u])) == 1
        assert abs(np.median(v) - gt.unit_peak_uv[u]) < 0.25 * abs(gt.unit_peak_uv[u]) + 3 * gt.noise_uv[gt.unit_channel[u]]
    # the raw signal carries an LFP and a DC offset, removed by the band-pass
    assert np.std(x - f) > 5
    # round trip through the saved file
    gt.save(tmp_path / "gt.npz")
    back = GroundTruth.load(tmp_path / "gt.npz")
    assert back.n_units == gt.n_units and back.channel_names == gt.channel_names
    for a_, b_ in zip(back.spike_times, gt.spike_times):
        np.testing.assert_array_equal(a_, b_)
    assert back.digital_inputs.keys() == gt.digital_inputs.keys()


def test_seeded_and_chunking_invariant():
    a = Simulation(seed=3, n_channels=3, duration_s=1.0)
    b = Simulation(seed=3, n_channels=3, duration_s=1.0)
    c = Simulation(seed=4, n_channels=3, duration_s=1.0)
    whole = a.chunk(0, a.n_samples)
    np.testing.assert_array_equal(whole, np.concatenate([b.chunk(0, 777), b.chunk(777, b.n_samples)]))
    assert not np.array_equal(whole, c.chunk(0, c.n_samples))


def test_digital_input_pulses():
    sim = Simulation(seed=8, n_channels=2, duration_s=5.0, n_digital_inputs=3, pulses_per_input=4, pulse_ms=30.0)
    gt = sim.ground_truth()
    assert sorted(gt.digital_inputs) == ["dig_in_00", "dig_in_01", "dig_in_02"]
    allon = np.sort(np.concatenate([v[0] for v in gt.digital_inputs.values()]))
    for on, off in gt.digital_inputs.values():
        assert len(on) == 4 and np.all(off - on == 900)
    assert np.all(np.diff(allon) > 900)  # one pulse at a time
    w = sim.din_words(0, sim.n_samples)
    for k, (on, off) in enumerate(gt.digital_inputs.values()):
        bit = (w >> k) & 1
        assert bit.sum() == 4 * 900 and np.all(bit[on] == 1) and np.all(bit[off] == 0) and np.all(bit[on - 1] == 0)
    rhx = Simulation(seed=8, n_channels=2, duration_s=5.0, n_digital_inputs=2, din_style="rhx").ground_truth()
    assert sorted(rhx.digital_inputs) == ["dig_in_01", "dig_in_02"]


def test_trial_spacing_gives_realistic_trials():
    # A taste experiment's trials are 10-30 s apart: with trial_spacing_s no two onsets (of any
    # input) are closer, so 7 s trial windows never overlap; without it the pulses are as before.
    sim = Simulation(seed=4, n_channels=2, duration_s=300.0, n_digital_inputs=4, trial_spacing_s=15.0)
    on = np.sort(sim.din_on)
    assert len(on) >= 4 and np.diff(on).min() >= 15.0 * sim.fs
    dense = Simulation(seed=4, n_channels=2, duration_s=300.0, n_digital_inputs=4)
    assert np.diff(np.sort(dense.din_on)).min() < 15.0 * sim.fs
