"""Issue 17, item 8 (part): a header whose digital input has a native order outside 0-15 is a
RecordingError naming the header file (it was "negative shift count", naming nothing)."""

from __future__ import annotations

import struct
import warnings

import pytest

from blechrs.io import RecordingError, open_recording
from blechrs.simulate import Simulation


@pytest.mark.parametrize("layout", ["one file per signal type", "traditional"])
@pytest.mark.parametrize("order", [-3, 16, 0x7FFF])
def test_digital_input_order_outside_a_word(tmp_path, layout, order):
    sim = Simulation(seed=1, n_channels=2, duration_s=0.07, n_digital_inputs=2)
    d = tmp_path / "rec"
    sim.write(d, layout, save_ground_truth=False)
    header = d / "info.rhd" if layout != "traditional" else next(d.glob("*.rhd"))
    b = bytearray(header.read_bytes())
    name = sim.din_names[1].encode("utf-16-le")
    at = b.rfind(name) + len(name)  # the custom name ends where the native order starts
    assert struct.unpack("<h", b[at:at + 2]) == (1,)
    b[at:at + 2] = struct.pack("<h", order)
    header.write_bytes(bytes(b))
    with warnings.catch_warnings(), pytest.raises(RecordingError) as err:
        warnings.simplefilter("ignore")
        open_recording(d).digital_inputs
    assert str(err.value).startswith(f"{header}: digital input {sim.din_names[1]} has native order {order}")


@pytest.fixture()
def rhd_set(tmp_path):
    sim = Simulation(seed=2, n_channels=2, duration_s=0.5, n_digital_inputs=0)
    sim.write(tmp_path, "traditional", rhd_file_seconds=0.2, save_ground_truth=False)
    files = sorted(tmp_path.glob("*.rhd"))
    assert len(files) == 3
    return tmp_path, files


def test_rhd_set_with_a_file_missing(rhd_set):
    d, files = rhd_set
    files[1].unlink()
    with pytest.raises(RecordingError, match=rf"^{files[2]}: 5888 samples are missing before it .*file of the set missing"):
        open_recording(d)


def test_rhd_set_out_of_order(rhd_set):
    d, files = rhd_set
    files[0].rename(d / "zz_first.rhd")  # now read last
    with pytest.raises(RecordingError, match=rf"^{d / 'zz_first.rhd'}: its time stamps go back from 13439 to 0 .*out of order"):
        open_recording(d)


def test_complete_rhd_set_opens(rhd_set):
    d, files = rhd_set
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert open_recording(d).n_samples == 13440
