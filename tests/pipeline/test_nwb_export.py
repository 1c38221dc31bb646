"""``blechrs export nwb`` on a small simulated recording, checked with the other tools: pynwb
reads back exactly the units of the store (read by blechrs.io.unit_store and by plain h5py), the
electrodes of the layout CSV and the trials of the digital-input files (numpy); nwbinspector
(DANDI's configuration) finds nothing critical, no error and no best-practice violation; the
``--raw`` ElectricalSeries holds the .dat files' samples (numpy) with the conversion to volts;
a missing subject field is a one-line error; a file blechrs did not write is never replaced
without --force.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys

import h5py
import numpy as np
import pytest
from nwbinspector import Importance, inspect_nwbfile, load_config
from pynwb import NWBHDF5IO

from blechrs.cli.main import main as cli_main
from blechrs.errors import MissingExtraError, NwbError
from blechrs.io import paths, unit_store
from blechrs.pipeline.export_nwb import export_nwb
from support.sorting_reference import sorted_small_folder

FS = 30000.0
NAME = "rat7_taste_240301_140500"  # Intan's <prefix>_YYMMDD_HHMMSS: the session's start time


@pytest.fixture(scope="module")
def sorted_folder(tmp_path_factory):
    """A 4-channel, 8 s simulated recording with 2 taste inputs, sorted by auto-sort (scipy
    reference extraction), its .info given the subject and session fields and taste names, its
    layout a location column."""
    d = tmp_path_factory.mktemp("nwb") / NAME
    d.mkdir()
    sorted_small_folder(d)
    info = json.loads(paths.info_path(d).read_text())
    assert info["subject"]["subject_id"] == "rat7"  # init fills it from the name
    info["subject"].update(species="Rattus norvegicus", sex="F", age="P90D", description="Long-Evans rat 7")
    info["session"].update(description="taste responses in gustatory cortex (simulated)", experimenter=["Doe, Jane"],
                           institution="Brandeis University", keywords=["taste"],
                           experiment_description="passive taste deliveries")
    info["device"].update(description="RHD2132 headstage on an RHD USB interface board")
    info["taste_params"]["tastes"] = ["NaCl", "sucrose"]
    paths.info_path(d).write_text(json.dumps(info, indent=2))
    layout = paths.layout_path(d)
    rows = list(csv.DictReader(layout.open()))
    with layout.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=[*rows[0], "location"])
        w.writeheader()
        for r in rows:
            w.writerow({**r, "location": "GC" if int(r["electrode_ind"]) < 2 else ""})
    return d


@pytest.fixture()
def rec(sorted_folder, tmp_path):
    d = tmp_path / NAME
    shutil.copytree(sorted_folder, d)
    return d


def _store_by_h5py(path):
    """Every unit of the store, read with plain h5py (blech_clust's layout)."""
    out = []
    with h5py.File(path, "r") as f:
        for name in sorted(f["sorted_units"]):
            g = f["sorted_units"][name]
            meta = g["unit_metadata"][0]
            q = g["quality"][0]
            out.append(dict(name=name, times=g["times"][:], waveforms=g["waveforms"][:],
                            electrode=int(meta["electrode_number"]), single=bool(meta["single_unit"]),
                            rs=bool(meta["regular_spiking"]), fs=bool(meta["fast_spiking"]),
                            quality={k: float(q[k]) for k in q.dtype.names}))
    return out


def _din_onsets(path):
    """Onsets (first high sample) and offsets (first low sample after) of a board-DIN file."""
    x = np.fromfile(path, dtype=np.uint16).astype(np.int8) != 0
    edges = np.diff(np.concatenate([[0], x.astype(np.int8), [0]]))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def test_units_electrodes_and_trials_read_back_exactly(rec):
    done = export_nwb(rec)
    assert done.path == rec / f"{NAME}.nwb" and not done.raw
    stored = unit_store.read_units(paths.h5_path(rec))
    plain = _store_by_h5py(paths.h5_path(rec))
    assert len(stored) == len(plain) == done.units > 0
    layout = list(csv.DictReader(paths.layout_path(rec).open()))
    info = json.loads(paths.info_path(rec).read_text())
    with NWBHDF5IO(str(done.path), "r") as io:
        f = io.read()
        assert f.session_start_time.replace(tzinfo=None).isoformat() == "2024-03-01T14:05:00"
        assert (f.subject.subject_id, f.subject.species, f.subject.sex, f.subject.age) == ("rat7", "Rattus norvegicus", "F", "P90D")
        assert f.session_id == NAME and len(f.devices) == 1
        assert (f.session_description, list(f.experimenter), f.institution, list(f.keywords[:])) == (
            info["session"]["description"], ["Doe, Jane"], "Brandeis University", ["taste"])
        device = next(iter(f.devices.values()))
        made_by = device.model.manufacturer if getattr(device, "model", None) is not None else device.manufacturer
        assert (device.name, device.description, made_by) == (
            "Intan RHD2000", "RHD2132 headstage on an RHD USB interface board", "Intan Technologies")

        el = f.electrodes.to_dataframe()
        assert list(el["channel_name"]) == [f"{r['port']}-{r['electrode_num']}" for r in layout]
        assert list(el["electrode_number"]) == [int(r["electrode_ind"]) for r in layout]
        assert list(el["group_name"]) == [r["CAR_group"] for r in layout]
        assert list(el["location"]) == [r["location"] or "unknown" for r in layout]

        units = f.units
        assert len(units) == len(plain)
        assert units.waveform_rate == FS and units.waveform_unit == "volts"
        for i, (u, p) in enumerate(zip(stored, plain)):
            assert units["unit_name"][i] == u.name == p["name"]
            assert np.array_equal(units["spike_times"][i], p["times"] / FS)
            assert np.array_equal(np.round(units["spike_times"][i] * FS).astype(np.int64), u.times)
            row = units["electrodes"][i]
            assert list(row["electrode_number"]) == [u.electrode] == [p["electrode"]]
            assert units["electrode_group"][i].name == layout[p["electrode"]]["CAR_group"]
            w = p["waveforms"].astype(np.float64)
            assert np.array_equal(units["waveform_mean"][i], w.mean(axis=0) * 1e-6)
            assert np.array_equal(units["waveform_sd"][i], w.std(axis=0) * 1e-6)
            assert (units["single_unit"][i], units["regular_spiking"][i], units["fast_spiking"][i]) == (
                p["single"], p["rs"], p["fs"]) == (u.single_unit, u.regular_spiking, u.fast_spiking)
            for k, v in p["quality"].items():
                assert np.array_equal(units[k][i], v, equal_nan=True), k

        trials = f.trials.to_dataframe()
        taste_of = dict(zip(info["taste_params"]["dig_in_names"], info["taste_params"]["tastes"]))
        expect = []
        for din, taste in taste_of.items():
            on, off = _din_onsets(rec / f"board-DIN-{din[-2:]}.dat")
            expect += [(a / FS, b / FS, din, taste, k) for k, (a, b) in enumerate(zip(on, off))]
        expect.sort()
        got = list(zip(trials["start_time"], trials["stop_time"], trials["dig_in"], trials["taste"], trials["taste_trial"]))
        assert got == expect and done.trials == len(expect) == 20


def test_nwbinspector_finds_no_error(rec):
    path = export_nwb(rec).path
    messages = list(inspect_nwbfile(nwbfile_path=str(path), config=load_config("dandi")))
    bad = [m for m in messages if m.importance.value >= Importance.BEST_PRACTICE_VIOLATION.value]
    assert not bad, [f"{m.importance.name}: {m.check_function_name}: {m.message}" for m in bad]


def test_raw_channels_are_the_dat_files_samples(rec, capsys):
    out = rec / "shared" / "with_raw.nwb"
    assert cli_main(["export", "nwb", str(rec), "--raw", "--out", str(out), "-q"]) == 0
    assert "raw data" in capsys.readouterr().err
    with NWBHDF5IO(str(out), "r") as io:
        es = io.read().acquisition["ElectricalSeries"]
        assert es.rate == FS and es.data.dtype == np.int16 and es.data.shape == (240000, 4)
        assert es.conversion == pytest.approx(0.195e-6, rel=1e-12)
        assert list(es.electrodes.data[:]) == [0, 1, 2, 3]
        for c in range(4):
            samples = np.fromfile(rec / f"amp-A-00{c}.dat", dtype=np.int16)
            assert np.array_equal(es.data[123_456:130_000, c], samples[123_456:130_000])
            volts = es.data[:1000, c] * es.conversion
            assert np.allclose(volts, samples[:1000] * 0.195e-6, rtol=1e-12, atol=0)


def test_a_store_without_units_gives_a_file_without_units(rec):
    unit_store.write_units(paths.h5_path(rec), [])
    done = export_nwb(rec, raw=True)
    assert done.units == 0 and "no sorted units" in done.notes[0]
    with NWBHDF5IO(str(done.path), "r") as io:
        f = io.read()
        assert f.units is None and len(f.electrodes) == 4 and len(f.trials) == 20
        assert f.acquisition["ElectricalSeries"].data.shape == (240000, 4)
    messages = list(inspect_nwbfile(nwbfile_path=str(done.path), config=load_config("dandi")))
    assert not [m for m in messages if m.importance.value >= Importance.BEST_PRACTICE_VIOLATION.value]


def test_a_missing_subject_field_is_one_line(rec, capsys):
    info = json.loads(paths.info_path(rec).read_text())
    del info["subject"]["sex"]
    paths.info_path(rec).write_text(json.dumps(info))
    assert cli_main(["export", "nwb", str(rec)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(paths.info_path(rec)) in err and "subject.sex" in err and "subject.species" not in err
    assert not paths.nwb_path(rec).exists()


def test_an_older_info_file_names_every_missing_field(rec):
    info = json.loads(paths.info_path(rec).read_text())
    for key in ("subject", "session", "device"):
        del info[key]
    paths.info_path(rec).write_text(json.dumps(info))
    with pytest.raises(NwbError) as e:
        export_nwb(rec)
    for field in ("subject.subject_id", "subject.species", "subject.sex", "subject.age", "session.description"):
        assert field in str(e.value)
    assert "session.start_time" not in str(e.value)  # from the folder's name


def test_a_file_blechrs_did_not_write_is_kept_without_force(rec):
    target = paths.nwb_path(rec)
    target.write_text("my own notes")
    with pytest.raises(NwbError, match="--force"):
        export_nwb(rec)
    assert target.read_text() == "my own notes"
    export_nwb(rec, force=True)
    export_nwb(rec)  # its own file, unchanged since: replaced without --force
    (rec / "share").mkdir()
    assert export_nwb(rec, out=rec / "share").path == rec / "share" / target.name  # --out a folder
    with h5py.File(target, "a") as f:  # someone adds to it
        f.attrs["mine"] = 1
    with pytest.raises(NwbError, match="--force"):
        export_nwb(rec)


def test_the_file_honours_the_umask(rec):
    old = os.umask(0o027)
    try:
        path = export_nwb(rec).path
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640
    assert not [p for p in rec.iterdir() if p.name.startswith(f".{path.name}")]  # no temporary file left


def test_without_pynwb_the_error_says_what_to_install(rec, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynwb", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'blechrs\[nwb\]'"):
        export_nwb(rec)
