"""Unit store layout (read back with raw PyTables), atomic writes and work files."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tables

from blechrs.model import ElectrodeWork, Solution, Unit
from blechrs.io import paths, unit_store, work_files


def _units(rng, spec=((5, 40), (2, 25), (5, 10), (0, 33))):
    units = []
    for k, (electrode, n) in enumerate(spec):
        units.append(Unit(
            electrode=electrode, times=np.sort(rng.choice(10**6, n, replace=False)).astype(np.int64),
            waveforms=rng.normal(0, 20, (n, 75)).astype(np.float32), single_unit=k % 2 == 0,
            regular_spiking=k == 0, fast_spiking=k == 2, snr=3.5 + k,
            metrics={"firing_rate": 1.0 + k, "isi_violations_2ms": 0.1 * k}, solution=4, label=str(k),
            source="autosort"))
    return units


def test_layout_matches_blech_clust(tmp_path):
    rng = np.random.default_rng(0)
    units = _units(rng)
    path = tmp_path / "rec.h5"
    names = unit_store.write_units(path, units, attrs={"units_from": "autosort"})
    assert names == ["unit000", "unit001", "unit002", "unit003"]
    # Numbered in electrode order, stable within an electrode: electrodes 0, 2, 5, 5.
    expected = [units[3], units[1], units[0], units[2]]
    with tables.open_file(str(path)) as f:
        assert sorted(f.root.sorted_units._v_children) == names
        desc = f.root.unit_descriptor
        assert desc.colnames[0] == "unit_number"
        assert set(desc.colnames) == {"unit_number", "electrode_number", "single_unit", "regular_spiking",
                                      "fast_spiking", "waveform_count", "hash", "snr"}
        assert f.root._v_attrs.units_from == "autosort"
        for i, (name, u) in enumerate(zip(names, expected)):
            g = f.get_node(f"/sorted_units/{name}")
            assert g.times.dtype == np.int64
            np.testing.assert_array_equal(g.times[:], u.times)
            assert g.waveforms.shape == (len(u.times), 75)
            np.testing.assert_allclose(g.waveforms[:], u.waveforms)
            meta = g.unit_metadata
            assert meta.nrows == 1
            assert meta.coltypes["electrode_number"] == "int32" and meta.coltypes["snr"] == "float32"
            row = meta[0]
            h = hashlib.sha256(f"{u.electrode}_{len(u.times)}".encode()).hexdigest()[:10]
            assert row["hash"].decode() == h
            assert (row["electrode_number"], row["single_unit"], row["regular_spiking"], row["fast_spiking"],
                    row["waveform_count"]) == (u.electrode, int(u.single_unit), int(u.regular_spiking),
                                               int(u.fast_spiking), len(u.times))
            assert row["snr"] == pytest.approx(u.snr, rel=1e-6)
            d = desc[i]
            assert d["unit_number"] == i and d["electrode_number"] == u.electrode and d["hash"].decode() == h
            q = g.quality[0]
            assert q["firing_rate"] == pytest.approx(u.metrics["firing_rate"])
            assert np.isnan(q["l_ratio"])
            assert g._v_attrs.source == "autosort"
    back = unit_store.read_units(path)
    assert [b.electrode for b in back] == [u.electrode for u in expected]


def test_rewrite_keeps_other_nodes_drops_stale_ones(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "rec.h5"
    unit_store.write_units(path, _units(rng))
    with tables.open_file(str(path), "r+") as f:
        f.create_group("/", "raw_emg")
        f.create_array("/raw_emg", "emg00", np.arange(10))
        f.create_group("/", "spike_trains")
    unit_store.write_units(path, _units(rng, ((1, 5),)))
    with tables.open_file(str(path)) as f:
        np.testing.assert_array_equal(f.root.raw_emg.emg00[:], np.arange(10))
        assert "/spike_trains" not in f
        assert list(f.root.sorted_units._v_children) == ["unit000"]
        assert f.root.unit_descriptor.nrows == 1


def test_exception_mid_write_leaves_old_file(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    path = tmp_path / "rec.h5"
    old = _units(rng)
    unit_store.write_units(path, old)
    before = path.read_bytes()
    calls = {"n": 0}
    real = tables.File.create_array

    def failing(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real(self, *a, **k)

    monkeypatch.setattr(tables.File, "create_array", failing)
    with pytest.raises(OSError, match="disk full"):
        unit_store.write_units(path, _units(rng))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["rec.h5"]  # no temp file left behind


def test_killed_mid_write_leaves_old_file_readable(tmp_path):
    """A process killed in the middle of writing (os._exit: no cleanup at all)."""
    rng = np.random.default_rng(3)
    path = tmp_path / "rec.h5"
    old = _units(rng)
    unit_store.write_units(path, old)
    script = textwrap.dedent(f"""
        import os, numpy as np, tables
        from blechrs.io import paths, unit_store, work_files
        real = tables.File.create_array
        n = [0]
        def dying(self, *a, **k):
            n[0] += 1
            if n[0] == 4:
                self.flush()
                os._exit(9)
            return real(self, *a, **k)
        tables.File.create_array = dying
        from blechrs.model import ElectrodeWork, Solution, Unit
        units = [Unit(electrode=1, times=np.arange(50), waveforms=np.zeros((50, 75))) for _ in range(5)]
        unit_store.write_units({str(path)!r}, units)
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert r.returncode == 9, r.stderr.decode()
    back = unit_store.read_units(path)
    assert len(back) == len(old)
    assert sorted(len(b.times) for b in back) == sorted(len(u.times) for u in old)


