"""blechrs init: .info, electrode layout and .params from a recording, never overwriting edits."""

import json

import numpy as np
import pytest

from blechrs.errors import LayoutError
from blechrs.io import RecordingError, copy_raw, open_recording
from blechrs.io.info import load_info
from blechrs.io.layout import (
    car_groups,
    emg_electrodes,
    load_layout,
    sorted_electrodes,
)
from blechrs.pipeline.init_recording import init_experiment
from blechrs.io.params_file import load_params, save_params
from blechrs.params import SortParams
from blechrs.simulate import Simulation

NAME = "rat7_taste_260301_101500"


@pytest.fixture
def rec_dir(tmp_path):
    d = tmp_path / NAME
    sim = Simulation(seed=4, n_channels=36, duration_s=1.0, sampling_rate=20000.0, n_digital_inputs=3,
                     pulses_per_input=2, pulse_ms=20.0)
    gt = sim.write(d, "one file per channel")
    return d, sim, gt


def test_init_writes_info_layout_params(rec_dir):
    d, sim, gt = rec_dir
    res = init_experiment(d)
    assert {p.name for p in res.written} == {f"{NAME}.info", f"{NAME}_electrode_layout.csv", f"{NAME}.params"}
    assert res.skipped == []
    rows = load_layout(d)
    assert [r.electrode_ind for r in rows] == list(range(36))
    assert [r.filename for r in rows][:2] == ["amp-A-000.dat", "amp-A-001.dat"]
    assert rows[33].filename == "amp-B-001.dat" and rows[33].port == "B" and rows[33].electrode_num == "001"
    assert [r.car_group for r in rows] == ["A"] * 32 + ["B"] * 4
    info = load_info(d)
    assert (info["name"], info["exp_type"], info["date"], info["timestamp"]) == ("rat7", "taste", "260301", "101500")
    assert info["file_type"] == "one file per channel"
    assert info["ports"] == ["A", "B"]
    assert info["dig_ins"]["names"] == ["dig_in_00", "dig_in_01", "dig_in_02"]
    assert info["dig_ins"]["trial_counts"] == [len(gt.digital_inputs[n][0]) for n in info["dig_ins"]["names"]] == [2, 2, 2]
    assert info["taste_params"]["dig_in_names"] == info["dig_ins"]["names"]
    assert info["laser_params"]["dig_in_names"] == []
    assert info["electrode_layout"] == {"A": [list(range(32))], "B": [list(range(32, 36))]}
    assert info["recording_params"]["sampling_rate"] == 20000.0
    p = load_params(d / f"{NAME}.params")
    assert p.extract.sampling_rate == 20000.0
    assert p.to_flat() == SortParams().replace(sampling_rate=20000.0).to_flat()


def test_init_never_overwrites_edits_without_force(rec_dir):
    d, _, _ = rec_dir
    init_experiment(d)
    lay = d / f"{NAME}_electrode_layout.csv"
    text = lay.read_text().replace("amp-A-003.dat,3,003,A,A", "amp-A-003.dat,3,003,A,none")
    text = text.replace("amp-B-003.dat,35,003,B,B", "amp-B-003.dat,35,003,B,emg_jaw")
    lay.write_text(text)
    params = d / f"{NAME}.params"
    pd = json.loads(params.read_text())
    pd["waveform_threshold"] = 4.5
    params.write_text(json.dumps(pd))
    (d / f"{NAME}.info").unlink()  # a deleted file is written again, from the edited layout
    res = init_experiment(d)
    assert {p.name for p in res.skipped} == {lay.name, params.name}
    assert [p.name for p in res.written] == [f"{NAME}.info"]
    assert "kept" in str(res) and "--force" in str(res)
    assert lay.read_text() == text and json.loads(params.read_text())["waveform_threshold"] == 4.5
    info = load_info(d)
    assert info["emg"]["electrodes"] == [35]
    rows = load_layout(d)
    assert 3 not in sorted_electrodes(rows) and 35 not in sorted_electrodes(rows)
    assert emg_electrodes(rows) == [35]
    groups = car_groups(rows, 36)
    assert groups[3] == -1 and groups[35] == -1 and groups[0] == 0 and groups[32] == 1
    assert car_groups(rows, 36, use_car=False) == [-1] * 36
    res = init_experiment(d, force=True)
    assert len(res.written) == 3
    assert "none" not in lay.read_text() and load_params(params).extract.waveform_threshold == SortParams().extract.waveform_threshold != 4.5


def test_layout_errors_name_the_file_and_line(rec_dir):
    d, _, _ = rec_dir
    with pytest.raises(LayoutError, match="no electrode layout"):
        load_layout(d)
    with pytest.raises(LayoutError, match="no .info file"):
        load_info(d)
    init_experiment(d)
    lay = d / f"{NAME}_electrode_layout.csv"
    good = lay.read_text()
    lay.write_text(good.replace("amp-A-002.dat,2,", "amp-A-002.dat,two,"))
    with pytest.raises(LayoutError, match=r"_electrode_layout.csv: line 4: electrode_ind 'two'"):
        load_layout(d)
    lay.write_text(good.replace("amp-A-002.dat,2,", "amp-A-002.dat,1,"))
    with pytest.raises(LayoutError, match="electrode_ind 1 repeats line 3"):
        load_layout(d)
    lay.write_text(good)
    with pytest.raises(LayoutError, match="not a channel"):
        load_layout(d, n_channels=10)
    (d / f"{NAME}.info").write_text("{oops")
    with pytest.raises(LayoutError, match="not valid JSON"):
        load_info(d)


