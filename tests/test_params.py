"""Issue 17, item 1: every parameter of a .params file is checked at load, with its type and range,
and a bad one is refused in one line naming the file and the key (before any work)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from blechrs.errors import ParamsError
from blechrs.io.params_file import load_params
from blechrs.params import STAGES, SortParams


def _load(tmp_path, **flat):
    path = tmp_path / "rec.params"
    path.write_text(json.dumps(SortParams().to_flat() | flat))
    return path, load_params(path)


@pytest.mark.parametrize("key, value, rule", [
    ("spike_snapshot_after", 1e9, "<= 20"),  # aborted the process (120 GB allocation)
    ("spike_snapshot_after", 500, "<= 20"),  # 3.8 GB, minutes at 100 % CPU
    ("spike_snapshot_before", -1, "> 0"),
    ("max_training_events", -5, ">= 100"),
    ("max_training_events", 1, ">= 100"),
    ("max_training_events", 10**400, "<= 10000000"),  # no OverflowError
    ("random_seed", 1e400, "an integer"),  # json: Infinity
    ("random_seed", -1, ">= 0"),
    ("ISI_violations_thresholds", [0.5], "a list of 2 numbers"),
    ("ISI_violations_thresholds", [0.5, "x"], "a list of 2 numbers"),
    ("num_iter", 0, ">= 1"),
    ("num_restarts", 0, ">= 1"),
    ("max_clusters", 7.9, "an integer"),  # was truncated to 7
    ("max_clusters", "7", "an integer"),
    ("rolling_threshold_step", -5, "> 0"),
    ("use_car", 1, "true or false"),
    ("template_assignment", 0, "true or false"),
    ("waveform_threshold", float("nan"), "a number"),
    ("voltage_cutoff", float("inf"), "a number"),
    ("sampling_rate", float("-inf"), "a number"),
    ("spike_polarity", "down", "'negative' or 'positive' or 'both'"),
    ("noise_subsample", 0, ">= 1"),
    ("drift_alpha", 1.0, "< 1"),
    ("n_jobs", -2, ">= 0"),
    ("n_corr_samples", 10**9, "<= 1000000"),
    ("spike_array_durations", [2000, 1e7], "<= 60000"),
])
def test_bad_value_names_file_key_and_rule(tmp_path, key, value, rule):
    path = tmp_path / "rec.params"
    path.write_text(json.dumps(SortParams().to_flat() | {key: value}))  # NaN/Infinity as Python's json writes them
    with pytest.raises(ParamsError) as err:
        load_params(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: {key} must be ") and rule in msg and ", not " in msg, msg
    assert "\n" not in msg


def test_huge_waveform_window_says_why(tmp_path):
    with pytest.raises(ParamsError, match=r"spike_snapshot_after must be a number > 0 and <= 20 \(ms; .*memory"):
        _load(tmp_path, spike_snapshot_after=1e9)


def test_lossless_numbers_are_accepted(tmp_path):
    _, p = _load(tmp_path, max_clusters=5.0, sampling_rate=20000, bandpass_upper_cutoff=3000)
    assert p.cluster.max_clusters == 5 and type(p.cluster.max_clusters) is int
    assert p.extract.sampling_rate == 20000.0 and type(p.extract.sampling_rate) is float


def test_every_parameter_has_a_rule_and_defaults_pass():
    p = SortParams()
    for stage in STAGES:
        for f in dataclasses.fields(getattr(p, stage)):
            assert "rule" in f.metadata, f"{f.name} has no rule"
    p.validate("defaults")


def test_waveform_shorter_than_a_sample_is_refused():
    with pytest.raises(ParamsError, match="at least one sample"):
        SortParams().replace(spike_snapshot_before=0.01)


def test_programmatic_trees_are_checked_too():
    p = SortParams()
    p.cluster.num_restarts = 0
    with pytest.raises(ParamsError, match="mine: num_restarts must be an integer >= 1"):
        p.validate("mine")


def test_bad_value_stops_run_before_any_work(tmp_path):
    from support.sorting_reference import init_folder, simulated_folder
    from blechrs import pipeline

    d = tmp_path / "rec"
    d.mkdir()
    simulated_folder(d, seed=1, n_channels=2, duration_s=1.0)
    init_folder(d)
    params = d / "rec.params"
    params.write_text(params.read_text().replace('"spike_snapshot_after": 1.5', '"spike_snapshot_after": 1e9'))
    with pytest.raises(ParamsError, match="spike_snapshot_after"):
        pipeline.run(d, jobs=1, plots=False)
    assert not list(d.glob("blechrs_work/electrode*.npz")) and not (d / "rec.h5").exists()


def test_spike_arrays_of_absurd_length_are_refused():
    with pytest.raises(ParamsError, match=r"make 7000000 bins per trial; at most 120000"):
        SortParams().replace(spike_array_bin_ms=0.001)


ODD_VALUES = [None, "", "1", [], {}, [1.0, 2.0, 3.0], [0.5, 2.0], True, False, -1, 0, 1, 2.5, 1e308, -1e308,
              float("nan"), float("inf"), 10**30, -(10**30), "both", [float("nan"), 1.0]]


@pytest.mark.parametrize("key", list(SortParams().to_flat()))
def test_any_value_is_taken_or_refused_in_one_line(key):
    # Never another exception (TypeError, OverflowError ...), whatever JSON a person writes.
    for value in ODD_VALUES:
        try:
            SortParams.from_flat({key: value}, source="x.params")
        except ParamsError as e:
            assert str(e).startswith("x.params: ") and "\n" not in str(e)
