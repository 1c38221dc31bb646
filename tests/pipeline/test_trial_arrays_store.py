"""make_arrays on an experiment directory: trial table CSV, /spike_trains and /emg_data in the store."""

import csv

import numpy as np
import pytest
import tables

from support.arrays_reference import fake_recording, make_dir, reference_spike_array, write_info, write_store
from blechrs.io.paths import TRIAL_TABLE_NAME
from blechrs.pipeline.trial_arrays import make_arrays
from blechrs.io.params_file import load_params, save_params
from blechrs.params import SortParams

FS = 30000.0
N = int(60 * FS)


def _experiment(tmp_path, rng, n_units=4):
    d = make_dir(tmp_path)
    units = [np.sort(rng.integers(0, N, rng.integers(200, 2000))) for _ in range(n_units)]
    units.append(np.array([5, N - 5], np.int64))  # almost silent: no spikes in most windows
    write_store(d / f"{d.name}.h5", units)
    # dig_in_03 is delivered first, dig_in_01 second: alphabetical and delivery order differ.
    # The first trial is 1 s after the start (window clipped) and the last 2 s before the end.
    on3 = np.array([int(1.0 * FS), int(20 * FS), int(40 * FS) + 11])
    on1 = np.array([int(10 * FS), int(30 * FS), int(45 * FS), N - int(2 * FS)])
    di = {
        "dig_in_01": (on1, on1 + 300),
        "dig_in_03": (on3, on3 + 300),
        "dig_in_06": (np.zeros(0, np.int64), np.zeros(0, np.int64)),  # never pulses
    }
    return d, units, di


def _read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_make_arrays_matches_reference_and_pairs_names(tmp_path):
    rng = np.random.default_rng(10)
    d, units, di = _experiment(tmp_path, rng)
    write_info(d, {"taste_params": {"dig_in_names": ["dig_in_03", "dig_in_01"], "tastes": ["NaCl", "Sucrose"]}})
    res = make_arrays(d, SortParams(), recording=fake_recording(di, N))
    with tables.open_file(str(d / f"{d.name}.h5")) as h5:
        assert sorted(h5.root.spike_trains._v_children) == ["dig_in_01", "dig_in_03"]
        for name in ("dig_in_01", "dig_in_03"):
            got = h5.get_node(f"/spike_trains/{name}/spike_array").read()
            ref = reference_spike_array(units, np.sort(di[name][0]), FS, 2000.0, 5000.0, 1.0)
            # blech_clust's 0/1 values (a spike in the 1 ms bin or not), as float64
            assert got.dtype == np.float64 and set(np.unique(got)) <= {0.0, 1.0}
            np.testing.assert_array_equal(got, np.minimum(ref, 1).astype(np.float64))
            assert got.shape == (len(di[name][0]), 5, 7000)
        assert h5.get_node("/spike_trains/dig_in_03")._v_title == "NaCl"
        valid = h5.root.spike_trains.dig_in_03.valid_bins.read()
        assert valid[0].tolist() == [1000, 7000] and valid[1:].tolist() == [[0, 7000], [0, 7000]]
        valid = h5.root.spike_trains.dig_in_01.valid_bins.read()
        assert valid[-1].tolist() == [0, 4000]
        assert "/emg_data" not in h5 and "laser_durations" not in h5.root.spike_trains.dig_in_01
        assert "/unit_descriptor" in h5 and len(h5.root.sorted_units._v_children) == 5  # untouched
    rows = _read_csv(d / TRIAL_TABLE_NAME)
    assert [r["dig_in_name_taste"] for r in rows] == ["dig_in_03", "dig_in_01", "dig_in_03", "dig_in_01", "dig_in_03", "dig_in_01", "dig_in_01"]
    assert [r["taste"] for r in rows][:2] == ["NaCl", "Sucrose"]
    assert [int(r["start_taste"]) for r in rows] == sorted(np.concatenate([di["dig_in_01"][0], di["dig_in_03"][0]]).tolist())
    assert [int(r["abs_trial_num"]) for r in rows] == list(range(7))
    assert [int(r["taste_rel_trial_num"]) for r in rows] == [0, 0, 1, 1, 2, 2, 3]
    assert float(rows[0]["start_taste_ms"]) == 1000.0 and float(rows[0]["end_taste_ms"]) == 1010.0
    assert [r["truncated"] for r in rows] == ["True"] + ["False"] * 5 + ["True"]
    assert "laser" not in rows[0]
    assert res.n_units == 5 and res.n_trials == 7 and [x.dig_in for x in res.dig_ins] == ["dig_in_01", "dig_in_03"]
    assert [x.n_truncated for x in res.dig_ins] == [1, 1]
    text = str(res)
    assert "dig_in_03" in text and "NaCl" in text and "7 trials" in text
    assert not [p for p in d.iterdir() if p.name.startswith(".")]  # no temp file left


