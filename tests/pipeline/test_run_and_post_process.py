"""The pipeline after extraction (features -> clustering -> auto-sort -> store -> sort file),
resume and --force, determinism, quiet electrodes and the CLI's error lines.

Extraction is done by an independent numpy/scipy extractor (tests/sort_reference.py) so these
tests exercise the stages the sort module owns; test_sort_end_to_end.py runs the real engine.
"""

from __future__ import annotations

import csv
import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tables

from blechrs.io import paths, unit_store, work_files
from blechrs.cli.main import main as cli_main
from blechrs.io.params_file import load_params, save_params
from blechrs.params import SortParams
from blechrs import pipeline
from blechrs.errors import PipelineError
from blechrs.model import ElectrodeWork
from support.sorting_reference import init_folder, simulated_folder


@pytest.fixture(scope="module")
def sim_folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("sim") / "rec"
    d.mkdir()
    gt = simulated_folder(d, seed=3, n_channels=4, duration_s=8.0)
    init_folder(d, max_clusters=4, num_restarts=2, cluster_count_threshold=10, max_autosort_clusters=6)
    return d, gt


@pytest.fixture()
def rec(sim_folder, tmp_path):
    d = tmp_path / "rec"
    shutil.copytree(sim_folder[0], d)
    return d, sim_folder[1]


def _h5_content(path):
    out = {}
    with tables.open_file(str(path)) as f:
        for node in f.walk_nodes("/"):
            if isinstance(node, tables.Table):
                out[node._v_pathname] = node.read().tobytes()
            elif isinstance(node, tables.Array):
                out[node._v_pathname] = node.read().tobytes()
    return out


def _work_labels(d):
    out = {}
    for p in sorted((d / "blechrs_work").glob("electrode*.npz")):
        work = work_files.load_electrode(p)
        arrays, _ = work_files.to_file_contents(work)
        out[p.name] = {k: v.tobytes() for k, v in arrays.items()}
    return out


def test_run_resume_force_and_determinism(rec, reference_engine):
    d, gt = rec
    report = pipeline.run(d, jobs=1, plots=False)
    assert report.skipped == []
    assert [e["electrode"] for e in report.electrodes] == [0, 1, 2, 3]
    h5 = d / "rec.h5"
    first = _h5_content(h5)
    labels = _work_labels(d)
    units = unit_store.read_units(h5)
    assert len(units) == len(report.units) > 0
    # Every stored unit is exactly the events its work file says auto-sort chose.
    for u in units:
        work = work_files.load_electrode(paths.electrode_path(d, u.electrode))
        assert set(u.times.tolist()) <= set(work.times.tolist())
    # Resume: nothing redone, same units.
    again = pipeline.run(d, jobs=1, plots=False)
    assert again.skipped == [0, 1, 2, 3]
    assert _h5_content(h5) == first
    # --force redoes everything, with 2 worker processes: identical output.
    forced = pipeline.run(d, jobs=2, plots=False, force=True)
    assert forced.skipped == []
    assert _work_labels(d) == labels
    assert _h5_content(h5) == first
    # Changing a clustering parameter redoes clustering only for the affected stage.
    params = load_params(d / "rec.params")
    params.cluster.max_clusters = 3
    save_params(d / "rec.params", params)
    changed = pipeline.run(d, jobs=1, plots=False)
    assert changed.skipped == [0, 1, 2, 3]  # extraction reused
    assert 4 not in work_files.load_electrode(paths.electrode_path(d, 1)).solutions


def test_autosort_sort_file_round_trip(rec, reference_engine):
    d, _ = rec
    pipeline.run(d, jobs=1, plots=False)
    auto = unit_store.read_units(d / "rec.h5")
    sort_csv = d / "rec_autosort.csv"
    assert sort_csv.exists()
    with open(sort_csv) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(auto)
    # Applying auto-sort's own sort file gives the same units.
    copy = d / "mine.csv"
    shutil.copy(sort_csv, copy)
    before = copy.read_bytes()
    report, problems, applied = pipeline.post_process(d, copy)
    assert problems == []
    assert copy.read_bytes() == before
    assert applied == d / "mine_applied.csv"
    back = unit_store.read_units(d / "rec.h5")
    assert [(u.electrode, u.times.tolist(), u.single_unit, u.regular_spiking, u.fast_spiking) for u in back] == \
        [(u.electrode, u.times.tolist(), u.single_unit, u.regular_spiking, u.fast_spiking) for u in auto]
    # A person's units are not replaced by a later run, and an edited auto-sort file is kept.
    sort_csv.write_text(sort_csv.read_text() + "99,1,2,0,,,,mine\n")
    edited = sort_csv.read_bytes()
    rep = pipeline.run(d, jobs=1, plots=False)
    assert any("sort file" in n for n in rep.notes)
    assert sort_csv.read_bytes() == edited
    assert [u.source for u in unit_store.read_units(d / "rec.h5")][0].startswith("sort file")


