"""End to end with the real engine: a simulated Intan folder -> `blechrs run` -> units scored
against the simulation's ground truth (0.4 ms matching, Hungarian pairing)."""

from __future__ import annotations

import numpy as np

from blechrs.io import paths, unit_store, work_files
from blechrs.cli.main import main as cli_main
from blechrs.simulate.scoring import score_sorting
from support.sorting_reference import init_folder, simulated_folder


def test_run_sorts_isolated_units_accurately(tmp_path, capsys):
    d = tmp_path / "rec"
    d.mkdir()
    # One unit per wire at most, clearly above the noise: every one must be found.
    gt = simulated_folder(d, seed=11, n_channels=6, duration_s=12.0, max_units_per_channel=1,
                          amplitude_range_uv=(150.0, 400.0), rate_range_hz=(5.0, 20.0))
    assert gt.n_units >= 3
    init_folder(d, max_clusters=4, num_restarts=2, cluster_count_threshold=20, max_autosort_clusters=6)
    code = cli_main(["run", str(d), "-j", "2", "-q", "--no-plots"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "units in" in captured.out
    units = unit_store.read_units(d / "rec.h5", waveforms=True)
    scores, _ = score_sorting(gt.spike_times, gt.unit_channel, {u.name: u.times for u in units},
                              gt.sampling_rate, sorted_channels={u.name: u.electrode for u in units})
    acc = [s.accuracy for s in scores]
    assert min(acc) >= 0.9, [(s.gt_unit, s.channel, round(s.accuracy, 2)) for s in scores]
    for s in scores:
        u = next(u for u in units if u.name == s.sorted_unit)
        assert u.electrode == s.channel
        # Waveforms are microvolts with the extremum at index 30, near the ground truth's size.
        peak = np.median(u.waveforms[:, 30])
        assert abs(peak - gt.unit_peak_uv[s.gt_unit]) < 0.25 * abs(gt.unit_peak_uv[s.gt_unit])
    # Resume: a second run redoes nothing.
    code = cli_main(["run", str(d), "-j", "2", "-q", "--no-plots"])
    assert code == 0 and "resumed: 6 electrode(s) already extracted, 6 of them already clustered" in capsys.readouterr().err


def test_extraction_in_memory_bounded_batches_is_identical(tmp_path):
    from blechrs.params import SortParams
    from blechrs import pipeline

    d = tmp_path / "rec"
    d.mkdir()
    simulated_folder(d, seed=2, n_channels=6, duration_s=4.0)
    init_folder(d)
    layout = pipeline.read_layout(d)
    groups = pipeline.car_group_ids(layout, 6, True)
    params = pipeline.load_params(d)
    assert pipeline.extraction_batches(list(range(6)), groups, 120000, params) == [list(range(6))]
    tiny = SortParams.from_flat(dict(params.to_flat(), extract_memory_mb=4.0))
    assert pipeline.extraction_batches(list(range(6)), groups, 120000, tiny) == [[0, 1], [2, 3], [4, 5]]

    def arrays():
        out = {}
        for e in range(6):
            work = work_files.load_electrode(paths.electrode_path(d, e))
            out[e] = (work.times.tobytes(), work.waveforms.tobytes(), work.threshold)
        return out

    pipeline.extract(d, params)
    whole = arrays()
    pipeline.extract(d, tiny, force=True)
    assert arrays() == whole
    assert sum(len(work_files.load_electrode(paths.electrode_path(d, e)).times) for e in range(6)) > 0


def test_dead_and_silent_wires_are_reported(tmp_path, capsys):
    d = tmp_path / "rec"
    d.mkdir()
    simulated_folder(d, seed=4, n_channels=4, duration_s=4.0, dead_channels=(1,))
    init_folder(d, max_clusters=3, num_restarts=1, max_autosort_clusters=4)
    code = cli_main(["run", str(d), "-j", "1", "-q", "--no-plots"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "electrode 01: quiet (" in err
    units = unit_store.read_units(d / "rec.h5", waveforms=False)
    assert all(u.electrode != 1 for u in units)


def test_sort_electrode_pure_function_matches_the_pipeline(tmp_path):
    from blechrs import pipeline

    d = tmp_path / "rec"
    d.mkdir()
    simulated_folder(d, seed=7, n_channels=4, duration_s=6.0)
    init_folder(d, max_clusters=3, num_restarts=1, max_autosort_clusters=4, cluster_count_threshold=10)
    files_before = sorted(p.name for p in d.iterdir())
    alone = pipeline.sort_electrode(d, 2, pipeline.load_params(d))
    assert sorted(p.name for p in d.iterdir()) == files_before  # writes nothing
    pipeline.run(d, jobs=1, plots=False)
    stored = work_files.load_electrode(paths.electrode_path(d, 2))
    # Extracted alone (its CAR group read for it) or with every electrode: the same events,
    # waveforms, solutions and auto-sort labels.
    for key in ("times", "waveforms", "features"):
        np.testing.assert_array_equal(getattr(alone, key), getattr(stored, key), err_msg=key)
    assert list(alone.solutions) == list(stored.solutions) and {2, 3, 4} <= set(stored.solutions)
    for number, sol in stored.solutions.items():
        np.testing.assert_array_equal(alone.labels_of(number), sol.labels, err_msg=f"solution {number}")
    np.testing.assert_array_equal(alone.auto_labels(), stored.auto_labels())
    assert [u.record() for u in alone.units] == [u.record() for u in stored.units]


def _count_array(times: np.ndarray, onsets: np.ndarray, pre: int, post: int, fs: float) -> np.ndarray:
    """Independent reference: per trial, spikes in [onset - pre, onset + post) ms counted per 1 ms bin."""
    out = np.zeros((len(onsets), pre + post), dtype=np.int64)
    per_ms = fs / 1000.0
    for i, on in enumerate(onsets):
        for t in times:
            ms = (int(t) - int(on)) / per_ms
            if -pre <= ms < post:
                out[i, int(np.floor(ms)) + pre] += 1
    return out


def test_run_builds_trial_arrays_and_unit_qa_when_digital_inputs_pulse(tmp_path, capsys):
    import tables

    d = tmp_path / "rec"
    d.mkdir()
    gt = simulated_folder(d, seed=5, n_channels=4, duration_s=20.0, n_digital_inputs=2,
                          amplitude_range_uv=(150.0, 400.0))
    assert any(len(on) for on, _ in gt.digital_inputs.values())
    init_folder(d, max_clusters=4, num_restarts=1, cluster_count_threshold=20, max_autosort_clusters=6)
    code = cli_main(["run", str(d), "-j", "1", "-q", "--no-plots"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    units = unit_store.read_units(d / "rec.h5")
    assert units
    fs = gt.sampling_rate
    with tables.open_file(str(d / "rec.h5")) as h5:
        for name, (onsets, _) in gt.digital_inputs.items():
            if not len(onsets):
                continue
            arr = h5.get_node(f"/spike_trains/{name}/spike_array").read()
            assert arr.shape == (len(onsets), len(units), 7000)
            for k, u in enumerate(sorted(units, key=lambda u: u.name)):
                ref = _count_array(u.times, np.sort(onsets), 2000, 5000, fs)
                np.testing.assert_array_equal(arr[:, k, :], np.minimum(ref, 1))
    assert (d / "QA_output" / "unit_qa.json").exists()
    assert (d / "trial_info_frame.csv").exists()


def test_run_without_digital_pulses_skips_arrays_but_runs_unit_qa(tmp_path, capsys):
    import tables

    d = tmp_path / "rec"
    d.mkdir()
    # 16 s: in 8 s the only unit auto-sort keeps is an inverted copy of wire 0's large units on
    # wire 2 (the 3-wire group's reference echo), which is (rightly) removed, and unit QA has no unit
    simulated_folder(d, seed=6, n_channels=3, duration_s=16.0, n_digital_inputs=0,
                     amplitude_range_uv=(150.0, 400.0))
    init_folder(d, max_clusters=3, num_restarts=1, cluster_count_threshold=20, max_autosort_clusters=4)
    assert cli_main(["run", str(d), "-j", "1", "-q", "--no-plots"]) == 0
    capsys.readouterr()
    with tables.open_file(str(d / "rec.h5")) as h5:
        assert "/spike_trains" not in h5
    assert (d / "QA_output" / "unit_qa.json").exists()
