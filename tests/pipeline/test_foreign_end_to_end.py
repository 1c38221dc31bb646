"""The real recordings of other systems sort end to end at their own sampling rates (Open Ephys
40 kHz through the CLI, Neuralynx 32 kHz with its timestamp gap, the locust tetrode's raw int16 at
15 kHz), with the recording's gain: every stored unit's waveform peak is the scipy-filtered
signal, in microvolts as neo (or numpy with the given gain) reads it, at the unit's spike times.
With no ground truth, each sort is also held to what can be checked without it (issue 14): the
single units' ISI violations are under blech_clust's limits, and every unit is the same unit in
both halves of the recording."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import scipy.signal as ss

from blechrs import pipeline
from blechrs.io import layout, paths
from blechrs.io.params_file import load_params
from blechrs.io.unit_store import read_unit_spikes
from support.real_data import LOCUST_RAW, NEURALYNX, OPEN_EPHYS, copy_folder, locust_raw, neo_signal


def check_units_in_microvolts(d, uv: np.ndarray, fs: float) -> int:
    """Each unit's median waveform peak equals the scipy band-passed microvolt signal at its spike
    times (no CAR: these recordings have too few wires for it). Returns the number of units."""
    p = load_params(paths.params_path(d))
    assert p.extract.sampling_rate == fs and p.extract.use_car is False
    b, a = ss.butter(p.extract.bandpass_order, [p.extract.bandpass_lower_cutoff, p.extract.bandpass_upper_cutoff],
                     "bandpass", fs=fs)
    before = int(round(p.extract.spike_snapshot_before * fs / 1000))
    units = read_unit_spikes(paths.h5_path(d), waveforms=True)
    assert units, "no unit stored"
    filtered = {}
    for u in units:
        if u.electrode not in filtered:
            filtered[u.electrode] = ss.filtfilt(b, a, uv[:, u.electrode])
        at_times = filtered[u.electrode][u.times]
        peak = u.waveforms[:, before]
        assert np.median(np.abs(peak)) > 4 * np.median(np.abs(filtered[u.electrode])) / 0.6745 * 0.5
        np.testing.assert_allclose(np.median(peak), np.median(at_times), rtol=0.05)
    return len(units)


#: blech_clust's ISI_violations_thresholds: % of spikes with an ISI under 1 ms and under 2 ms (spec 6.2).
BLECH_CLUST_ISI_LIMITS = (0.5, 2.0)


def check_without_ground_truth(d, fs: float, n_samples: int) -> int:
    """Read with h5py (not blechrs): every unit labelled single has fewer than 0.5 % of its spikes
    within 1 ms and 2 % within 2 ms of the previous one (blech_clust's formula: over the spike
    count); every unit is stable across the recording's two halves: each half holds at least 20 %
    of its spikes, and the two halves' mean waveforms correlate at 0.95 or more with peaks within
    25 % of each other (a gain, offset or concatenation error, or a unit that is two units split in
    time, breaks these). Returns the number of single units."""
    singles = 0
    with h5py.File(paths.h5_path(d), "r") as f:
        for row in f["unit_descriptor"][:]:
            g = f[f"sorted_units/unit{int(row['unit_number']):03d}"]
            t, w = np.sort(g["times"][:].astype(np.int64)), g["waveforms"][:].astype(np.float64)
            name = f"{d.name} unit{int(row['unit_number']):03d}"
            if row["single_unit"]:
                singles += 1
                isi_ms = np.diff(t) / (fs / 1000)
                v1, v2 = (100 * np.count_nonzero(isi_ms < lim) / len(t) for lim in (1.0, 2.0))
                assert v1 < BLECH_CLUST_ISI_LIMITS[0] and v2 < BLECH_CLUST_ISI_LIMITS[1], (name, v1, v2)
            first = t < n_samples / 2
            assert min(first.mean(), 1 - first.mean()) >= 0.2, (name, first.sum(), len(t))
            a, b = w[first].mean(axis=0), w[~first].mean(axis=0)
            peak = int(np.argmax(np.abs(a + b)))
            assert np.corrcoef(a, b)[0, 1] >= 0.95, name
            assert abs(a[peak] - b[peak]) <= 0.25 * max(abs(a[peak]), abs(b[peak])), (name, a[peak], b[peak])
    return singles


def no_trials(d, said: str) -> None:
    assert not paths.trial_table_path(d).exists()
    said = " ".join(said.split())  # (the console wraps long lines)
    assert "no digital-input pulses" in said and "no trials, so no spike-train arrays" in said, said


def test_open_ephys_through_the_cli(tmp_path):
    d = copy_folder(OPEN_EPHYS, tmp_path / "oe")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    p = subprocess.run([sys.executable, "-m", "blechrs", "run", str(d), "-j", "2", "-q"], capture_output=True,
                       text=True, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    no_trials(d, p.stdout + p.stderr)
    x, fs, _, names, gain = neo_signal("openephys", d)
    assert check_units_in_microvolts(d, x * gain, fs) >= 2
    check_without_ground_truth(d, fs, len(x))
    rows = layout.load_layout(d)
    assert [r.filename for r in rows] == ["101_CH0.continuous", "101_CH1.continuous"]
    info = json.loads(paths.info_path(d).read_text())
    assert info["sampling_rate"] == 40000.0 and info["dig_ins"]["names"] == []
    assert (paths.plot_dir(d) / "index.html").exists()


def test_neuralynx_with_its_gap(tmp_path):
    d = copy_folder(NEURALYNX, tmp_path / "nlx")
    report = pipeline.run(d, jobs=2, plots=False)
    no_trials(d, "\n".join(report.notes))
    warned = (paths.qa_dir(d) / "warnings.txt").read_text()
    assert "segment 2 of 2 starts at sample 1278976 after a gap of 203.835 s" in warned
    x, fs, _, _, gain = neo_signal("neuralynx", d)
    assert fs == 32000.0
    check_units_in_microvolts(d, x * gain, fs)
    check_without_ground_truth(d, fs, len(x))


def test_locust_raw_int16(tmp_path):
    d = copy_folder(LOCUST_RAW.parent, tmp_path / "loc", [LOCUST_RAW.name])
    pipeline.describe_binary(d, 15000.0, 4, gain=0.5)
    report = pipeline.run(d, jobs=2, plots=False)
    no_trials(d, "\n".join(report.notes))
    n = check_units_in_microvolts(d, locust_raw() * 0.5, 15000.0)
    assert n >= 4
    assert check_without_ground_truth(d, 15000.0, len(locust_raw())) >= 1  # a clean tetrode: single units
    # channel 3 is nearly silent (0.3 events/s at 5 x noise): it holds no unit
    assert {u.electrode for u in read_unit_spikes(paths.h5_path(d))} <= {0, 1, 2}
