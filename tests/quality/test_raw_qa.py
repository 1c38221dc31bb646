"""Raw QA finds the bridged pair, the flat and the dead channel a simulation was built with."""

import numpy as np

from blechrs.pipeline.init_recording import raw_qa
from blechrs.quality.car_groups import auto_car_groups
from blechrs.quality.raw_channels import correlation
from blechrs.simulate import Simulation


def test_raw_qa_finds_bridged_dead_and_flat_channels(tmp_path):
    sim = Simulation(seed=1, n_channels=10, duration_s=2.0, dead_channels=(2,), weak_channels=(7,),
                     bridged_pairs=((0, 5),), n_digital_inputs=2)
    gt = sim.write(tmp_path, "one file per signal type")
    res = raw_qa(tmp_path)
    assert [(i, j) for i, j, _ in res.bridged] == [(0, 5)]
    assert res.flat == [2] and res.dead == [7]
    assert not res.ok
    assert res.digital_inputs == {k: len(v[0]) for k, v in gt.digital_inputs.items()}
    qa = tmp_path / "QA_output"
    for name in ("channel_corr.npz", "raw_channel_corr_table.txt", "warnings.txt", "raw_channel_corr_plot.png",
                 "digital_inputs.png"):
        assert (qa / name).stat().st_size > 0
    warn = (qa / "warnings.txt").read_text()
    assert "bridged channels 0 (A-000) and 5 (A-005)" in warn and "flat channel 2" in warn and "dead channel 7" in warn
    text = str(res)
    assert "1 bridged pair(s), 1 dead, 1 flat" in text
    # the saved matrices are Pearson r (checked against numpy's corrcoef on the same samples)
    z = np.load(qa / "channel_corr.npz")
    r = z["raw"]
    assert r.shape == (10, 10) and np.allclose(r, r.T) and np.allclose(np.diag(r), 1)
    assert abs(z["spike_band"][0, 5]) > 0.9 and abs(z["spike_band"][0, 1]) < 0.2


def test_healthy_recording_has_no_warnings(tmp_path):
    Simulation(seed=3, n_channels=6, duration_s=1.0).write(tmp_path, "one file per channel")
    res = raw_qa(tmp_path, plots=False)
    assert res.ok and res.warnings == []
    assert "no bridged, dead or flat channels" in str(res)


def test_correlation_is_pearson():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 300))
    x[3] = 0.5 * x[1] + rng.standard_normal(300)
    x[4] = 7.0  # constant row
    r = correlation(x)
    np.testing.assert_allclose(r[:4, :4], np.corrcoef(x[:4]), atol=1e-12)
    assert np.all(r[4, :4] == 0) and r[4, 4] == 1


def test_auto_car_splits_two_references_and_keeps_one_whole():
    rng = np.random.default_rng(0)
    m = 5000
    a, b = rng.standard_normal(m), rng.standard_normal(m)
    two = np.stack([(a if i < 8 else b) + rng.standard_normal(m) for i in range(16)])
    one = np.stack([a + rng.standard_normal(m) for _ in range(16)])
    groups = ["gc"] * 16
    assert auto_car_groups(correlation(two), groups) == ["gc-00"] * 8 + ["gc-01"] * 8
    assert auto_car_groups(correlation(one), groups) == groups
    assert auto_car_groups(correlation(two), ["none"] * 16) == ["none"] * 16


def test_init_runs_raw_qa_on_the_sorted_channels(tmp_path):
    from blechrs.io.layout import layout_path
    from blechrs.pipeline.init_recording import init_experiment

    d = tmp_path / "exp"
    Simulation(seed=2, n_channels=6, duration_s=1.0, dead_channels=(4,)).write(d, "one file per channel")
    res = init_experiment(d, qa=True)
    assert res.qa.flat == [4] and "flat channel 4" in str(res)
    lay = layout_path(d)
    lay.write_text(lay.read_text().replace("amp-A-004.dat,4,004,A,A", "amp-A-004.dat,4,004,A,none"))
    res = init_experiment(d, qa=True)  # the layout is kept; channel 4 is not sorted, so not reported
    assert res.qa.flat == [] and res.qa.ok


def test_raw_qa_pictures_are_drawn_later_when_left_out(tmp_path):
    """``run --no-plots`` leaves the raw QA's pictures out; ``raw_qa_pictures`` (``blechrs plot``)
    draws them from channel_corr.npz and the recording, once."""
    from blechrs.pipeline.init_recording import RAW_QA_PICTURES, raw_qa_pictures

    Simulation(seed=3, n_channels=6, duration_s=1.0, n_digital_inputs=1).write(tmp_path, "one file per channel")
    raw_qa(tmp_path, plots=False)
    qa = tmp_path / "QA_output"
    assert not any((qa / name).exists() for name in RAW_QA_PICTURES)
    made = raw_qa_pictures(tmp_path)
    assert sorted(p.name for p in made) == sorted(RAW_QA_PICTURES)
    assert all((qa / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in RAW_QA_PICTURES)
    assert raw_qa_pictures(tmp_path) == []  # current: not drawn again