def test_copy_raw_writes_int32_counts(rec_dir, tmp_path):
    import tables

    d, sim, _ = rec_dir
    rec = open_recording(d)
    h5 = tmp_path / "raw.h5"
    written = copy_raw(rec, h5, electrodes=[0, 33], chunk_samples=7000)
    assert written == ["/raw/electrode00", "/raw/electrode33"]
    ref = sim.chunk(0, sim.n_samples)
    with tables.open_file(str(h5)) as f:
        for e in (0, 33):
            x = f.get_node(f"/raw/electrode{e:02d}").read()
            assert x.dtype == np.int32
            np.testing.assert_array_equal(x, ref[:, e].astype(np.int32))


def test_auto_car_layout_keeps_the_original_groups(rec_dir):
    d, _, _ = rec_dir
    from blechrs.io.layout import layout_csv, save_layout
    from blechrs.pipeline.init_recording import auto_car_layout

    init_experiment(d)
    rows = load_layout(d)
    rng = np.random.default_rng(1)
    m = 4000
    a, b = rng.standard_normal(m), rng.standard_normal(m)
    x = np.stack([(a if i < 16 else b) + rng.standard_normal(m) for i in range(36)])
    corr = np.corrcoef(x)
    new = auto_car_layout(rows, corr, max_clusters=4)
    assert [r.car_group for r in new] == ["A-00"] * 16 + ["A-01"] * 16 + ["B"] * 4
    assert all(r.extra["original_CAR_group"] == o.car_group for r, o in zip(new, rows))
    save_layout(d, new)
    again = load_layout(d)
    assert [r.car_group for r in again] == [r.car_group for r in new]
    assert "original_CAR_group" in layout_csv(again).splitlines()[0]
    assert car_groups(again, 36)[15] == 0 and car_groups(again, 36)[16] == 1 and car_groups(again, 36)[33] == 2
    # splitting again starts from the original groups, not the split ones
    assert [r.car_group for r in auto_car_layout(again, corr, max_clusters=4)] == [r.car_group for r in new]


def test_init_auto_car_splits_groups_with_two_references(tmp_path):
    """Channels 0-3 and 4-7 of one port share different references: --auto-car splits port A in
    two (checked against the known construction), keeps the original group, and never changes a
    layout that already exists."""
    import csv

    from blechrs.io.layout import layout_path
    from blechrs.simulate import Simulation

    d = tmp_path / "exp"
    Simulation(seed=4, n_channels=8, duration_s=2.0).write(d, "one file per channel")
    rng = np.random.default_rng(1)
    files = sorted(d.glob("amp-A-*.dat"))
    n = len(np.fromfile(files[0], dtype="<i2"))
    refs = [rng.standard_normal(n) * 300 for _ in range(2)]  # large shared reference noise
    for i, f in enumerate(files):
        x = np.fromfile(f, dtype="<i2").astype(np.float64) + refs[i // 4]
        np.clip(x, -32768, 32767).astype("<i2").tofile(f)
    res = init_experiment(d, auto_car=True)
    with open(layout_path(d)) as fh:
        rows = list(csv.DictReader(fh))
    groups = [r["CAR_group"] for r in rows]
    assert len(set(groups[:4])) == 1 and len(set(groups[4:])) == 1 and groups[0] != groups[4]
    assert {r["original_CAR_group"] for r in rows} == {"A"}
    assert "automatic CAR groups" in str(res)
    before = layout_path(d).read_text()
    init_experiment(d, auto_car=True)  # kept: nothing rewritten
    assert layout_path(d).read_text() == before


def test_a_renamed_folder_keeps_its_files(tmp_path):
    # A copied or renamed recording folder is recognised by its files, not its name: the person's
    # edits are used, no second set of defaults or second store appears beside them.
    from blechrs import pipeline
    from blechrs.io import paths
    from blechrs.io.params_file import load_params, save_params
    from blechrs.simulate import Simulation

    d = tmp_path / "rat7_day1"
    Simulation(seed=1, n_channels=4, duration_s=2.0).write(d, layout="one file per channel")
    pipeline.init(d)
    save_params(paths.params_path(d), load_params(paths.params_path(d)).replace(waveform_threshold=4.5))
    moved = d.rename(tmp_path / "rat7_day1_copy")
    assert not pipeline.needs_init(moved)
    assert paths.recording_name(moved) == "rat7_day1" and paths.h5_path(moved).name == "rat7_day1.h5"
    assert pipeline.load_params(moved).extract.waveform_threshold == 4.5
    pipeline.init(moved)  # keeps the files it finds
    assert sorted(p.name for p in moved.glob("*.params")) == ["rat7_day1.params"]
    (moved / "other.params").write_text("{}")
    with pytest.raises(LayoutError, match="several recordings"):
        paths.params_path(moved)
