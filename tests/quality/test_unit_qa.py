"""Unit QA: similarity, the F test without scipy, drift, files and pictures; references written here."""

import json
import os

import numpy as np
import pytest
from scipy import stats

from support.arrays_reference import fake_recording, make_dir, write_store
from blechrs.pipeline.trial_arrays import make_arrays
from blechrs.params import SortParams
from blechrs.pipeline.unit_qa import unit_qa
from blechrs.quality.drift import drift_check, group_f_test, trial_group
from support.quality_reference import similarity_reference
from blechrs.quality.similarity import similarity_violations, unit_similarity
from blechrs.quality.stats import f_sf

FS = 30000.0



def test_similarity_matches_mask_reference():
    rng = np.random.default_rng(20)
    a = np.sort(rng.choice(3_000_000, 3000, replace=False))
    b = np.sort(np.concatenate([a[::2] + rng.integers(-25, 26, len(a[::2])), rng.integers(0, 3_000_000, 200)]))
    c = np.sort(rng.choice(3_000_000, 500, replace=False))
    units = [a, b.clip(0), c, np.zeros(0, np.int64), np.array([a[0] + 30, a[0] + 31])]
    got = unit_similarity(units, FS, 1.0)
    ref = similarity_reference(units, 30)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_array_equal(got[~np.isnan(got)], ref[~np.isnan(ref)])
    assert got[1, 0] > 80 and 35 < got[0, 1] < 55  # b is mostly a copy of half of a
    assert (got[3, [0, 1, 2, 4]] == 0).all() and got[4, 0] == 50.0


@pytest.mark.parametrize("chunk", [1, 7, 100, 1000])
def test_similarity_in_stretches_matches_mask_reference(chunk):
    # the session cut into stretches of ~chunk spikes (memory bounded by the stretch): spikes near
    # the stretches' ends see their neighbours in the next, duplicates and unsorted units too
    rng = np.random.default_rng(chunk)
    a = np.sort(rng.choice(300_000, 1500, replace=False))
    b = np.concatenate([a[::3] + rng.integers(-35, 36, len(a[::3])), rng.integers(0, 300_000, 300), a[:5]])
    c = rng.integers(0, 300_000, 400)  # unsorted, with repeats
    units = [a, b.clip(0), c, np.zeros(0, np.int64), np.array([a[0] + 30, a[0] + 31])]
    got = unit_similarity(units, FS, 1.0, chunk=chunk)
    ref = similarity_reference(units, 30)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_array_equal(got[~np.isnan(got)], ref[~np.isnan(ref)])


def test_similarity_loop_reference_small():
    units = [np.array([100, 200, 300, 400]), np.array([131, 230, 271, 1000]), np.array([100])]
    got = unit_similarity(units, FS, 1.0)  # 30 samples
    ref = np.full((3, 3), np.nan)
    for i in range(3):
        for j in range(3):
            if i != j:
                hits = sum(any(abs(int(x) - int(y)) <= 30 for y in units[j]) for x in units[i])
                ref[i, j] = 100.0 * hits / len(units[i])
    np.testing.assert_array_equal(got, ref)  # NaN on both diagonals (assert_array_equal treats NaN==NaN)
    assert got[0, 1] == 50.0 and got[1, 0] == 50.0 and got[2, 0] == 100.0  # 31 samples apart is not within 1 ms


def test_violations_either_direction_and_similar_counts():
    sim = np.array([[np.nan, 20.0, 0.0], [96.0, np.nan, 51.0], [0.0, 50.0, np.nan]])
    v = similarity_violations(sim, [1000, 50, 48], ["u0", "u1", "u2"], cutoff=50.0, count_cutoff=10.0)
    assert [(x["unit_a"], x["unit_b"]) for x in v] == [("u0", "u1"), ("u1", "u2")]
    assert v[0]["pct_b_in_a"] == 96.0 and not v[0]["similar_counts"]
    assert v[1]["similar_counts"]


