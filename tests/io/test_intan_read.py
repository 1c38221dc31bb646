"""One simulated recording written in all three Intan layouts reads back identically, and equal
to what neo's IntanRawIO (an independent reader) and the simulation's own samples say."""

import numpy as np
import pytest

from blechrs.io import open_recording
from blechrs.simulate import LAYOUTS, Simulation

N_CH = 6


def edges_numpy(x):
    """Onsets/offsets of a 0/1 trace, written independently of blechrs."""
    x = np.concatenate([[0], (np.asarray(x) != 0).astype(np.int8), [0]])
    d = np.diff(x)
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


@pytest.fixture(scope="module")
def sim():
    return Simulation(seed=7, n_channels=N_CH, duration_s=1.5, n_digital_inputs=3, din_style="rhx")


@pytest.fixture(scope="module")
def folders(sim, tmp_path_factory):
    root = tmp_path_factory.mktemp("intan")
    targets = {root / "per_channel": LAYOUTS[0], root / "per_signal": LAYOUTS[1], root / "rhd": LAYOUTS[2]}
    gt = sim.write_many(targets, rhd_file_seconds=0.5, rhd_extra_sections=True)
    return dict(zip(["per_channel", "per_signal", "rhd"], targets)), gt


def test_all_layouts_identical_to_the_samples_written(sim, folders):
    dirs, gt = folders
    ref = sim.chunk(0, sim.n_samples).T  # channels x samples, what the writers were given
    for key, d in dirs.items():
        r = open_recording(d)
        assert r.file_type == {"per_channel": LAYOUTS[0], "per_signal": LAYOUTS[1], "rhd": LAYOUTS[2]}[key]
        assert r.sampling_rate == 30000.0
        assert r.n_samples == sim.n_samples
        assert r.channel_names == [f"A-{c:03d}" for c in range(N_CH)]
        assert r.ports == ["A"] * N_CH and r.native_orders == list(range(N_CH))
        assert r.amplifier.shape == (N_CH, sim.n_samples)
        np.testing.assert_array_equal(np.asarray(r.amplifier), ref)
        # lazy indexing matches numpy indexing of the reference
        np.testing.assert_array_equal(r.amplifier[[4, 1], 1000:1300], ref[[4, 1], 1000:1300])
        np.testing.assert_array_equal(r.amplifier[2, ::97], ref[2, ::97])
        np.testing.assert_array_equal(r.amplifier[:, 12345], ref[:, 12345])
        din = r.digital_inputs
        assert sorted(din) == sorted(gt.digital_inputs) == ["dig_in_01", "dig_in_02", "dig_in_03"]
        for k, (on, off) in gt.digital_inputs.items():
            np.testing.assert_array_equal(din[k][0], on)
            np.testing.assert_array_equal(din[k][1], off)
            assert din[k][0].dtype == np.int64
        assert r.warnings == []


def _neo(path):
    from neo.rawio import IntanRawIO

    r = IntanRawIO(filename=str(path))
    r.parse_header()
    names = [str(s["name"]) for s in r.header["signal_streams"]]
    return r, names


def _neo_stream(r, names, name, n):
    return r.get_analogsignal_chunk(0, 0, 0, n, stream_index=names.index(name))


def test_neo_reads_the_same_dat_layouts(folders):
    dirs, _ = folders
    for key in ("per_channel", "per_signal"):
        ours = open_recording(dirs[key])
        r, names = _neo(dirs[key] / "info.rhd")
        n = r.get_signal_size(0, 0, names.index("RHD2000 amplifier channel"))
        assert n == ours.n_samples
        amp = _neo_stream(r, names, "RHD2000 amplifier channel", n)  # samples x channels, int16
        np.testing.assert_array_equal(np.asarray(ours.amplifier), amp.T)
        d = _neo_stream(r, names, "USB board digital input channel", n)
        chans = r.header["signal_channels"]
        din_names = [str(c["name"]) for c in chans if str(c["stream_id"]) == "4"]
        for j, nm in enumerate(din_names):
            on, off = edges_numpy(d[:, j])
            key_ = "dig_in_%02d" % int(nm.rsplit("-", 1)[1])
            np.testing.assert_array_equal(ours.digital_inputs[key_][0], on)
            np.testing.assert_array_equal(ours.digital_inputs[key_][1], off)