def test_make_arrays_defaults_laser_and_rerun_replaces(tmp_path):
    rng = np.random.default_rng(11)
    d, units, di = _experiment(tmp_path, rng)
    laser_on = np.array([di["dig_in_01"][0][1] + 21000, di["dig_in_03"][0][2]])  # 700 ms lag, 0 lag
    di["dig_in_05"] = (laser_on, laser_on + np.array([36000, 75000]))  # 1200 ms, 2500 ms
    write_info(d, {"laser_params": {"dig_in_names": ["dig_in_05"], "onset_duration": [[700, 1200], [0, 2500]]}})
    rec = fake_recording(di, N)
    res = make_arrays(d, SortParams().replace(spike_array_durations=[500.0, 1000.0], spike_array_bin_ms=10.0), recording=rec)
    assert any("dig_in_06" in w for w in res.warnings) is False  # no pulses: not a taste by default
    with tables.open_file(str(d / f"{d.name}.h5")) as h5:
        assert sorted(h5.root.spike_trains._v_children) == ["dig_in_01", "dig_in_03"]  # laser is not a taste
        g = h5.root.spike_trains.dig_in_01
        np.testing.assert_array_equal(g.laser_onset_lag.read(), [0, 700, 0, 0])
        np.testing.assert_array_equal(g.laser_durations.read(), [0, 1200, 0, 0])
        g = h5.root.spike_trains.dig_in_03
        np.testing.assert_array_equal(g.laser_onset_lag.read(), [0, 0, 0])
        np.testing.assert_array_equal(g.laser_durations.read(), [0, 0, 2500])
        ref = reference_spike_array(units, di["dig_in_03"][0], FS, 500.0, 1000.0, 10.0)
        np.testing.assert_array_equal(g.spike_array.read(), np.minimum(ref, 1))  # 0/1 per 10 ms bin
    rows = _read_csv(d / TRIAL_TABLE_NAME)
    assert [r["laser"] for r in rows].count("True") == 2
    assert [float(r["laser_lag_ms"]) for r in rows if r["laser"] == "True"] == [700.0, 0.0]

    # an .info naming a taste without pulses: warned, no array; old arrays replaced, not mixed
    write_info(d, {"taste_params": {"dig_in_names": ["dig_in_06", "dig_in_01"], "tastes": ["water", "Suc"]}})
    res = make_arrays(d, SortParams(), recording=rec)
    assert any("dig_in_06" in w and "no pulses" in w for w in res.warnings)
    with tables.open_file(str(d / f"{d.name}.h5")) as h5:
        assert sorted(h5.root.spike_trains._v_children) == ["dig_in_01"]
        assert h5.root.spike_trains.dig_in_01.spike_array.shape == (4, 5, 7000)
        assert "laser_durations" not in h5.root.spike_trains.dig_in_01
    assert "dig_in_06" in str(res)


def test_make_arrays_without_digital_inputs_or_units(tmp_path):
    d = make_dir(tmp_path)
    write_store(d / f"{d.name}.h5", [np.array([1, 2, 3])])
    before = (d / f"{d.name}.h5").read_bytes()
    res = make_arrays(d, recording=fake_recording({}, N))
    assert res.n_trials == 0 and any("no digital inputs" in w for w in res.warnings)
    assert (d / f"{d.name}.h5").read_bytes() == before  # nothing to write: store untouched
    assert _read_csv(d / TRIAL_TABLE_NAME) == []

    d2 = make_dir(tmp_path, "exp_nounits_230101_120000")
    with tables.open_file(str(d2 / f"{d2.name}.h5"), "w"):
        pass
    on = np.array([90000, 300000])
    res = make_arrays(d2, digital_inputs={"dig_in_00": (on, on + 10)}, sampling_rate=FS, n_samples=N)
    with tables.open_file(str(d2 / f"{d2.name}.h5")) as h5:
        assert h5.root.spike_trains.dig_in_00.spike_array.shape == (2, 0, 7000)
    assert res.n_units == 0 and any("no sorted units" in w for w in res.warnings)
    from blechrs.pipeline.unit_qa import unit_qa

    qa = unit_qa(d2, sampling_rate=FS)
    assert qa.units == [] and qa.violations == [] and any("no sorted units" in w for w in qa.warnings)