def test_post_process_cli_bad_rows_save_nothing(rec, reference_engine, capsys):
    # 1 good row, 2 bad ones: nothing is saved (the store keeps all its units), the applied report
    # in DIR says why for each row, and --check says the same without writing anything.
    d, _ = rec
    pipeline.run(d, jobs=1, plots=False)
    before = _h5_content(d / "rec.h5")
    n_before = len(unit_store.read_units(d / "rec.h5"))
    sort_csv = d.parent / "person.csv"
    sort_csv.write_text("Unit,Chan,Solution,Cluster,Split,single_unit,Type,Comments\n"
                        "0,2,3,0+1,,x,r,merge\n"
                        "1,9,3,0,,,,unknown electrode\n"
                        "2,2,3,x7,,,,bad cluster\n")
    sort_bytes = sort_csv.read_bytes()
    assert cli_main(["post-process", str(d), "--sort-file", str(sort_csv), "--check", "-q"]) == 1
    assert not (d / "person_applied.csv").exists() and _h5_content(d / "rec.h5") == before
    capsys.readouterr()
    code = cli_main(["post-process", str(d), "--sort-file", str(sort_csv), "--no-plots", "-q"])
    err = capsys.readouterr().err
    assert code == 1
    assert "row 3: electrode 9 has no sorting results" in err
    assert "row 4: Cluster 'x7'" in err
    assert "nothing saved" in err and "Traceback" not in err
    assert sort_csv.read_bytes() == sort_bytes
    assert _h5_content(d / "rec.h5") == before and len(unit_store.read_units(d / "rec.h5")) == n_before
    assert not (d.parent / "person_applied.csv").exists()  # the report lives in DIR, not beside the sort file
    with open(d / "person_applied.csv") as fh:
        assert [r["status"] for r in csv.DictReader(fh)] == ["not saved", "rejected", "rejected"]


def test_post_process_check_lists_units_and_shared_spikes(rec, reference_engine, capsys):
    d, _ = rec
    pipeline.run(d, jobs=1, plots=False)
    before = _h5_content(d / "rec.h5")
    work = work_files.load_electrode(paths.electrode_path(d, 2))
    sort_csv = d / "twice.csv"
    # The same cluster saved twice (once merged with another): the two units share its spikes.
    sort_csv.write_text("Unit,Chan,Solution,Cluster,Split,single_unit,Type,Comments\n"
                        "0,2,3,0,,x,r,\n0,2,3,0+1,,,,\n")
    code = cli_main(["post-process", str(d), "--sort-file", str(sort_csv), "--check", "-q"])
    out = capsys.readouterr()
    assert code == 0 and "would be saved" in out.err and "nothing written" in out.err
    assert "unit000 (electrode 02) and unit001 (electrode 02) share 100 % of their spikes" in out.err
    assert _h5_content(d / "rec.h5") == before and not (d / "twice_applied.csv").exists()
    # Applied for real: both units saved, exactly the clusters' events, and the pair still reported.
    code = cli_main(["post-process", str(d), "--sort-file", str(sort_csv), "--no-plots", "-q"])
    assert code == 0 and "share 100 %" in capsys.readouterr().err
    units = unit_store.read_units(d / "rec.h5")
    np.testing.assert_array_equal(units[0].times, work.times[work.labels_of(3) == 0])
    np.testing.assert_array_equal(units[1].times, work.times[np.isin(work.labels_of(3), [0, 1])])


def _quiet(n, rng, polarity=-1, amplitude=0.0):
    w = rng.normal(0, 10, (n, 75)).astype(np.float32)
    w[:, 30] += polarity * amplitude
    return ElectrodeWork(electrode=5, times=np.sort(rng.choice(300000, n, replace=False)).astype(np.int64),
                         waveforms=w, threshold=50.0, mad_val=6.0, cutoff_sample=300000, n_samples=300000,
                         dead=False, stage="extracted")


@pytest.mark.parametrize("case", ["no events", "three events", "nine events", "dead", "one polarity", "pure noise"])
def test_quiet_electrodes_are_reported_not_crashed(case):
    rng = np.random.default_rng(0)
    params = SortParams().replace(cluster_count_threshold=10, max_clusters=4, num_restarts=1)
    data = {"no events": lambda: _quiet(0, rng), "three events": lambda: _quiet(3, rng),
            "nine events": lambda: _quiet(9, rng, amplitude=120.0),  # max_clusters 4 <= 9 < 10 a unit needs
            "dead": lambda: dataclasses.replace(_quiet(0, rng), dead=True),
            "one polarity": lambda: _quiet(400, rng, +1, 120.0),
            "pure noise": lambda: _quiet(400, rng)}[case]()
    out = pipeline.cluster_work(data, params)
    expected_status = {"no events": "no events", "three events": "3 events, fewer than max_clusters (4)",
                       "nine events": "9 events, fewer than a unit needs (cluster_count_threshold 10)",
                       "dead": "dead channel"}
    if case in expected_status:
        assert out.status == expected_status[case]
        assert out.solutions == {}
        assert out.units == []
    else:
        assert out.status == "ok"
        assert 4 in out.solutions
    assert out.features.shape[0] == len(data.times)


