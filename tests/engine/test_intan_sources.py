"""The engine streams from every Intan layout exactly as from the samples in memory, and finds the
simulated units' spikes."""

import numpy as np

from blechrs import kernels
from blechrs.io import open_recording
from blechrs.io.layout import car_groups, default_layout
from blechrs.params import SortParams
from blechrs.simulate import Simulation


def test_extract_electrodes_from_intan_sources(tmp_path):
    sim = Simulation(seed=21, n_channels=6, duration_s=3.0, noise_range_uv=(5.0, 6.0))
    dirs = {tmp_path / "pc": "one file per channel", tmp_path / "ps": "one file per signal type",
            tmp_path / "rhd": "traditional"}
    gt = sim.write_many(dirs, rhd_file_seconds=1.1)
    ref = np.ascontiguousarray(sim.chunk(0, sim.n_samples).T)
    params = SortParams().extract
    rec0 = open_recording(tmp_path / "pc")
    groups = car_groups(default_layout(rec0), rec0.n_channels)
    assert groups == [0] * 6
    base = kernels.extract_electrodes(ref, list(range(6)), groups, params, threads=1)
    for d in dirs:
        rec = open_recording(d)
        out = kernels.extract_electrodes(rec.source, list(range(6)), groups, params, threads=1)
        for a, b in zip(base, out):
            np.testing.assert_array_equal(a["times"], b["times"])
            np.testing.assert_array_equal(a["waveforms"], b["waveforms"])
    # the biggest unit's spikes are found (within 0.5 ms of the ground truth)
    u = int(np.argmax(np.abs(gt.unit_peak_uv)))
    found = base[gt.unit_channel[u]]["times"]
    t = gt.spike_times[u]
    near = np.abs(found[np.clip(np.searchsorted(found, t), 0, len(found) - 1)] - t) <= 15
    assert len(t) > 0 and near.mean() > 0.9
