"""Each kind of broken Intan folder gives one clear line naming the file (error or warning)."""

import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest

from blechrs.io import RecordingError, RecordingWarning, open_recording
from blechrs.simulate import Simulation


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    root = tmp_path_factory.mktemp("good")
    sim = Simulation(seed=2, n_channels=3, duration_s=0.3, n_digital_inputs=1)
    sim.write_many({root / "pc": "one file per channel", root / "ps": "one file per signal type",
                    root / "rhd": "traditional"}, save_ground_truth=False)
    return root


@pytest.fixture
def copy(originals, tmp_path):
    def make(name):
        dst = tmp_path / name
        shutil.copytree(originals / name, dst)
        return dst
    return make


def fails(path, *words):
    with pytest.raises(RecordingError) as e:
        open_recording(path)
    msg = str(e.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg
    return msg


def test_odd_length_channel_file(copy):
    d = copy("pc")
    with open(d / "amp-A-001.dat", "ab") as f:
        f.write(b"\x00")
    fails(d, "amp-A-001.dat", "odd length")


def test_truncated_amplifier_dat(copy):
    d = copy("ps")
    size = (d / "amplifier.dat").stat().st_size
    with open(d / "amplifier.dat", "r+b") as f:
        f.truncate(size - 2)  # one int16 short: not a whole number of 3-channel samples
    fails(d, "amplifier.dat", "not a whole number of samples")


def test_channel_files_of_unequal_length(copy):
    d = copy("pc")
    size = (d / "amp-A-002.dat").stat().st_size
    with open(d / "amp-A-002.dat", "r+b") as f:
        f.truncate(size - 200)
    fails(d, "amp-A-002.dat", "unequal length")


def test_bad_magic_number(copy):
    d = copy("ps")
    b = bytearray((d / "info.rhd").read_bytes())
    b[0:4] = b"\x00\x01\x02\x03"
    (d / "info.rhd").write_bytes(bytes(b))
    fails(d, "info.rhd", "magic number")


def test_unknown_header_version(copy):
    d = copy("rhd")
    f = sorted(d.glob("*.rhd"))[0]
    b = bytearray(f.read_bytes())
    b[4:6] = np.int16(9).tobytes()
    f.write_bytes(bytes(b))
    fails(d, f.name, "version 9.0")


def test_missing_info_rhd(copy):
    d = copy("pc")
    (d / "info.rhd").unlink()
    fails(d, "info.rhd", "missing")


def test_missing_channel_file(copy):
    d = copy("pc")
    (d / "amp-A-001.dat").unlink()
    fails(d, "amp-A-001.dat", "missing")


def test_time_dat_jumps_warn_with_positions(copy):
    d = copy("pc")
    t = np.fromfile(d / "time.dat", dtype="<i4")
    t[1000:] += 5
    t[5000:] += 2
    t.tofile(d / "time.dat")
    with pytest.warns(RecordingWarning) as w:
        r = open_recording(d)
    msg = str(w[0].message)
    assert "time.dat" in msg and "sample 1000 (999 -> 1005)" in msg and "sample 5000" in msg, msg
    assert r.warnings == [msg]


def test_rhd_time_stamp_gap_between_files_warns(tmp_path):
    sim = Simulation(seed=2, n_channels=2, duration_s=0.5, n_digital_inputs=0)
    sim.write(tmp_path, "traditional", rhd_file_seconds=0.2, save_ground_truth=False)
    f = sorted(tmp_path.glob("*.rhd"))[1]
    r0 = open_recording(tmp_path)
    b = bytearray(f.read_bytes())
    hs = r0._full_header["header_size"]
    block = np.frombuffer(bytes(b[hs:hs + 4 * 128]), dtype="<i4").copy()
    first = int(block[0])
    # shift every time stamp of the second file by +10: a gap where it starts
    blk_bytes = 4 * 128 + 2 * 128 * 2  # timestamps + 2 amplifier channels
    for k in range((len(b) - hs) // blk_bytes):
        o = hs + k * blk_bytes
        ts = np.frombuffer(bytes(b[o:o + 512]), dtype="<i4") + 10
        b[o:o + 512] = ts.astype("<i4").tobytes()
    f.write_bytes(bytes(b))
    with pytest.warns(RecordingWarning, match=f"sample {first} \\({first - 1} -> {first + 10}\\)"):
        open_recording(tmp_path)


def test_partial_rhd_block_warns(copy):
    d = copy("rhd")
    f = sorted(d.glob("*.rhd"))[-1]
    with open(f, "ab") as fh:
        fh.write(b"\x00" * 100)
    with pytest.warns(RecordingWarning, match=f"{f.name}: ends with 100 bytes of an incomplete data block"):
        r = open_recording(d)
    assert r.n_samples == open_recording(copy("ps")).n_samples


def test_empty_directory(tmp_path):
    fails(tmp_path, str(tmp_path), "empty directory")


def test_directory_without_a_recording(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    fails(tmp_path, "no Intan recording found")


def test_two_layouts_mixed(copy, originals):
    d = copy("pc")
    shutil.copy(originals / "ps" / "amplifier.dat", d / "amplifier.dat")
    fails(d, "two Intan layouts mixed", "one file per channel", "one file per signal type")
    d2 = copy("ps")
    for f in (originals / "rhd").glob("*.rhd"):
        shutil.copy(f, d2 / f.name)
    fails(d2, "two Intan layouts mixed", "traditional")


def test_rhd_files_of_different_recordings(copy, tmp_path):
    d = copy("rhd")
    other = tmp_path / "other"
    Simulation(seed=2, n_channels=4, duration_s=0.3).write(other, "traditional", save_ground_truth=False)
    f = sorted(other.glob("*.rhd"))[0]
    shutil.copy(f, d / "zzz_later.rhd")
    fails(d, "zzz_later.rhd", "differs")


def test_truncated_time_dat_is_a_warning_not_an_error(copy):
    d = copy("ps")
    with open(d / "time.dat", "ab") as f:
        f.write(b"\x00\x00")
    with pytest.warns(RecordingWarning, match="time.dat.*not a whole number of int32 time stamps"):
        r = open_recording(d)
    assert r.amplifier[0, :10].shape == (10,)


def test_digital_input_file_of_other_length(copy):
    d = copy("pc")
    f = sorted(d.glob("board-DIN-*.dat"))[0]
    with open(f, "r+b") as fh:
        fh.truncate(f.stat().st_size - 20)
    r = open_recording(d)
    with pytest.raises(RecordingError, match=f"{f.name}: .* samples but the amplifier files have"):
        r.digital_inputs


def _absurd_header(n_groups=64, n_chan=32767) -> bytes:
    """A 3.0 header declaring n_groups groups of n_chan enabled amplifier channels (75 MB at the
    defaults), the shape of the issue's memory blow-up."""
    empty = struct.pack("<I", 0xFFFFFFFF)  # an empty QString
    o = bytearray(struct.pack("<Ihhfh", 0xC6912702, 3, 0, 30000.0, 1))
    o += struct.pack("<ffffff", 1.0, 0.1, 7500.0, 1.0, 0.1, 7500.0)
    o += struct.pack("<hff", 0, 1000.0, 1000.0) + empty * 3
    o += struct.pack("<hh", 0, 0) + empty  # temp sensors, board mode, reference channel
    o += struct.pack("<h", n_groups)
    record = empty * 2 + struct.pack("<hhhhhhhhhhff", 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0.0, 0.0)
    for _ in range(n_groups):
        o += empty * 2 + struct.pack("<hhh", 1, n_chan, n_chan) + record * n_chan
    return bytes(o)


def test_absurd_channel_count_is_refused_in_little_memory(copy):
    # 64 x 32767 declared channels once made open_recording use 3 GB: refused before the
    # channels are built, in one line naming the file, with the process' peak memory small
    d = copy("ps")
    (d / "info.rhd").write_bytes(_absurd_header())
    code = (
        "import resource, sys\n"
        "from blechrs.io import RecordingError, open_recording\n"
        "try:\n"
        f"    open_recording({str(d)!r})\n"
        "except RecordingError as e:\n"
        "    print(e)\n"
        # the peak of this process image: VmHWM (ru_maxrss would carry over pytest's own peak
        # through fork and exec)
        "try:\n"
        "    print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))\n"
        "except OSError:\n"
        "    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    msg, peak_kb = r.stdout.strip().splitlines()
    assert "info.rhd" in msg and "32767 channels" in msg, msg
    assert int(peak_kb) < 400_000, f"peak RSS {int(peak_kb) // 1024} MB"
    # a real maximum (8 ports x 128 amplifier channels) still parses
    (d / "info.rhd").write_bytes(_absurd_header(n_groups=8, n_chan=128))
    with pytest.raises(RecordingError) as e:  # (the data files are the 3-channel originals)
        open_recording(d)
    assert "32767" not in str(e.value) and "corrupt header" not in str(e.value)