def test_cli_errors_are_one_line(tmp_path, capsys):
    code = cli_main(["run", str(tmp_path / "missing"), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err == [f"blechrs: error: {tmp_path / 'missing'}: not a directory"]
    (tmp_path / "empty").mkdir()
    code = cli_main(["cluster", str(tmp_path / "empty"), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "no parameter file" in err[0] and "blechrs init" in err[0]
    with pytest.raises(PipelineError):
        cli_main(["cluster", str(tmp_path / "empty"), "-q", "--debug"])
    with pytest.raises(PipelineError):  # options also work before the command
        cli_main(["--debug", "cluster", str(tmp_path / "empty")])
    # The installed entry point: exit code 1, no traceback.
    r = subprocess.run([sys.executable, "-m", "blechrs.cli", "post-process", str(tmp_path / "empty"),
                        "--sort-file", str(tmp_path / "nope.csv")], capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [f"blechrs: error: {tmp_path / 'nope.csv'}: sort file not found"]


def test_pictures_and_index(rec, reference_engine):
    import matplotlib.image as mpimg

    d, _ = rec
    pipeline.run(d, jobs=1, plots=False)
    assert not (d / "blechrs_plots").exists()  # --no-plots makes none
    (d / "blechrs_plots" / "units").mkdir(parents=True)
    (d / "blechrs_plots" / "units" / "unit999.png").write_bytes(b"stale")
    from blechrs.pipeline import pictures as plots

    index = plots.plot_recording(d, pipeline.load_params(d), jobs=2)
    assert not (d / "blechrs_plots" / "units" / "unit999.png").exists()
    page = index.read_text()
    with tables.open_file(str(d / "rec.h5")) as f:
        desc = f.root.unit_descriptor.read()
    for row in desc:
        name = f"unit{row['unit_number']:03d}"
        png = d / "blechrs_plots" / "units" / f"{name}.png"
        img = mpimg.imread(png)
        assert img.ndim == 3 and img.shape[0] > 50 and img.std() > 0
        # the table row links to the unit's picture on the page, which links to the file
        e = row["electrode_number"]
        assert f"#{name}'>{name}</a></td><td><a href='#electrode{e:02d}'>{e}</a></td><td>{row['waveform_count']}</td>" in page
        assert f"<div class='unit' id='{name}'>" in page and f"src='units/{name}.png'" in page
    for e in range(4):
        for k in work_files.load_electrode(paths.electrode_path(d, e)).solutions:
            png = d / "blechrs_plots" / f"electrode{e:02d}" / f"solution{k:02d}.png"
            assert mpimg.imread(png).shape[0] > 50
            assert f"electrode{e:02d}/solution{k:02d}.png" in page
    # what auto-sort did not keep is one click from the solution pictures
    assert "did not keep, and why: <a href='../QA_output/autosort_rejected.csv'>" in page
    assert (index.parent / "../QA_output/autosort_rejected.csv").exists()


def test_cli_run_copy_raw_then_arrays(rec, reference_engine, capsys):
    from blechrs.io import open_recording

    d, _ = rec
    assert cli_main(["run", str(d), "--no-plots", "-q", "-j", "1", "--copy-raw"]) == 0
    raw = open_recording(d).read([2], 0, None)[0]
    with tables.open_file(str(d / "rec.h5")) as f:
        np.testing.assert_array_equal(f.root.raw.electrode02[:], raw)
        n_units = f.root.unit_descriptor.nrows
    assert n_units > 0
    assert cli_main(["arrays", str(d)]) == 0
    with tables.open_file(str(d / "rec.h5")) as f:
        arrays = [n for n in f.walk_nodes("/spike_trains", classname="Array") if n.name == "spike_array"]
        assert arrays and all(a.shape[1] == n_units for a in arrays)
    # Re-sorting keeps the raw channels, and the spike arrays are made again for the new units.
    assert cli_main(["autosort", str(d), "-q", "-j", "1", "--force", "--no-plots"]) == 0
    with tables.open_file(str(d / "rec.h5")) as f:
        arrays = [n for n in f.walk_nodes("/spike_trains", classname="Array") if n.name == "spike_array"]
        assert "/raw/electrode02" in f and arrays
        assert all(a.shape[1] == f.root.unit_descriptor.nrows for a in arrays)


def test_sort_file_without_a_good_row_leaves_the_store(rec, reference_engine, capsys):
    d, _ = rec
    pipeline.run(d, jobs=1, plots=False)
    before = _h5_content(d / "rec.h5")
    bad = d / "bad.csv"
    bad.write_text("Unit,Chan,Solution,Cluster,Split,single_unit,Type,Comments\n1,2,3,banana,,,,\n")
    assert cli_main(["post-process", str(d), "--sort-file", str(bad), "-q"]) == 1
    err = capsys.readouterr().err
    assert "row 2: Cluster 'banana'" in err and "left as it was" in err
    assert _h5_content(d / "rec.h5") == before
    assert not (d / "blechrs_plots").exists()  # nothing changed, so nothing is drawn again


def test_changed_autosort_parameter_redoes_only_autosort(rec, reference_engine):
    d, _ = rec
    pipeline.run(d, jobs=1, plots=False)
    path = paths.electrode_path(d, 2)
    before = work_files.load_electrode(path)
    params = load_params(d / "rec.params")
    params.autosort.min_snr = 1000.0  # no unit can pass
    save_params(d / "rec.params", params)
    report = pipeline.run(d, jobs=1, plots=False)
    after = work_files.load_electrode(path)
    assert after.fp_cluster == before.fp_cluster and after.fp_autosort != before.fp_autosort
    # the clustering solutions stay; the template solution is auto-sort's own (none: no units)
    clustering = [k for k, sol in before.solutions.items() if sol.kind != "templates"]
    assert clustering
    for k in clustering:
        np.testing.assert_array_equal(after.labels_of(k), before.labels_of(k))
    assert "templates" not in [sol.kind for sol in after.solutions.values()]
    assert after.units == [] and report.units == []
    assert unit_store.read_units(d / "rec.h5") == []


def test_run_draws_solution_pictures_once(rec, reference_engine):
    d, _ = rec
    pipeline.run(d, jobs=1, plots=True)
    pngs = sorted((d / "blechrs_plots").glob("electrode*/solution*.png"))
    expected = sum(len(work_files.load_electrode(paths.electrode_path(d, e)).solutions) for e in range(4))
    assert len(pngs) == expected > 0
    units = unit_store.read_units(d / "rec.h5", waveforms=False)
    assert sorted(p.stem for p in (d / "blechrs_plots" / "units").glob("*.png")) == [u.name for u in units]
    stamps = {p: p.stat().st_mtime_ns for p in pngs}
    pipeline.run(d, jobs=1, plots=True)  # resumed: solution pictures are current, not redrawn
    assert {p: p.stat().st_mtime_ns for p in pngs} == stamps
    params = load_params(d / "rec.params")
    params.cluster.max_clusters = 3
    save_params(d / "rec.params", params)
    pipeline.run(d, jobs=1, plots=True)  # re-clustered: redrawn, old solutions removed
    assert not list((d / "blechrs_plots").glob("electrode*/solution04.png"))  # solutions are now 2, 3, 6
    assert all(p.stat().st_mtime_ns != stamps[p] for p in pngs if p.exists())


def _rejected_rows(d):
    with open(paths.autosort_rejected_path(d), newline="") as fh:
        return list(csv.DictReader(fh))


def test_autosort_says_what_it_did_not_keep_and_why(rec, reference_engine):
    d, _ = rec
    pipeline.run(d, jobs=1, plots=False)
    stored = {(u.electrode, u.solution, "+".join(map(str, u.clusters))) for u in unit_store.read_units(d / "rec.h5")}
    assert stored
    assert not stored & {(int(r["electrode"]), int(r["solution"]), r["clusters"]) for r in _rejected_rows(d)}
    params = load_params(d / "rec.params")
    params.autosort.min_snr = 1000.0  # no unit can pass
    save_params(d / "rec.params", params)
    pipeline.run(d, jobs=1, plots=False)
    rows = _rejected_rows(d)
    assert unit_store.read_units(d / "rec.h5") == [] and rows
    snr_rows = 0
    for r in rows:
        work = work_files.load_electrode(paths.electrode_path(d, int(r["electrode"])))
        member = np.isin(work.labels_of(int(r["solution"])), [int(c) for c in r["clusters"].split("+")])
        assert member.sum() == int(r["events"])  # the events it names are that solution's clusters
        if "min_snr" in r["reason"]:
            snr = np.abs(work.waveforms[member]).max(axis=1).mean() / work.mad_val  # blech_clust's SNR
            assert f"SNR {snr:.2f}, below min_snr (1000)" in r["reason"] and r["kind"] == "low SNR"
            snr_rows += 1
        else:
            assert (r["kind"], "echo" in r["reason"]) == ("echo", True) or (
                r["kind"] == "too few events" and int(r["events"]) < 10), r
    assert snr_rows >= 1
