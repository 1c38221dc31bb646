"""blechrs reads all six Intan files written by Intan's own software (../shared/data/real/
intan-format-fixtures-synthetic: .rhd v1.5 x2, v2.0, v3.0, and RHX v3.3 one-file-per-channel and
one-file-per-signal-type folders), checked against a plain-numpy reader written from Intan's
format description (tests/support/intan_reference.py), the raw .dat files, and neo where neo
opens the file. neo 0.14 cannot open the v1.5 file with a temperature sensor and digital
outputs (KeyError 'custom_channel_name'); blechrs must."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from blechrs.io import open_recording
from support.intan_reference import edges, read_rhd

REAL = Path(os.environ.get("BLECHRS_SHARED", Path(__file__).resolve().parents[3] / "shared")) / "data" / "real"
FIXTURES = REAL / "intan-format-fixtures-synthetic"
RHD_FILES = {
    "rhd_v1.5_32ch_digio_temp_load-rhd-notebook-python.rhd": dict(version="1.5", fs=20000.0, n_amp=32, blocks=672,
                                                                  din=2, neo=False),
    "rhd_v1.5_32ch_load-rhd-notebook-r.rhd": dict(version="1.5", fs=20000.0, n_amp=32, blocks=324, din=0, neo=True),
    "rhd_v2.0_2ch_IntanToNWB_example.rhd": dict(version="2.0", fs=20000.0, n_amp=2, blocks=155, din=0, neo=True),
    "rhd_v3.0_64ch_load-rhd-notebook-python.rhd": dict(version="3.0", fs=20000.0, n_amp=64, blocks=138, din=0,
                                                       neo=True),
}
FOLDERS = {"intan_fpc_test_231117_052630": "one file per channel",
           "intan_fps_test_231117_052500": "one file per signal type"}


def test_the_six_files_are_there():
    """The data these tests read (a missing file must fail, not skip)."""
    assert all((FIXTURES / f).is_file() for f in RHD_FILES), sorted(p.name for p in FIXTURES.iterdir())
    assert all((FIXTURES / d / "info.rhd").is_file() for d in FOLDERS)


@pytest.mark.parametrize("name", sorted(RHD_FILES))
def test_rhd_files_match_the_numpy_reader(name, tmp_path):
    spec = RHD_FILES[name]
    path = FIXTURES / name
    ref = read_rhd(path)
    # the reference reader's layout accounts for every byte of the file in whole blocks
    assert ref.n_blocks == spec["blocks"]
    np.testing.assert_array_equal(ref.timestamps, np.arange(len(ref.timestamps)))  # no gap in these files
    rec = open_recording(path)
    assert rec.file_type == "traditional"
    assert rec.header["version"] == spec["version"]
    assert rec.header["block_samples"] == (60 if spec["version"].startswith("1.") else 128)
    assert rec.sampling_rate == spec["fs"] == ref.sampling_rate
    assert rec.n_samples == spec["blocks"] * rec.header["block_samples"]
    assert rec.channel_names == [c["native"] for c in ref.channels[0]]
    assert len(rec.channel_names) == spec["n_amp"]
    assert rec.warnings == []
    np.testing.assert_array_equal(np.asarray(rec.amplifier), ref.amplifier)
    np.testing.assert_array_equal(rec.amplifier[[3 % spec["n_amp"], 0], 5000:5300], ref.amplifier[[3 % spec["n_amp"], 0], 5000:5300])
    # digital inputs: each enabled input's bit of the word, as edges
    din = rec.digital_inputs
    assert len(din) == spec["din"] == len(ref.channels[4])
    for c in ref.channels[4]:
        key = "dig_in_%02d" % int(c["native"].rsplit("-", 1)[1])
        on, off = edges((ref.digital_in >> c["native_order"]) & 1)
        np.testing.assert_array_equal(din[key][0], on)
        np.testing.assert_array_equal(din[key][1], off)
    # the same file in a folder of its own reads the same (the layout blechrs init sees)
    d = tmp_path / "rec"
    d.mkdir()
    shutil.copy(path, d / name)
    np.testing.assert_array_equal(np.asarray(open_recording(d).amplifier), ref.amplifier)


def test_v15_file_with_temperature_and_digital_outputs():
    """The file neo cannot open: a temperature sensor, 2 board ADC, 2 digital inputs, 16 digital
    outputs in 60-sample blocks; every section must be skipped by its right size."""
    name = "rhd_v1.5_32ch_digio_temp_load-rhd-notebook-python.rhd"
    ref = read_rhd(FIXTURES / name)
    assert ref.n_temp == 1 and len(ref.channels[3]) == 2 and len(ref.channels[5]) == 16 and len(ref.channels[1]) == 3
    assert ref.amplifier.shape == (32, 672 * 60)
    rec = open_recording(FIXTURES / name)
    amp = np.asarray(rec.amplifier)
    np.testing.assert_array_equal(amp, ref.amplifier)
    # Intan's demo signals: spikes of a few hundred microvolts on a few-microvolt noise floor; a
    # reader off by one section would give noise of full-scale garbage instead
    noise = np.median(np.abs(np.diff(amp.astype(np.float64), axis=1)), axis=1) * 0.195
    assert np.all(noise < 20), noise
    from neo.rawio import IntanRawIO

    with pytest.raises(KeyError):  # why this file is here: if neo learns it, compare with neo too
        IntanRawIO(filename=str(FIXTURES / name)).parse_header()


@pytest.mark.parametrize("name", sorted(n for n, s in RHD_FILES.items() if s["neo"]))
def test_rhd_files_match_neo(name):
    from neo.rawio import IntanRawIO

    r = IntanRawIO(filename=str(FIXTURES / name))
    r.parse_header()
    names = [str(s["name"]) for s in r.header["signal_streams"]]
    k = names.index("RHD2000 amplifier channel")
    n = r.get_signal_size(0, 0, k)
    amp = r.get_analogsignal_chunk(0, 0, 0, n, stream_index=k)
    rec = open_recording(FIXTURES / name)
    assert rec.n_samples == n
    np.testing.assert_array_equal(np.asarray(rec.amplifier), (amp.astype(np.int32) - 32768).T)


@pytest.mark.parametrize("folder", sorted(FOLDERS))
def test_rhx_folders_match_the_dat_files_and_neo(folder):
    d = FIXTURES / folder
    rec = open_recording(d)
    assert rec.file_type == FOLDERS[folder]
    assert rec.header["version"] == "3.3"
    assert rec.sampling_rate == 30000.0
    assert rec.n_samples == 24320
    assert rec.channel_names == [f"{p}-{c:03d}" for p in "AB" for c in range(32)]
    if FOLDERS[folder] == "one file per channel":
        ref = np.stack([np.fromfile(d / f"amp-{nm}.dat", dtype="<i2") for nm in rec.channel_names])
        word = np.fromfile(d / "board-DIGITAL-IN-01.dat", dtype="<u2")
        key = "dig_in_01"
    else:
        ref = np.fromfile(d / "amplifier.dat", dtype="<i2").reshape(-1, 64).T
        word = np.fromfile(d / "digitalin.dat", dtype="<u2")
        key = next(iter(rec.digital_inputs))
    np.testing.assert_array_equal(np.asarray(rec.amplifier), ref)
    np.testing.assert_array_equal(np.fromfile(d / "time.dat", dtype="<i4"), np.arange(24320))
    assert len(rec.digital_inputs) == 1
    on, off = edges(word & 1 if FOLDERS[folder] != "one file per channel" else word)
    np.testing.assert_array_equal(rec.digital_inputs[key][0], on)
    np.testing.assert_array_equal(rec.digital_inputs[key][1], off)
    from neo.rawio import IntanRawIO

    r = IntanRawIO(filename=str(d / "info.rhd"))
    r.parse_header()
    names = [str(s["name"]) for s in r.header["signal_streams"]]
    k = names.index("RHD2000 amplifier channel")
    neo_amp = r.get_analogsignal_chunk(0, 0, 0, r.get_signal_size(0, 0, k), stream_index=k)
    np.testing.assert_array_equal(np.asarray(rec.amplifier), neo_amp.T)