@pytest.mark.parametrize("version", [(1, 0), (1, 2), (1, 3), (2, 0), (3, 0)])
def test_neo_reads_the_same_rhd_files(tmp_path, version):
    sim = Simulation(seed=11, n_channels=5, duration_s=1.0, n_digital_inputs=2)
    sim.write(tmp_path, "traditional", rhd_version=version, rhd_file_seconds=0.3, rhd_extra_sections=True)
    ours = open_recording(tmp_path)
    assert ours.header["version"] == "%d.%d" % version
    assert ours.header["block_samples"] == (128 if version[0] > 1 else 60)
    assert len(ours.files) >= 3
    amp, din = [], []
    for f in ours.files:
        r, names = _neo(f)
        n = r.get_signal_size(0, 0, names.index("RHD2000 amplifier channel"))
        a = _neo_stream(r, names, "RHD2000 amplifier channel", n)  # uint16, offset 32768
        amp.append(a.astype(np.int32) - 32768)
        din.append(_neo_stream(r, names, "USB board digital input channel", n))
    amp = np.concatenate(amp)
    din = np.concatenate(din)
    assert amp.shape == (ours.n_samples, 5)
    np.testing.assert_array_equal(np.asarray(ours.amplifier), amp.T)
    for j, key in enumerate(["dig_in_00", "dig_in_01"]):
        on, off = edges_numpy(din[:, j])
        np.testing.assert_array_equal(ours.digital_inputs[key][0], on)
        np.testing.assert_array_equal(ours.digital_inputs[key][1], off)


def test_legacy_board_din_names_are_read(tmp_path):
    sim = Simulation(seed=3, n_channels=2, duration_s=0.5, n_digital_inputs=2, din_style="legacy")
    gt = sim.write(tmp_path, "one file per channel")
    assert (tmp_path / "board-DIN-00.dat").exists()
    r = open_recording(tmp_path)
    assert sorted(r.digital_inputs) == ["dig_in_00", "dig_in_01"]
    for k, (on, off) in gt.digital_inputs.items():
        x = np.fromfile(tmp_path / f"board-DIN-{int(k[-2:]):02d}.dat", dtype="<u2")
        e_on, e_off = edges_numpy(x)
        np.testing.assert_array_equal(r.digital_inputs[k][0], e_on)
        np.testing.assert_array_equal(r.digital_inputs[k][1], e_off)
        np.testing.assert_array_equal(on, e_on)
    # neo 0.14 globs only board-DIGITAL-IN-*.dat: give it the same bytes under that name
    view = tmp_path / "neo_view"
    view.mkdir()
    for f in tmp_path.iterdir():
        if f.is_file():
            (view / f.name.replace("board-DIN-", "board-DIGITAL-IN-")).symlink_to(f)
    r2, names = _neo(view / "info.rhd")
    d = _neo_stream(r2, names, "USB board digital input channel", r.n_samples)
    for j, k in enumerate(["dig_in_00", "dig_in_01"]):
        on, off = edges_numpy(d[:, j])
        np.testing.assert_array_equal(r.digital_inputs[k][0], on)
        np.testing.assert_array_equal(r.digital_inputs[k][1], off)


def test_opening_by_info_rhd_or_single_rhd_file(folders):
    dirs, _ = folders
    assert open_recording(dirs["per_signal"] / "info.rhd").file_type == LAYOUTS[1]
    first = sorted(dirs["rhd"].glob("*.rhd"))[0]
    r = open_recording(first)
    assert r.file_type == LAYOUTS[2] and len(r.files) == 1 and r.n_samples < open_recording(dirs["rhd"]).n_samples


def test_source_reads_like_the_view(folders):
    from blechrs import _native

    dirs, _ = folders
    for d in dirs.values():
        r = open_recording(d)
        s = r.source
        assert isinstance(s, _native.SampleSource)
        assert (s.n_channels, s.n_samples) == r.amplifier.shape
        np.testing.assert_array_equal(_native.read_source(s, [3, 0], 500, 900), r.amplifier[[3, 0], 500:900])


@pytest.mark.parametrize("version", [(1, 1), (3, 0)])
def test_rhd_with_temperature_sensors(tmp_path, version):
    # neo 0.14 fails on temperature-sensor sections; the reference here is the simulation itself
    sim = Simulation(seed=5, n_channels=3, duration_s=0.5, n_digital_inputs=1)
    gt = sim.write(tmp_path, "traditional", rhd_version=version, rhd_extra_sections=True, rhd_temp_sensors=2)
    r = open_recording(tmp_path)
    np.testing.assert_array_equal(np.asarray(r.amplifier), sim.chunk(0, sim.n_samples).T)
    np.testing.assert_array_equal(r.digital_inputs["dig_in_00"][0], gt.digital_inputs["dig_in_00"][0])


def test_amplifier_view_indexes_like_numpy(folders, sim):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    dirs, _ = folders
    views = [open_recording(d).amplifier for d in dirs.values()]
    ref = sim.chunk(0, sim.n_samples).T
    n = sim.n_samples
    idx = st.one_of(
        st.integers(-n, n - 1),
        st.builds(slice, st.none() | st.integers(-n, n), st.none() | st.integers(-n, n),
                  st.none() | st.integers(1, 5000) | st.integers(-5000, -1)),
        st.lists(st.integers(0, n - 1), min_size=0, max_size=5),
    )
    ch = st.one_of(st.integers(-N_CH, N_CH - 1), st.slices(N_CH), st.lists(st.integers(0, N_CH - 1), max_size=4))

    @settings(max_examples=60, deadline=None)
    @given(ch, idx)
    def check(c, t):
        want = ref[c][..., t] if not isinstance(c, list) else ref[c][:, t]
        for v in views:
            np.testing.assert_array_equal(v[c, t], want)

    check()
