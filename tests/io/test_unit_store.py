"""Unit store layout (read back with raw PyTables), atomic writes and work files."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tables

from blechrs.model import Unit
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
        from blechrs.model import Unit
        units = [Unit(electrode=1, times=np.arange(50), waveforms=np.zeros((50, 75))) for _ in range(5)]
        unit_store.write_units({str(path)!r}, units)
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert r.returncode == 9, r.stderr.decode()
    back = unit_store.read_units(path)
    assert len(back) == len(old)
    assert sorted(len(b.times) for b in back) == sorted(len(u.times) for u in old)


def test_work_file_round_trip_and_atomic(tmp_path, monkeypatch):
    path = paths.electrode_path(tmp_path, 7)
    assert path.name == "electrode07.npz"
    data = dict(times=np.arange(5, dtype=np.int64), waveforms=np.ones((5, 75), np.float32),
                threshold=np.float64(41.5), dead=False, solution_kinds={"2": "gmm"}, auto_units=[{"a": 1}],
                status="ok", labels_2=np.array([0, 1, 0, 1, -1]))
    work_files.save_electrode(path, data)
    back = work_files.load_electrode(path)
    np.testing.assert_array_equal(back["times"], data["times"])
    np.testing.assert_array_equal(back["labels_2"], data["labels_2"])
    assert back["threshold"] == 41.5 and back["dead"] is False and back["solution_kinds"] == {"2": "gmm"}
    assert back["auto_units"] == [{"a": 1}] and back["status"] == "ok"
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("no space")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError):
        work_files.save_electrode(path, dict(times=np.arange(3)))
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["electrode07.npz"]


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