def test_make_arrays_errors_are_one_line(tmp_path):
    d = make_dir(tmp_path)
    with pytest.raises(FileNotFoundError, match="no unit store"):
        make_arrays(d, digital_inputs={}, sampling_rate=FS)
    write_store(d / f"{d.name}.h5", [np.array([1])])
    (d / f"{d.name}.info").write_text("{not json")
    with pytest.raises(ValueError, match=r"\.info: not valid JSON"):
        make_arrays(d, digital_inputs={}, sampling_rate=FS)
    write_info(d, {"taste_params": {"dig_in_names": ["dig_in_09"]}})
    with pytest.raises(ValueError, match="dig_in_09 is not in the recording"):
        make_arrays(d, digital_inputs={"dig_in_00": (np.array([5]), np.array([6]))}, sampling_rate=FS)
    write_info(d, {})
    with pytest.raises(ValueError, match="whole multiples"):
        make_arrays(d, SortParams().replace(spike_array_bin_ms=3.0), digital_inputs={"dig_in_00": (np.array([5]), np.array([6]))}, sampling_rate=FS)


def test_emg_arrays_from_layout(tmp_path):
    rng = np.random.default_rng(12)
    d = make_dir(tmp_path)
    n = int(12 * FS)
    write_store(d / f"{d.name}.h5", [np.sort(rng.integers(0, n, 100))])
    amp = rng.integers(-3000, 3000, (4, n)).astype(np.int16)
    (d / f"{d.name}_electrode_layout.csv").write_text(
        "filename,electrode_ind,electrode_num,port,CAR_group\n"
        "amp-A-000.dat,0,0,A,A\namp-A-001.dat,1,1,A,emg\namp-A-002.dat,2,2,A,A\namp-A-003.dat,3,3,A,EMG_jaw\n"
    )
    on = np.array([int(1 * FS), int(5 * FS)])
    res = make_arrays(d, recording=fake_recording({"dig_in_02": (on, on + 5)}, n, amplifier=amp))
    assert res.emg_channels == [1, 3]
    with tables.open_file(str(d / f"{d.name}.h5")) as h5:
        e = h5.root.emg_data.dig_in_02.emg_array.read()
        assert h5.root.emg_data.ind_electrode_map.read().tolist() == [[0, 1], [1, 3]]
    assert e.shape == (2, 2, 7000)
    # reference: reshape-mean of whole 30-sample bins; NaN where the window leaves the data
    for c, ch in enumerate([1, 3]):
        for k, s in enumerate(on):
            lo = s - 60000
            for b in (0, 999, 1000, 2000, 6999):
                a = lo + 30 * b
                if a < 0:
                    assert np.isnan(e[c, k, b])
                else:
                    assert e[c, k, b] == pytest.approx(amp[ch, a : a + 30].astype(np.float64).mean() * 0.195, rel=1e-6)
            assert not np.isnan(e[c, 1]).any()


def test_recording_cutoff_marks_later_trials_truncated(tmp_path):
    """Extraction found electrode 1 cut off at 40 s: bins after it are outside the data."""
    from blechrs.io import paths, work_files
    from blechrs.model import ElectrodeWork

    rng = np.random.default_rng(13)
    d = make_dir(tmp_path)
    units = [np.sort(rng.integers(0, N, 500)), np.sort(rng.integers(0, int(40 * FS), 300))]
    write_store(d / f"{d.name}.h5", units, electrodes=[0, 1])
    work_files.save_electrode(paths.electrode_path(d, 0), ElectrodeWork(0, cutoff_sample=N, times=np.zeros(0, np.int64)))
    work_files.save_electrode(paths.electrode_path(d, 1), ElectrodeWork(1, cutoff_sample=int(40 * FS),
                                                                        times=np.zeros(0, np.int64)))
    work_files.save_electrode(paths.electrode_path(d, 7), ElectrodeWork(7, cutoff_sample=5))  # no units there: ignored
    on = np.array([int(10 * FS), int(34 * FS), int(39 * FS), int(50 * FS)])
    res = make_arrays(d, recording=fake_recording({"dig_in_00": (on, on + 5)}, N))
    assert res.data_end == int(40 * FS) and any("cut off at 40.0 s" in w and "electrode 01" in w for w in res.warnings)
    with tables.open_file(str(d / f"{d.name}.h5")) as h5:
        valid = h5.root.spike_trains.dig_in_00.valid_bins.read()
        got = h5.root.spike_trains.dig_in_00.spike_array.read()
    # independent: bin b of trial s spans [s - 60000 + 30 b, s - 60000 + 30 (b + 1)); valid if it ends by the cut
    for k, s in enumerate(on):
        ends = s - 60000 + 30 * (np.arange(7000) + 1)
        inside = np.flatnonzero(ends <= int(40 * FS))
        want_end = inside[-1] + 1 if len(inside) else 0
        assert valid[k].tolist() == [0, want_end]
    assert valid[:, 1].tolist() == [7000, 7000, 3000, 0]
    np.testing.assert_array_equal(got, np.minimum(reference_spike_array(units, on, FS, 2000.0, 5000.0, 1.0), 1))
    rows = _read_csv(d / TRIAL_TABLE_NAME)
    assert [r["truncated"] for r in rows] == ["False", "False", "True", "True"]