def _work(n=5):
    unit = Unit(7, solution=2, clusters=(1,), indices=np.array([1, 3]), single_unit=True, regular_spiking=True,
                metrics={"snr": 4.5, "isi_violations_2ms": None}, reason="clean")
    return ElectrodeWork(
        7, times=np.arange(n, dtype=np.int64), times_subsample=np.arange(n, dtype=np.float64) + 0.25,
        polarity=np.full(n, -1, np.int8), waveforms=np.ones((n, 75), np.float32), noise=np.array([5.0, 6.0]),
        threshold=41.5, mad_val=3.0, cutoff_sample=900, n_edge_dropped=1, dead=False, n_samples=1000,
        n_events=n, sampling_rate=30000.0, fp_extract="e" * 16, stage="clustered",
        features=np.zeros((n, 3)), clustered=np.ones(n, bool),
        solutions={2: Solution(2, np.array([0, 1, 0, 1, -1]), "gmm"), 1: Solution(1, np.array([-1, 0, -1, 0, 0]), "templates")},
        status="ok", fp_cluster="c" * 16, units=[unit], fp_autosort="a" * 16)


def _old_file(path, arrays, meta):
    """A work file as blechrs wrote them before ElectrodeWork: arrays plus sorted JSON values."""
    with open(path, "wb") as fh:
        np.savez(fh, **arrays, __meta__=np.array(json.dumps(meta, sort_keys=True)))


def _contents(path):
    with np.load(path) as z:
        return {k: (z[k].dtype.str, z[k].shape, z[k].tobytes()) for k in z.files}