def test_f_sf_matches_scipy():
    for f in [0.0, 1e-6, 0.3, 1.0, 2.5, 7.7, 40.0, 400.0]:
        for d1, d2 in [(1, 1), (3, 116), (3, 20), (2, 9), (10, 3), (1, 500), (7, 7)]:
            assert f_sf(f, d1, d2) == pytest.approx(stats.f.sf(f, d1, d2), rel=1e-9, abs=1e-14)


def test_group_f_test_one_way_matches_scipy():
    rng = np.random.default_rng(21)
    y = rng.poisson(5, 40).astype(float) + np.repeat([0, 0, 1, 2], 10)
    g = trial_group(40, 4)
    f, p, df1, df2 = group_f_test(y, g, np.zeros(40))
    ref = stats.f_oneway(*[y[g == k] for k in range(4)])
    assert (df1, df2) == (3, 36)
    assert f == pytest.approx(ref.statistic, rel=1e-10) and p == pytest.approx(ref.pvalue, rel=1e-8)


def test_group_f_test_with_taste_balanced_formula():
    rng = np.random.default_rng(22)
    tastes = np.tile(np.arange(3), 24)  # 72 trials, 3 tastes, interleaved
    g = trial_group(72, 4)  # each group holds 6 trials of each taste: balanced
    y = rng.poisson(4, 72) + 3.0 * tastes + 0.5 * g
    grand = y.mean()
    ss_g = sum(18 * (y[g == k].mean() - grand) ** 2 for k in range(4))
    ss_t = sum(24 * (y[tastes == k].mean() - grand) ** 2 for k in range(3))
    ss_res = ((y - grand) ** 2).sum() - ss_g - ss_t
    f_ref = (ss_g / 3) / (ss_res / (72 - 3 - 4 + 1))
    f, p, df1, df2 = group_f_test(y, g, tastes)
    assert (df1, df2) == (3, 66)
    assert f == pytest.approx(f_ref, rel=1e-10)
    assert p == pytest.approx(stats.f.sf(f_ref, 3, 66), rel=1e-8)


