"""Other systems' recordings (blechrs.io.foreign_recording through open_recording): what blechrs
hands the engine equals an independent read (neo directly; numpy on the raw file)."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys

import numpy as np
import pytest

from blechrs.errors import RecordingError
from blechrs.io import open_recording, paths
from blechrs.io.foreign_recording import BinarySpec, MissingExtraError, write_binary_spec
from support.real_data import LOCUST_RAW, NEURALYNX, OPEN_EPHYS, POUZAT, copy_folder, locust_raw, neo_signal, real


def test_open_ephys_equals_neo(tmp_path):
    d = copy_folder(OPEN_EPHYS, tmp_path / "oe")
    x, fs, starts, names, gain = neo_signal("openephys", d)
    rec = open_recording(d)
    assert rec.sampling_rate == fs == 40000.0
    assert rec.channel_names == names and rec.n_samples == len(x) == 423936
    assert rec.gain == gain[0] == 0.05 and rec.segment_starts == starts == [0]
    np.testing.assert_array_equal(rec.read(range(rec.n_channels)), x.T)
    assert rec.filenames == ["101_CH0.continuous", "101_CH1.continuous"]
    assert rec.digital_inputs == {}
    np.testing.assert_allclose(rec.microvolts([1], 1000, 1010)[0], x[1000:1010, 1] * 0.05, rtol=1e-6)


def test_neuralynx_gap_is_concatenated_and_said(tmp_path):
    d = copy_folder(NEURALYNX, tmp_path / "nlx")
    x, fs, starts, names, gain = neo_signal("neuralynx", d)
    with pytest.warns(UserWarning, match="segment 2 of 2 starts at sample 1278976"):
        rec = open_recording(d)
    assert (rec.sampling_rate, rec.channel_names, rec.segment_starts) == (fs, names, starts)
    assert starts == [0, 1278976] and rec.gain == pytest.approx(gain[0]) == pytest.approx(0.0305185)
    np.testing.assert_array_equal(rec.read([0, 1]), x.T)
    gap = [w for w in rec.warnings if "gap" in w]
    assert len(gap) == 1 and "203.835 s" in gap[0], rec.warnings


def test_conversion_is_reused_and_redone_when_the_source_changes(tmp_path):
    d = copy_folder(OPEN_EPHYS, tmp_path / "oe")
    first = open_recording(d)
    ident = first.identity()
    conv = paths.converted_recording_path(d)
    made = conv.stat().st_mtime_ns
    again = open_recording(d)
    assert conv.stat().st_mtime_ns == made and again.identity() == ident
    f = d / "101_CH0.continuous"
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    changed = open_recording(d)
    assert conv.stat().st_mtime_ns != made and changed.identity() != ident
    np.testing.assert_array_equal(changed.read([0, 1], 0, 1000), first.read([0, 1], 0, 1000))


def test_missing_neo_is_one_line_saying_what_to_install(tmp_path, monkeypatch):
    d = copy_folder(OPEN_EPHYS, tmp_path / "oe")
    monkeypatch.setitem(sys.modules, "neo", None)  # import neo now raises ImportError
    with pytest.raises(MissingExtraError) as e:
        open_recording(d)
    assert "pip install 'blechrs[neo]'" in str(e.value) and "\n" not in str(e.value)


def test_raw_int16_is_read_in_place(tmp_path):
    d = copy_folder(LOCUST_RAW.parent, tmp_path / "loc", [LOCUST_RAW.name])
    write_binary_spec(d, BinarySpec(file=LOCUST_RAW.name, sampling_rate=15000.0, n_channels=4))
    with pytest.warns(UserWarning, match="no gain given"):
        rec = open_recording(d)
    ref = locust_raw()
    assert rec.n_samples == len(ref) == 431548 and rec.sampling_rate == 15000.0 and rec.gain == 1.0
    np.testing.assert_array_equal(rec.read(range(4)), ref.T)
    assert not paths.converted_recording_path(d).exists()  # no copy
    assert rec.filenames == [LOCUST_RAW.name] * 4


def test_raw_with_header_offset_and_gain(tmp_path):
    ref = locust_raw()[:20000]
    (tmp_path / "rec.bin").write_bytes(b"H" * 64 + ref.astype("<i2").tobytes())
    write_binary_spec(tmp_path, BinarySpec(file="rec.bin", sampling_rate=15000.0, n_channels=4, offset=64, gain=0.5))
    rec = open_recording(tmp_path)
    assert rec.gain == 0.5
    np.testing.assert_array_equal(rec.read(range(4)), ref.T)


def test_raw_uint16_converts_exactly(tmp_path):
    ref = locust_raw()[:30000]
    (tmp_path / "u.dat").write_bytes((ref.astype(np.int32) + 32768).astype("<u2").tobytes())
    write_binary_spec(tmp_path, BinarySpec(file="u.dat", sampling_rate=15000.0, n_channels=4, dtype="uint16", gain=2.0))
    rec = open_recording(tmp_path)
    assert rec.gain == 2.0
    np.testing.assert_array_equal(rec.read(range(4)), ref.T)


def test_pouzat_float64_converts_within_half_a_step(tmp_path):
    """Pouzat's float64 channels (one gzipped file each), interleaved by numpy, given as float64
    with a gain: blechrs scales them onto int16; every sample within half a step."""
    n = 60000
    x = np.stack([np.frombuffer(gzip.open(real(POUZAT / f"Locust_{i}.dat.gz")).read(), "<f8")[:n] for i in range(1, 5)],
                 axis=1)
    (tmp_path / "locust.f64").write_bytes(x.astype("<f8").tobytes())
    write_binary_spec(tmp_path, BinarySpec(file="locust.f64", sampling_rate=15000.0, n_channels=4, dtype="float64",
                                           gain=100.0))
    rec = open_recording(tmp_path)
    step = rec.gain
    assert step == pytest.approx(100.0 * np.abs(x).max() / 32000.0)
    err = np.abs(rec.read(range(4)).T * step - x * 100.0)
    assert err.max() <= step / 2 * (1 + 1e-5)


@pytest.mark.parametrize("n_channels", [3, 5])
def test_bad_raw_spec_is_one_line_naming_the_file(tmp_path, n_channels):
    d = copy_folder(LOCUST_RAW.parent, tmp_path / "loc", [LOCUST_RAW.name])
    with pytest.raises(RecordingError, match="locust_trial_01.raw: .* not a whole number of samples") as e:
        write_binary_spec(d, BinarySpec(file=LOCUST_RAW.name, sampling_rate=15000.0, n_channels=n_channels))
    assert "\n" not in str(e.value)
    assert not paths.binary_spec_path(d).exists()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    p = subprocess.run([sys.executable, "-m", "blechrs", "init", str(d), "--format", "binary", "--sampling-rate",
                        "15000", "--channels", str(n_channels)], capture_output=True, text=True, env=env)
    assert p.returncode == 1
    lines = (p.stdout + p.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("blechrs: error:") and "locust_trial_01.raw" in lines[0], lines


def test_hand_written_spec_errors_name_it(tmp_path):
    (tmp_path / "r.raw").write_bytes(b"\0" * 80)
    paths.binary_spec_path(tmp_path).write_text('{"file": "r.raw", "sampling_rate": 15000, "n_channels": 4, '
                                                '"dtype": "complex64"}')
    with pytest.raises(RecordingError, match="blechrs_binary.json: dtype 'complex64' is not one of"):
        open_recording(tmp_path)
    paths.binary_spec_path(tmp_path).write_text('{"file": "r.raw", "sampling_rate": 15000, "channels": 4}')
    with pytest.raises(RecordingError, match="blechrs_binary.json: expected a JSON object with"):
        open_recording(tmp_path)