def test_work_file_round_trip_and_atomic(tmp_path, monkeypatch):
    path = paths.electrode_path(tmp_path, 7)
    assert path.name == "electrode07.npz"
    work = _work()
    work_files.save_electrode(path, work)
    back = work_files.load_electrode(path)
    for name in ("times", "times_subsample", "polarity", "waveforms", "noise", "features", "clustered"):
        np.testing.assert_array_equal(getattr(back, name), getattr(work, name))
        assert getattr(back, name).dtype == getattr(work, name).dtype
    assert list(back.solutions) == [2, 1] and back.solutions[1].kind == "templates"
    np.testing.assert_array_equal(back.labels_of(2), work.labels_of(2))
    assert back.labels_of(5) is None
    assert (back.threshold, back.dead, back.status, back.cutoff_sample, back.stage) == (41.5, False, "ok", 900, "clustered")
    assert [u.record() for u in back.units] == [u.record() for u in work.units]
    np.testing.assert_array_equal(back.units[0].indices, [1, 3])
    np.testing.assert_array_equal(back.auto_labels(), [-1, 0, -1, 0, -1])
    # only some arrays: the units without their events, the other arrays absent
    part = work_files.load_electrode(path, arrays=("times",))
    assert part.waveforms is None and part.solutions == {} and part.units[0].indices is None
    meta = work_files.read_meta(path)
    assert meta.times is None and (meta.fp_cluster, meta.n_events) == ("c" * 16, 5)
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("no space")

    monkeypatch.setattr(np.lib.format, "write_array", boom)
    with pytest.raises(OSError):
        work_files.save_electrode(path, ElectrodeWork(7, times=np.arange(3)))
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["electrode07.npz"]


def test_work_file_format_is_the_one_before_electrode_work(tmp_path):
    """The arrays, dtypes and JSON values of a work file are those blechrs wrote as a dict, so
    older work files load and save back to the same content."""
    work = _work()
    extracted = dict(electrode=7, threshold=41.5, mad_val=3.0, cutoff_sample=900, n_edge_dropped=1, dead=False,
                     n_samples=1000, n_events=5, sampling_rate=30000.0, stage="extracted", fp_extract="e" * 16)
    arrays = {k: getattr(work, k) for k in ("times", "times_subsample", "polarity", "waveforms", "noise")}
    _old_file(tmp_path / "old_e.npz", arrays, extracted)
    clustered = dict(extracted, stage="clustered", solution_kinds={"2": "gmm", "1": "templates"}, status="ok",
                     fp_cluster="c" * 16, fp_autosort="a" * 16, auto_units=[work.units[0].record()])
    arrays |= dict(features=work.features, clustered=work.clustered, labels_2=work.solutions[2].labels,
                   labels_1=work.solutions[1].labels, auto_labels=np.array([-1, 0, -1, 0, -1]))
    _old_file(tmp_path / "old_c.npz", arrays, clustered)
    for name in ("old_e", "old_c"):
        old = tmp_path / f"{name}.npz"
        work_files.save_electrode(tmp_path / f"{name}_again.npz", work_files.load_electrode(old))
        assert _contents(tmp_path / f"{name}_again.npz") == _contents(old)
    assert _contents(tmp_path / "old_c.npz") == _contents(_saved(tmp_path, work))
    # an early work file: no solution kinds, no event count, units without a reason
    early = {k: v for k, v in clustered.items() if k not in ("solution_kinds", "n_events")}
    early["auto_units"] = [{k: v for k, v in early["auto_units"][0].items() if k != "reason"}]
    _old_file(tmp_path / "early.npz", arrays, early)
    back = work_files.load_electrode(tmp_path / "early.npz")
    assert back.n_events == 5 and back.solutions[2].kind == "gmm" and back.units[0].reason == ""


def _saved(tmp_path, work):
    path = tmp_path / "new.npz"
    work_files.save_electrode(path, work)
    return path


def test_corrupt_work_file_is_one_clear_error(tmp_path):
    path = tmp_path / "electrode01.npz"
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="electrode01.npz: unreadable work file"):
        work_files.load_electrode(path)


def test_read_units_of_one_electrode(tmp_path):
    rng = np.random.default_rng(4)
    units = _units(rng)
    path = tmp_path / "rec.h5"
    unit_store.write_units(path, units)
    five = unit_store.read_units(path, electrode=5)
    assert [len(u.times) for u in five] == [40, 10]
    assert [u.name for u in five] == ["unit002", "unit003"]
    assert unit_store.read_units(path, electrode=7) == []
