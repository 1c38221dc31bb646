"""Sorting real recordings: the locust tetrodes of ../shared/data/real (tridesclous's: two 28.8 s
trials; Pouzat's: 20 s, its two halves; 15 kHz, real tissue, no ground truth), each written into an
Intan folder and sorted by ``blechrs run`` with the default parameters, its four wires one CAR
group. Checked without ground truth, against
scipy/numpy computed here:
- it finishes and stores units, and warns that a 4-wire CAR group is small;
- no unit is a reference echo: each unit's spikes are a deflection of its own wire's
  *unreferenced* signal (scipy band-pass of the raw samples), in the unit's polarity and at least
  half its referenced size; an inverted copy of another wire's spike has none. Tridesclous's wire 3, nearly
  silent without a reference (the data's README: 0.3 events/s at 5 x noise), has no unit faster
  than 1 Hz;
- single units' ISI violations stay under blech_clust's limits (ISI_violations_thresholds);
- units are stable across the two trials (halves): rate within a factor 2, mean waveform correlation >=
  0.9 and size within 25 %.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import butter, sosfiltfilt

from blechrs.cli.main import main as cli_main
from blechrs.io import paths, unit_store
from blechrs.params import SortParams
from support.real_data import locust_tetrode, pouzat_tetrode, write_intan_folder

RECORDINGS = {"tridesclous": locust_tetrode, "pouzat": pouzat_tetrode}


@pytest.fixture(scope="module", params=sorted(RECORDINGS))
def sorted_locust(request, tmp_path_factory):
    x, fs, split = RECORDINGS[request.param]()
    d = write_intan_folder(tmp_path_factory.mktemp("real") / request.param, x, fs)
    assert cli_main(["run", str(d), "-j", "2", "-q", "--no-plots"]) == 0
    return d, x, fs, split, unit_store.read_units(paths.h5_path(d), waveforms=True)


def test_real_tetrode_sorts_without_echoes(sorted_locust):
    d, x, fs, split, units = sorted_locust
    assert len(units) >= 3
    # Tridesclous's wires 2 and 3 carry no unit by the keep criteria: wire 3 is nearly silent, and
    # wire 2's one candidate is a multi-unit with Poisson ISIs (contamination 1) and 59 % of its
    # events within 1 noise SD of the threshold (max_multi_threshold_share): background.
    assert len({u.electrode for u in units}) >= 2
    assert "CAR group" in paths.qa_warnings_path(d).read_text()  # a tetrode: the small-group warning
    sos = butter(2, [300, 3000], btype="bandpass", fs=fs, output="sos")
    raw = sosfiltfilt(sos, x.astype(np.float64) * 0.195, axis=0)  # unreferenced, microvolts
    duration = len(x) / fs
    for u in units:
        wf = u.waveforms.mean(axis=0)
        k = int(np.argmax(np.abs(wf)))  # the referenced waveform's extremum
        at = u.times[(u.times > 20) & (u.times < len(x) - 20)]
        own = np.median(raw[at, u.electrode])  # the unreferenced wire at the spike times
        assert np.sign(own) == np.sign(wf[k]) and abs(own) >= 0.5 * abs(wf[k]), (
            f"{u.name} on wire {u.electrode}: {wf[k]:.0f} uV referenced, {own:.1f} uV on its own wire")
        if d.name == "tridesclous" and u.electrode == 3:
            assert len(u.times) / duration < 1.0, f"{u.name}: {len(u.times) / duration:.1f} Hz on the silent wire"


def test_real_tetrode_single_units_isi_and_stability(sorted_locust):
    d, x, fs, split, units = sorted_locust
    limits = SortParams().autosort.ISI_violations_thresholds
    for u in units:
        isi_ms = np.diff(np.sort(u.times)) / fs * 1000
        v1, v2 = 100 * np.mean(isi_ms < 1.0), 100 * np.mean(isi_ms < 2.0)
        if u.single_unit:
            assert v1 <= limits[0] and v2 <= limits[1], f"{u.name}: {v1:.2f} % < 1 ms, {v2:.2f} % < 2 ms"
        first, second = u.times < split, u.times >= split
        if first.sum() < 50 or second.sum() < 50:
            continue
        r1, r2 = first.sum() / split, second.sum() / (len(x) - split)
        assert 0.5 <= r1 / r2 <= 2.0, f"{u.name}: {r1 * fs:.1f} Hz then {r2 * fs:.1f} Hz"
        m1, m2 = u.waveforms[first].mean(axis=0), u.waveforms[second].mean(axis=0)
        assert np.corrcoef(m1, m2)[0, 1] >= 0.9, u.name
        assert 0.75 <= np.abs(m1).max() / np.abs(m2).max() <= 1.25, u.name