def test_drift_check_counts_and_flags():
    rng = np.random.default_rng(23)
    n_trials = 60
    onsets = np.arange(n_trials) * 10 * 30000 + 60000
    tastes = np.array(["A", "B", "C"])[np.arange(n_trials) % 3]
    stable, drifting = [], []
    for k, s in enumerate(onsets):
        stable.append(s + rng.integers(-30000, 75000, 8))
        # baseline rate climbs over the session; the response does not
        drifting.append(np.concatenate([s - rng.integers(1, 30000, 2 + k // 5), s + rng.integers(0, 75000, rng.poisson(5))]))
    units = [np.sort(np.concatenate(stable)), np.sort(np.concatenate(drifting)), np.zeros(0, np.int64)]
    res = drift_check(units, onsets[::-1], tastes[::-1], FS)  # order of the input does not matter
    # independent counts by a loop, then scipy's one-way ANOVA is not the same model (taste), so use
    # the balanced formula: 20 trials per taste, groups of 15 trials = 5 of each taste
    g = np.arange(n_trials) * 4 // n_trials
    for u in range(2):
        for label, lo, hi in (("baseline", -30000, 0), ("response", 0, 75000)):
            y = np.array([sum(1 for t in units[u] if s + lo <= t < s + hi) for s in onsets], float)
            grand = y.mean()
            ss_g = sum(15 * (y[g == k].mean() - grand) ** 2 for k in range(4))
            ss_t = sum(20 * (y[tastes == x].mean() - grand) ** 2 for x in "ABC")
            ss_res = ((y - grand) ** 2).sum() - ss_g - ss_t
            f_ref = (ss_g / 3) / (ss_res / (n_trials - 6))
            assert res[u][label]["F"] == pytest.approx(f_ref, rel=1e-9)
            assert res[u][label]["p"] == pytest.approx(stats.f.sf(f_ref, 3, n_trials - 6), rel=1e-7)
            ms = (hi - lo) / 30  # window length in ms at 30 kHz
            rates = [y[g == k].mean() * 1000 / ms for k in range(4)]
            np.testing.assert_allclose(res[u][label]["group_rate_hz"], rates, rtol=1e-12)
    assert res[1]["flagged"] and res[1]["baseline"]["p"] < 1e-6
    assert np.isnan(res[2]["baseline"]["p"]) and not res[2]["flagged"]  # no spikes: nothing to test
    # trials whose window leaves the recording are not used
    assert drift_check(units, np.array([1000, 60000]), ["A", "A"], FS, n_samples=60000 + 75000)[0]["n_trials"] == 1


def test_unit_qa_directory(tmp_path):
    rng = np.random.default_rng(24)
    d = make_dir(tmp_path)
    n = int(120 * FS)
    a = np.sort(rng.choice(n, 4000, replace=False))
    dup = np.sort(a[::3] + 15)  # a copy of a third of unit 0, half a ms late
    units = [a, dup, np.sort(rng.choice(n, 1500, replace=False)), np.zeros(0, np.int64)]
    write_store(d / f"{d.name}.h5", units, electrodes=[3, 3, 7, 9])
    on = np.arange(5 * 30000, n - 6 * 30000, 8 * 30000)
    late = np.append(on[::2], n - 30000)  # 1 s before the end: its 2.5 s response window is cut
    rec = fake_recording({"dig_in_04": (late, late + 10), "dig_in_01": (on[1::2], on[1::2] + 10)}, n)
    make_arrays(d, SortParams(), recording=rec)
    ticks = []
    res = unit_qa(d, SortParams(), progress=lambda i, n: ticks.append((i, n)))  # length known only via the trial table
    assert ticks == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert [v["unit_a"] + "/" + v["unit_b"] for v in res.violations] == ["unit000/unit001"]
    assert res.violations[0]["pct_b_in_a"] == 100.0
    doc = json.loads((d / "QA_output" / "unit_qa.json").read_text())
    ref = similarity_reference(units, 30)
    got = np.array([[np.nan if x is None else x for x in row] for row in doc["similarity"]["matrix"]])
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_allclose(got[~np.isnan(got)], ref[~np.isnan(ref)], rtol=0, atol=0)
    assert [u["electrode"] for u in doc["units"]] == [3, 3, 7, 9]
    assert doc["units"][0]["drift"]["n_trials"] == len(on)
    assert doc["units"][3]["drift"]["baseline"]["p"] is None
    import tables

    with tables.open_file(str(d / f"{d.name}.h5")) as h5:
        stored = h5.root.unit_distances.read()
        assert list(h5.root.unit_distances.attrs.units) == ["unit000", "unit001", "unit002", "unit003"]
    np.testing.assert_array_equal(np.nan_to_num(stored, nan=-1), np.nan_to_num(ref, nan=-1))
    txt = (d / "QA_output" / "unit_similarity_violations.txt").read_text()
    assert "unit000\tunit001" in txt
    assert len(res.pictures) == 4 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in res.pictures)
    assert sorted(p.name for p in (d / "blechrs_plots" / "qa").iterdir()) == [f"unit{i:03d}.png" for i in range(4)]

    s = str(res)
    assert "unit001" in s and "similar" in s
    assert not [p for p in (d / "QA_output").rglob(".*")]

    # without a trial table: similarity only, drift skipped with a warning
    (d / "trial_info_frame.csv").unlink()
    res = unit_qa(d, SortParams(), pictures=False)
    assert any("drift check skipped" in w for w in res.warnings) and len(res.violations) == 1
    assert res.units[0]["drift"] is None and "-" in str(res)

    # a re-sort with fewer units: the pictures of the units that went are removed
    write_store(d / f"{d.name}.h5", units[:2])
    unit_qa(d, SortParams())
    assert sorted(p.name for p in (d / "blechrs_plots" / "qa").iterdir()) == ["unit000.png", "unit001.png"]


def test_drift_flag_rate_on_stationary_units():
    """Stationary Poisson units: each window's p is uniform, and a unit is flagged when either p
    is below alpha / 2, so about alpha of them are flagged."""
    rng = np.random.default_rng(25)
    n = int(1200 * FS)
    onsets = np.sort(rng.choice(np.arange(300000, n - 300000, 300000), 80, replace=False))
    tastes = rng.permutation(np.repeat(list("ABCD"), 20))
    units = [np.sort(rng.choice(n, int(r * 1200), replace=False)) for r in rng.uniform(2, 20, 200)]
    res = drift_check(units, onsets, tastes, FS)
    p = np.array([[r["baseline"]["p"], r["response"]["p"]] for r in res])
    flagged = np.array([r["flagged"] for r in res])
    np.testing.assert_array_equal(flagged, p.min(axis=1) < 0.025)
    assert 0.02 <= (p < 0.05).mean() <= 0.09  # each test at its nominal level
    assert 0.01 <= flagged.mean() <= 0.09


def test_outputs_are_deterministic(tmp_path):
    rng = np.random.default_rng(26)
    d = make_dir(tmp_path)
    n = int(100 * FS)
    write_store(d / f"{d.name}.h5", [np.sort(rng.choice(n, 800, replace=False)) for _ in range(3)])
    on = np.arange(5 * 30000, n - 6 * 30000, 9 * 30000)
    rec = fake_recording({"dig_in_02": (on[1::2], on[1::2] + 9), "dig_in_00": (on[::2], on[::2] + 9)}, n)
    import tables

    outs = []
    for _ in range(2):
        make_arrays(d, SortParams(), recording=rec)
        unit_qa(d, SortParams())
        with tables.open_file(str(d / f"{d.name}.h5")) as h5:
            arrays = [h5.get_node(f"/spike_trains/{k}/spike_array").read() for k in ("dig_in_00", "dig_in_02")]
        outs.append(((d / "trial_info_frame.csv").read_bytes(), (d / "QA_output" / "unit_qa.json").read_bytes(),
                     (d / "QA_output" / "unit_similarity_violations.txt").read_bytes(),
                     [(d / "blechrs_plots" / "qa" / f"unit{i:03d}.png").read_bytes() for i in range(3)], arrays))
    a, b = outs
    assert a[:4] == b[:4]
    for x, y in zip(a[4], b[4]):
        np.testing.assert_array_equal(x, y)


def test_summaries_fit_80_columns(tmp_path):
    from rich.console import Console

    rng = np.random.default_rng(27)
    d = make_dir(tmp_path)
    n = int(60 * FS)
    a = np.sort(rng.choice(n, 900, replace=False))
    write_store(d / f"{d.name}.h5", [a, np.sort(a[::2] + 3), np.sort(rng.choice(n, 500, replace=False))],
                electrodes=[12, 40, 127])
    on = np.arange(5 * 30000, n - 6 * 30000, 7 * 30000)
    rec = fake_recording({"dig_in_11": (on, on + 9), "dig_in_03": (on + 90000, on + 90009)}, n)
    info = {"taste_params": {"dig_in_names": ["dig_in_11", "dig_in_03"], "tastes": ["0.1M NaCl", "QHCl"]}}
    for result in (make_arrays(d, SortParams(), recording=rec, info=info), unit_qa(d, SortParams(), pictures=False)):
        console = Console(width=80, record=True, file=open(os.devnull, "w"))
        console.print(result)
        text = console.export_text()
        assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
        assert all(len(line) <= 80 for line in str(result).splitlines() if not line.startswith(("warning", "written")))


def test_unit_pictures_in_worker_processes_equal_one_process(tmp_path):
    """Pictures drawn by 2 worker processes are byte-identical to those drawn in one."""
    from blechrs.pipeline import unit_qa as qa

    rng = np.random.default_rng(31)
    n = int(30 * FS)
    units = [np.sort(rng.choice(n, 200, replace=False)) for _ in range(qa.PARALLEL_PICTURES)]
    out = {}
    for jobs in (1, 2):
        (tmp_path / f"j{jobs}").mkdir()
        d = make_dir(tmp_path / f"j{jobs}")
        write_store(d / f"{d.name}.h5", units, electrodes=list(range(len(units))))
        res = unit_qa(d, SortParams(), jobs=jobs)
        assert len(res.pictures) == len(units)
        out[jobs] = {p.name: p.read_bytes() for p in res.pictures}
    assert out[1] == out[2]


def test_drift_check_has_no_false_alarms_when_trial_windows_overlap():
    """Trials 1-2 s apart (the simulator's default pulses) with 3.5 s windows: overlapping windows
    share spikes, so counts of consecutive trials are not independent and the F test flagged
    stationary units far above alpha (43 of 78). Only trials whose windows do not overlap an
    earlier kept one's are used; on stationary Poisson units the flag rate is back at ~alpha."""
    rng = np.random.default_rng(27)
    n = int(1200 * FS)
    gaps = rng.uniform(1.0, 2.0, 700) * FS
    onsets = (5 * FS + np.cumsum(gaps)).astype(np.int64)
    onsets = onsets[onsets < n - 5 * FS]
    tastes = rng.choice(list("ABCD"), len(onsets))
    units = [np.sort(rng.choice(n, int(r * 1200), replace=False)) for r in rng.uniform(2, 20, 200)]
    res = drift_check(units, onsets, tastes, FS)
    pre, post = 1.0 * FS, 2.5 * FS
    # the trials used, chosen here by a loop: each starts after the last used one's window ended
    used, free = [], -np.inf
    for t in onsets:
        if t - pre >= free:
            used.append(t)
            free = t + post
    assert res[0]["n_trials"] == len(used) and res[0]["n_overlapping"] == len(onsets) - len(used)
    assert np.all(np.diff(used) >= pre + post) and len(used) >= 200
    flagged = np.mean([r["flagged"] for r in res])
    assert flagged <= 0.09, flagged
    # the counts are those of the used trials (the F statistic of one unit against a loop)
    used = np.array(used)
    g = np.arange(len(used)) * 4 // len(used)
    keep_taste = tastes[np.searchsorted(onsets, used)]
    y = np.array([np.sum((units[0] >= s - pre) & (units[0] < s)) for s in used], float)
    f, p, _, _ = group_f_test(y, g, keep_taste)
    assert res[0]["baseline"]["F"] == pytest.approx(f, rel=1e-9)
    # a unit whose rate doubles halfway is still found
    half = n // 2
    drifting = np.sort(np.concatenate([units[0], rng.choice(np.arange(half, n), len(units[0]) // 2, replace=False)]))
    assert drift_check([drifting], onsets, tastes, FS)[0]["flagged"]


def test_drift_check_does_not_test_with_fewer_trials_than_it_needs():
    """6 usable trials of 2 tastes in 4 groups leave 1 residual degree of freedom for a model of
    5 parameters: small integer counts are then often fitted exactly (F infinite, p 0) and the
    30 s demo flagged 5 of 14 stationary units. Below as many residual degrees of freedom as
    parameters nothing is tested or flagged; from there on the F test runs (checked against a
    least-squares fit written here)."""
    rng = np.random.default_rng(31)
    units = [np.sort(rng.choice(int(200 * FS), int(r * 200), replace=False)) for r in rng.uniform(1, 10, 100)]
    for n_trials, tested in ((6, False), (9, False), (10, True)):
        onsets = (np.arange(n_trials) * 15 * FS + 5 * FS).astype(np.int64)
        tastes = np.array(["A", "B"])[np.arange(n_trials) % 2]
        res = drift_check(units, onsets, tastes, FS)
        # parameters: 2 tastes + 4 groups - 1 = 5; residual df = n_trials - 5
        assert all(r["too_few_trials"] == (not tested) for r in res)
        if not tested:
            assert not any(r["flagged"] for r in res)
            assert all(np.isnan(r[k]["p"]) for r in res for k in ("baseline", "response"))
            continue
        g = np.arange(n_trials) * 4 // n_trials
        y = np.array([np.sum((units[0] >= s - FS) & (units[0] < s)) for s in onsets], float)
        x_red = np.stack([tastes == "A", tastes == "B"], axis=1).astype(float)
        x_full = np.hstack([x_red, np.eye(4)[g][:, 1:]])
        rss = [float(np.sum((y - x @ np.linalg.lstsq(x, y, rcond=None)[0]) ** 2)) for x in (x_red, x_full)]
        if rss[1] > 1e-9:
            f_ref = ((rss[0] - rss[1]) / 3) / (rss[1] / (n_trials - 5))
            assert res[0]["baseline"]["F"] == pytest.approx(f_ref, rel=1e-8)
