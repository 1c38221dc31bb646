"""Trial table, spike arrays and EMG arrays on plain arrays, against references written here."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from support.arrays_reference import reference_spike_array
from blechrs.trials.settings import trial_config
from blechrs.trials.spike_arrays import emg_array, spike_array, window_bins
from blechrs.trials.table import build_trials

FS = 30000.0


def _units(rng, n_units, n_samples, rate_hz=20.0):
    out = []
    for u in range(n_units):
        n = rng.poisson(rate_hz * n_samples / FS)
        out.append(np.sort(rng.integers(0, n_samples, n)))
    out.append(np.zeros(0, np.int64))  # a unit with no spikes at all
    return out


@pytest.mark.parametrize(
    "fs,pre,post,bin_ms",
    [(30000.0, 2000.0, 5000.0, 1.0), (30000.0, 500.0, 1500.0, 10.0), (24414.0625, 200.0, 300.0, 1.0), (20000.0, 0.0, 250.0, 2.5)],
)
def test_spike_array_matches_histogram_reference(fs, pre, post, bin_ms):
    rng = np.random.default_rng(1)
    n_samples = int(20 * fs)
    units = _units(rng, 5, n_samples, rate_hz=40.0)
    # trials near both ends of the recording, and one with an onset exactly at sample 0
    onsets = np.array([0, int(0.1 * fs), int(5 * fs) + 7, int(12.3 * fs), n_samples - int(0.05 * fs)])
    # spikes exactly on window and bin edges
    units[0] = np.sort(np.concatenate([units[0], onsets, onsets - int(round(pre * fs / 1000)), onsets + int(post * fs / 1000) - 1,
                                        onsets + int(post * fs / 1000)]).clip(0, n_samples - 1))
    got = spike_array(units, onsets, fs, (pre, post), bin_ms)
    ref = reference_spike_array(units, onsets, fs, pre, post, bin_ms)
    assert got.shape == ref.shape
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got.astype(np.int64), ref)
    assert ref.sum() > 0
    assert not got[:, -1].any()  # the unit without spikes


def test_spike_array_loop_reference_unsorted_times_and_counts():
    """A plain loop over spikes; times given out of order; two spikes in one bin count 2."""
    rng = np.random.default_rng(2)
    units = [rng.integers(0, 300000, 400), rng.integers(0, 300000, 50)]
    units[1] = np.concatenate([units[1], [150000, 150001]])  # same 1 ms bin
    onsets = np.array([150000 - 3000, 30000, 290000])
    got = spike_array(units, onsets, FS, (100.0, 200.0), 1.0)
    ref = np.zeros((3, 2, 300), np.int64)
    for k, s in enumerate(onsets):
        for u, ts in enumerate(units):
            for t in ts.tolist():
                rel = t - s + 3000
                if 0 <= rel < 9000:
                    ref[k, u, rel // 30] += 1
    np.testing.assert_array_equal(got, ref)
    assert got[0, 1, 200] >= 2


def test_spike_array_saturating_counts_widen_dtype():
    # a spike on every sample of a 100 ms bin: 3000 counts do not fit uint8
    got = spike_array([np.arange(0, 3000)], [3000], FS, (100.0, 100.0), 100.0)
    assert got.dtype == np.uint16 and got[0, 0, 0] == 3000 and got[0, 0, 1] == 0


def test_spike_array_no_trials_no_units():
    assert spike_array([], [1000], FS).shape == (1, 0, 7000)
    assert spike_array([np.arange(10)], [], FS).shape == (0, 1, 7000)
    with pytest.raises(ValueError, match="whole multiples"):
        spike_array([np.arange(10)], [0], FS, (2000.0, 5000.0), 3.0)


def test_window_bins_marks_partial_windows():
    n = 30000 * 10
    onsets = np.array([0, 30, 60000, 60001, 150000, n - 1, n - 150000, n - 150001])
    got = window_bins(onsets, FS, (2000.0, 5000.0), 1.0, n)
    # independent: a bin is valid when all of its 30 samples are in [0, n)
    for k, s in enumerate(onsets):
        starts = s - 60000 + 30 * np.arange(7000)
        ok = (starts >= 0) & (starts + 30 <= n)
        idx = np.flatnonzero(ok)
        assert (got[k, 0], got[k, 1]) == (idx[0], idx[-1] + 1)
    assert tuple(got[6]) == (0, 7000) and tuple(got[7]) == (0, 7000) and tuple(got[2]) == (0, 7000)
    assert got[3, 0] == 0 and got[1, 0] == 1999
    assert tuple(window_bins(onsets, FS)[0]) == (2000, 7000)  # no length known: only the start clips


def test_trial_config_defaults_and_info():
    di = {
        "dig_in_00": (np.array([10, 20]), np.array([15, 25])),
        "dig_in_01": (np.zeros(0, np.int64), np.zeros(0, np.int64)),
        "dig_in_04": (np.array([30]), np.array([35])),
    }
    c = trial_config(None, di)
    assert c.tastes == {"dig_in_00": "dig_in_00", "dig_in_04": "dig_in_04"} and c.laser_dig_ins == []
    c = trial_config({"laser_params": {"dig_in_names": ["dig_in_04"], "onset_duration": [[0, 500]]}}, di)
    assert c.tastes == {"dig_in_00": "dig_in_00"} and c.laser_dig_ins == ["dig_in_04"]
    assert c.laser_conditions == [(0.0, 500.0)]
    c = trial_config({"taste_params": {"dig_in_names": ["dig_in_04", "dig_in_00"], "tastes": ["NaCl", "Suc"]}}, di)
    assert c.tastes == {"dig_in_04": "NaCl", "dig_in_00": "Suc"}
    c = trial_config({"taste_params": {"dig_in_names": [4, 1], "tastes": ["NaCl"]}}, di)
    assert c.tastes == {"dig_in_04": "NaCl", "dig_in_01": "dig_in_01"}
    c = trial_config({"taste_params": {"dig_in_names": "dig_in_04", "tastes": "NaCl"}, "laser_params": {"dig_in_names": 0}}, di)
    assert c.tastes == {"dig_in_04": "NaCl"} and c.laser_dig_ins == ["dig_in_00"]
    c = trial_config({"taste_params": {"dig_in_names": ["dig_in_00", "dig_in_04"]}, "laser_params": {"dig_in_names": ["dig_in_04"]}}, di)
    assert c.tastes == {"dig_in_00": "dig_in_00"} and c.laser_dig_ins == ["dig_in_04"]
    assert c.warnings and "used as laser" in c.warnings[0]
    with pytest.raises(ValueError, match="dig_in_07 is not in the recording"):
        trial_config({"taste_params": {"dig_in_names": ["dig_in_07"]}}, di, source="x.info")
    assert trial_config(None, {}).tastes == {}


def test_trials_pair_names_and_onsets_whatever_the_delivery_order():
    # dig_in_05 (alphabetically last) is delivered first and has a different trial count
    di = {
        "dig_in_05": (np.array([1000, 9000, 5000]), np.array([1100, 9100, 5100])),
        "dig_in_02": (np.array([3000, 7000]), np.array([3200, 7200])),
    }
    t = build_trials(di, trial_config({"taste_params": {"dig_in_names": ["dig_in_05", "dig_in_02"], "tastes": ["QHCl", "Suc"]}}, di), FS)
    assert t.dig_in.tolist() == ["dig_in_05", "dig_in_02", "dig_in_05", "dig_in_02", "dig_in_05"]
    assert t.taste.tolist() == ["QHCl", "Suc", "QHCl", "Suc", "QHCl"]
    assert t.start.tolist() == [1000, 3000, 5000, 7000, 9000]
    assert t.end.tolist() == [1100, 3200, 5100, 7200, 9100]
    assert t.abs_trial_num.tolist() == [0, 1, 2, 3, 4]
    assert t.taste_rel_trial_num.tolist() == [0, 0, 1, 1, 2]
    assert t.onsets("dig_in_05").tolist() == [1000, 5000, 9000]
    assert t.onsets("dig_in_02").tolist() == [3000, 7000]
    assert t.dig_ins == ["dig_in_02", "dig_in_05"]


def test_laser_matched_to_nearest_trial_and_snapped():
    fs = 1000.0  # 1 sample = 1 ms keeps the arithmetic readable
    di = {
        "dig_in_00": (np.array([10000, 30000, 50000, 70000]), np.array([10100, 30100, 50100, 70100])),
        "dig_in_01": (np.array([20000, 40000]), np.array([20100, 40100])),
        "dig_in_07": (np.array([10003, 40690, 90000]), np.array([12506, 41890, 90500])),
    }
    info = {"laser_params": {"dig_in_names": ["dig_in_07"], "onset_duration": [[0, 2500], [700, 1200]]}}
    t = build_trials(di, trial_config(info, di), fs)
    assert t.has_laser and t.unmatched_laser_pulses == 1
    # trials by onset: 10000 (00), 20000 (01), 30000 (00), 40000 (01), 50000 (00), 70000 (00)
    assert t.laser.tolist() == [True, False, False, True, False, False]
    assert t.start_laser.tolist() == [10003, -1, -1, 40690, -1, -1]
    assert t.laser_lag_ms_measured[[0, 3]].tolist() == [3.0, 690.0]
    assert t.laser_duration_ms_measured[[0, 3]].tolist() == [2503.0, 1200.0]
    assert t.laser_lag_ms.tolist() == [0.0, 0, 0, 700.0, 0, 0]
    assert t.laser_duration_ms.tolist() == [2500.0, 0, 0, 1200.0, 0, 0]


def test_emg_array_bin_means_against_loop():
    rng = np.random.default_rng(3)
    n = 30000 * 4
    x = rng.integers(-2000, 2000, (3, n)).astype(np.int16)
    onsets = np.array([100, 60000, n - 600])
    got = emg_array(x, [2, 0], onsets, FS, (50.0, 100.0), 1.0)
    assert got.shape == (2, 3, 150) and got.dtype == np.float32
    for c, ch in enumerate([2, 0]):
        for k, s in enumerate(onsets):
            for b in range(150):
                a = s - 1500 + 30 * b
                if a < 0 or a + 30 > n:
                    assert np.isnan(got[c, k, b])
                else:
                    want = np.float32(sum(int(v) for v in x[ch, a : a + 30]) * 0.195 / 30)
                    assert got[c, k, b] == pytest.approx(want, rel=1e-6)
    assert np.isnan(got[:, 0, :47]).all() and not np.isnan(got[:, 0, 47:]).any()


@settings(max_examples=40, deadline=None)
@given(
    fs=st.sampled_from([30000.0, 20000.0, 25000.0, 24414.0625, 1000.0]),
    bin_ms=st.sampled_from([1.0, 2.0, 5.0, 10.0]),
    pre_bins=st.integers(0, 40),
    post_bins=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
)
def test_spike_array_property(fs, bin_ms, pre_bins, post_bins, seed):
    rng = np.random.default_rng(seed)
    n = int(fs * 2)
    units = [rng.integers(0, n, rng.integers(0, 300)) for _ in range(3)]
    onsets = rng.integers(0, n, rng.integers(0, 6))
    pre, post = pre_bins * bin_ms, post_bins * bin_ms
    got = spike_array(units, onsets, fs, (pre, post), bin_ms)
    np.testing.assert_array_equal(got.astype(np.int64), reference_spike_array(units, onsets, fs, pre, post, bin_ms))
    valid = window_bins(onsets, fs, (pre, post), bin_ms, n)
    spb = fs * bin_ms / 1000.0
    for k, s in enumerate(onsets):  # every bin of [first, end) lies wholly in [0, n), its neighbours do not
        first, end = valid[k]
        starts = s - pre_bins * spb + np.arange(pre_bins + post_bins) * spb
        inside = (np.ceil(starts - 1e-9) >= 0) & (np.ceil(starts + spb - 1e-9) <= n)
        assert inside[first:end].all() and not inside[:first].any() and not inside[end:].any()


def test_trial_blocks_read_a_trial_at_a_time_equal_the_whole_array():
    """TrialBlocks (computed BLOCK trials at a time, as the store writes them) against spike_array
    of every trial at once: each trial, the shape, and the dtype, widened when only a later block
    has a bin with more than 255 spikes."""
    from blechrs.trials.spike_arrays import TrialBlocks

    rng = np.random.default_rng(5)
    fs = 30000.0
    onsets = np.sort(rng.choice(np.arange(90_000, 3_000_000), 2 * TrialBlocks.BLOCK + 7, replace=False))
    units = [np.sort(rng.integers(0, 3_100_000, 20_000)) for _ in range(3)]
    # 300 spikes in one 1 ms bin of the last trial: uint16 counts, from the last block only
    units.append(np.sort(np.concatenate([rng.integers(0, 3_100_000, 500), np.full(300, onsets[-1] + 15)])))
    whole = spike_array(units, onsets, fs, (2000.0, 5000.0), 1.0)
    blocks = TrialBlocks(units, onsets, fs, (2000.0, 5000.0), 1.0)
    assert blocks.shape == whole.shape and blocks.size == whole.size and len(blocks) == len(whole)
    assert blocks.dtype == whole.dtype == np.uint16
    for k in [0, TrialBlocks.BLOCK - 1, TrialBlocks.BLOCK, len(onsets) - 1, 3]:  # any order
        np.testing.assert_array_equal(blocks[k], whole[k])
    np.testing.assert_array_equal(np.asarray(blocks), whole)