def test_params_file_is_used_when_no_params_given(tmp_path):
    d = make_dir(tmp_path)
    write_store(d / f"{d.name}.h5", [np.array([100000, 100030, 100100])])
    save_params(d / f"{d.name}.params", SortParams().replace(spike_array_durations=[100.0, 200.0], spike_array_bin_ms=10.0))
    on = np.array([100000])
    res = make_arrays(d, recording=fake_recording({"dig_in_00": (on, on + 5)}, N))
    assert res.dig_ins[0].shape == (1, 1, 30) and res.bin_ms == 10.0
    with tables.open_file(str(d / f"{d.name}.h5")) as h5:
        assert h5.root.spike_trains.dig_in_00.spike_array.read()[0, 0].tolist() == [0] * 10 + [1] + [0] * 19  # 0, 1, 3.3 ms: one 10 ms bin, 0/1


def test_unit_electrodes_with_and_without_descriptor(tmp_path):
    from blechrs.io.unit_store import read_unit_spikes

    def unit_electrodes(path):
        return [u.electrode for u in read_unit_spikes(path)]

    p = tmp_path / "s.h5"
    write_store(p, [np.array([1]), np.array([2]), np.array([3])], electrodes=[5, 2, 9])
    assert unit_electrodes(p) == [5, 2, 9]
    with tables.open_file(str(p), "a") as h5:
        h5.remove_node("/unit_descriptor")
    assert unit_electrodes(p) == [5, 2, 9]  # from each unit's metadata


def test_every_array_of_the_store_opens_in_plain_h5py(tmp_path):
    # No plugin filter anywhere: h5py (as MATLAB and h5dump) reads every dataset, spike arrays
    # included, and a baseline subtraction on them does not wrap around.
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(11)
    d, units, di = _experiment(tmp_path, rng)
    write_info(d, {"taste_params": {"dig_in_names": ["dig_in_03", "dig_in_01"], "tastes": ["NaCl", "Sucrose"]}})
    make_arrays(d, SortParams(), recording=fake_recording(di, N))
    datasets = []
    with h5py.File(d / f"{d.name}.h5", "r") as f:
        f.visititems(lambda name, obj: datasets.append(name) if isinstance(obj, h5py.Dataset) else None)
        for name in datasets:
            data = f[name][()]  # raises if a filter is not available
            assert f[name].compression in (None, "gzip"), name
        arr = f["spike_trains/dig_in_01/spike_array"][()]
    assert any(n.endswith("spike_array") for n in datasets) and any(n.endswith("/times") for n in datasets)
    ref = reference_spike_array(units, np.sort(di["dig_in_01"][0]), FS, 2000.0, 5000.0, 1.0)
    np.testing.assert_array_equal(arr, np.minimum(ref, 1))
    assert (arr - 1).min() == -1.0  # no uint8 wrap-around to 255


def test_compact_spike_arrays_keep_counts(tmp_path):
    rng = np.random.default_rng(12)
    d, units, di = _experiment(tmp_path, rng)
    write_info(d, {"taste_params": {"dig_in_names": ["dig_in_01"], "tastes": ["Sucrose"]}})
    make_arrays(d, SortParams().replace(compact_spike_arrays=True, spike_array_bin_ms=10.0),
                recording=fake_recording(di, N))
    with tables.open_file(str(d / f"{d.name}.h5")) as h5:
        node = h5.get_node("/spike_trains/dig_in_01/spike_array")
        got = node.read()
        assert node.filters.complib.startswith("blosc") and got.dtype == np.uint8
    ref = reference_spike_array(units, np.sort(di["dig_in_01"][0]), FS, 2000.0, 5000.0, 10.0)
    np.testing.assert_array_equal(got.astype(np.int64), ref)
    assert ref.max() > 1  # 10 ms bins hold several spikes: counts, not 0/1
