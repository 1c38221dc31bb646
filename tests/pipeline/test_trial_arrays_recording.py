"""make_arrays and unit_qa end to end on a simulated Intan recording (digital inputs read by
blechrs.io), against the simulation's known pulse times and the unit times stored in the store."""

import json

import numpy as np
import pytest
import tables

from support.arrays_reference import reference_spike_array
from blechrs.io.paths import TRIAL_TABLE_NAME
from blechrs.pipeline.trial_arrays import make_arrays
from blechrs.io.params_file import load_params, save_params
from blechrs.params import SortParams
from blechrs.pipeline.unit_qa import unit_qa
from blechrs.simulate import Simulation
from blechrs.io.unit_store import Unit, write_units
from support.quality_reference import similarity_reference


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    d = tmp_path_factory.mktemp("sim") / "exp_sim_230101_120000"
    sim = Simulation(seed=3, n_channels=4, duration_s=10.0, n_digital_inputs=3, pulses_per_input=4, pulse_ms=50.0)
    gt = sim.write(d, "one file per channel")
    units = [Unit(electrode=int(gt.unit_channel[u]), times=gt.spike_times[u],
                  waveforms=np.zeros((len(gt.spike_times[u]), 75), np.float32)) for u in range(gt.n_units)]
    write_units(d / f"{d.name}.h5", units)
    (d / f"{d.name}_electrode_layout.csv").write_text(
        "filename,electrode_ind,electrode_num,port,CAR_group\n"
        + "".join(f"amp-A-00{c}.dat,{c},{c},A,{'emg' if c == 3 else 'A'}\n" for c in range(4))
    )
    # .info lists the inputs out of order, with taste names
    (d / f"{d.name}.info").write_text(json.dumps(
        {"taste_params": {"dig_in_names": ["dig_in_02", "dig_in_00", "dig_in_01"], "tastes": ["QHCl", "water", "NaCl"]}}
    ))
    return d, gt


def test_arrays_from_recording(experiment):
    d, gt = experiment
    din = gt.digital_inputs
    first = min(din, key=lambda k: din[k][0].min())
    assert first != "dig_in_00"  # the case blech_clust gets wrong (spec 11, bug 4)
    res = make_arrays(d, SortParams())
    with tables.open_file(str(d / f"{d.name}.h5")) as h5:
        names = sorted(h5.root.sorted_units._v_children)
        stored = [h5.get_node(f"/sorted_units/{n}/times").read() for n in names]
        assert sorted(h5.root.spike_trains._v_children) == ["dig_in_00", "dig_in_01", "dig_in_02"]
        for name, (on, _) in din.items():
            got = h5.get_node(f"/spike_trains/{name}/spike_array").read().astype(np.int64)
            np.testing.assert_array_equal(got, np.minimum(reference_spike_array(stored, np.sort(on), gt.sampling_rate, 2000, 5000, 1), 1))
        emg = {n: h5.get_node(f"/emg_data/{n}/emg_array").read() for n in din}
    assert h5.isopen == 0
    assert res.n_units == gt.n_units and res.n_trials == 12 and res.emg_channels == [3]
    # 10 s recording, pulses in its middle 8 s: windows of 7 s are truncated somewhere
    assert sum(x.n_truncated for x in res.dig_ins) > 0
    # EMG reference straight from the channel's .dat file (no blechrs reader)
    raw = np.fromfile(d / "amp-A-003.dat", dtype="<i2").astype(np.float64) * 0.195
    for name, (on, _) in din.items():
        for k, s in enumerate(np.sort(on)):
            for b in range(0, 7000, 97):
                a = s - 60000 + 30 * b
                v = emg[name][0, k, b]
                if a < 0 or a + 30 > len(raw):
                    assert np.isnan(v)
                else:
                    assert v == pytest.approx(raw[a : a + 30].mean(), rel=1e-5, abs=1e-4)
    # trial table: every pulse once, named and numbered correctly
    import csv

    rows = list(csv.DictReader(open(d / TRIAL_TABLE_NAME)))
    taste = {"dig_in_02": "QHCl", "dig_in_00": "water", "dig_in_01": "NaCl"}
    want = sorted((int(s), n) for n, (on, _) in din.items() for s in on)
    assert [(int(r["start_taste"]), r["dig_in_name_taste"]) for r in rows] == want
    assert all(r["taste"] == taste[r["dig_in_name_taste"]] for r in rows)
    assert rows[0]["dig_in_name_taste"] == first and rows[0]["taste_rel_trial_num"] == "0"


def test_qa_from_recording(experiment):
    d, gt = experiment
    make_arrays(d, SortParams())
    res = unit_qa(d, SortParams(), pictures=False)  # pictures are tested in test_arrays_qa
    with tables.open_file(str(d / f"{d.name}.h5")) as h5:
        stored = [g.times.read() for g in sorted(h5.root.sorted_units._v_groups.values(), key=lambda g: g._v_name)]
    doc = json.loads((d / "QA_output" / "unit_qa.json").read_text())
    got = np.array([[np.nan if x is None else x for x in row] for row in doc["similarity"]["matrix"]])
    ref = similarity_reference(stored, 30)
    np.testing.assert_array_equal(np.nan_to_num(got, nan=-1), np.nan_to_num(ref, nan=-1))
    assert len(res.units) == gt.n_units and res.pictures == []
    assert all(u["drift"]["n_trials"] <= 12 for u in res.units)


def test_defaults_from_init_traditional_rhd(tmp_path):
    """`blechrs init` defaults, no editing: every input with pulses is a taste; a .rhd recording
    with RHX-style input names; one input never pulses."""
    from blechrs.pipeline.init_recording import init_experiment

    d = tmp_path / "exp_rhd_230101_120000"
    sim = Simulation(seed=5, n_channels=2, duration_s=6.0, n_digital_inputs=3, pulses_per_input=3, din_style="rhx")
    # drop the pulses of the second input (the simulation draws them before writing)
    sim.din_on, sim.din_off, sim.din_ch = (a[sim.din_ch != 1] for a in (sim.din_on, sim.din_off, sim.din_ch))
    gt = sim.write(d, "traditional")
    assert sorted(gt.digital_inputs) == ["dig_in_01", "dig_in_02", "dig_in_03"]
    assert len(gt.digital_inputs["dig_in_02"][0]) == 0
    init_experiment(d)
    write_units(d / f"{d.name}.h5", [Unit(electrode=int(gt.unit_channel[u]), times=gt.spike_times[u],
                                          waveforms=np.zeros((len(gt.spike_times[u]), 75), np.float32))
                                     for u in range(gt.n_units)])
    params = load_params(d / f"{d.name}.params")
    res = make_arrays(d, params)
    assert [x.dig_in for x in res.dig_ins] == ["dig_in_01", "dig_in_03"] and res.n_trials == 6
    with tables.open_file(str(d / f"{d.name}.h5")) as h5:
        stored = [g.times.read() for g in sorted(h5.root.sorted_units._v_groups.values(), key=lambda g: g._v_name)]
        for name in ("dig_in_01", "dig_in_03"):
            got = h5.get_node(f"/spike_trains/{name}/spike_array").read().astype(np.int64)
            ref = reference_spike_array(stored, np.sort(gt.digital_inputs[name][0]), 30000.0, 2000, 5000, 1)
            np.testing.assert_array_equal(got, np.minimum(ref, 1))
    qa = unit_qa(d, params, pictures=False)
    assert len(qa.units) == gt.n_units and (d / "QA_output" / "unit_qa.json").exists()
