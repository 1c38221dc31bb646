"""``blechrs.to_spikeinterface``: the sorting is the unit store (read here with h5py, not blechrs),
its recording is the raw files (read here with numpy and neo), and SpikeInterface's own
SortingAnalyzer works on them: its templates on a recording band-passed and referenced by
SpikeInterface's preprocessing are the stored mean waveforms' shape (correlated, not equal: other
filters, no sub-sample alignment), and an analyzer saved to a folder loads back with its recording.
"""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import spikeinterface.core as si_core
import spikeinterface.extractors as si_extractors
import spikeinterface.preprocessing as si_pre

import blechrs
from blechrs import pipeline
from blechrs.errors import MissingExtraError, PipelineError, RecordingError
from blechrs.interop import spikeinterface as interop
from blechrs.io import paths, unit_store
from support.sorting_reference import init_folder, simulated_folder

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "data" / "real" / "intan-format-fixtures-synthetic"
if not FIXTURES.exists():
    FIXTURES = Path("/work/shared/data/real/intan-format-fixtures-synthetic")


@pytest.fixture(scope="module")
def sorted_folder(tmp_path_factory):
    """A small simulated recording (one file per channel) sorted by blechrs's engine and auto-sort."""
    d = tmp_path_factory.mktemp("si") / "rec"
    d.mkdir()
    simulated_folder(d, seed=5, n_channels=4, duration_s=10.0)
    init_folder(d, max_clusters=4, num_restarts=2, cluster_count_threshold=10, max_autosort_clusters=6)
    pipeline.run(d, jobs=1, plots=False)
    return d


def _store(path):
    """The unit store read with h5py: name -> (times, electrode, single, rs, fs, mean waveform)."""
    with h5py.File(path, "r") as f:
        out = {}
        for name, g in sorted(f["sorted_units"].items()):
            meta = g["unit_metadata"][0]
            out[name] = (g["times"][:], int(meta["electrode_number"]), bool(meta["single_unit"]),
                         bool(meta["regular_spiking"]), bool(meta["fast_spiking"]),
                         g["waveforms"][:].astype(np.float64).mean(axis=0), g["quality"][0])
        return out


def test_sorting_is_the_unit_store(sorted_folder):
    store = _store(paths.h5_path(sorted_folder))
    sorting = blechrs.to_spikeinterface(sorted_folder)
    assert sorting.get_sampling_frequency() == pipeline.load_params(sorted_folder).extract.sampling_rate == 30000.0
    assert sorting.get_num_segments() == 1
    assert [f"unit{i:03d}" for i in sorting.unit_ids] == list(store)
    assert list(sorting.get_property("unit_name")) == list(store)
    for uid, (name, (times, electrode, single, rs, fs, _, quality)) in zip(sorting.unit_ids, store.items()):
        assert np.array_equal(sorting.get_unit_spike_train(uid), np.sort(times))  # exactly, in samples
        assert sorting.get_unit_property(uid, "electrode") == electrode
        assert sorting.get_unit_property(uid, "channel_id") == f"A-{electrode:03d}"
        assert sorting.get_unit_property(uid, "main_channel_id") == f"A-{electrode:03d}"
        assert sorting.get_unit_property(uid, "single_unit") == single
        assert sorting.get_unit_property(uid, "quality") == ("good" if single else "MUA")
        assert sorting.get_unit_property(uid, "regular_spiking") == rs
        assert sorting.get_unit_property(uid, "fast_spiking") == fs
        assert sorting.get_unit_property(uid, "type") == ("regular_spiking" if rs else "fast_spiking" if fs else "")
        for key in quality.dtype.names:
            assert np.allclose(sorting.get_unit_property(uid, key), quality[key], equal_nan=True), key
    assert sorting.has_recording()
    assert sorting.get_num_samples() == len(np.fromfile(sorted_folder / "amp-A-000.dat", dtype="<i2"))


def test_recording_is_the_raw_files(sorted_folder):
    rec = interop.read_recording(sorted_folder)
    assert list(rec.channel_ids) == [f"A-{i:03d}" for i in range(4)]
    assert rec.get_dtype() == np.int16 and rec.get_sampling_frequency() == 30000.0
    raw = np.stack([np.fromfile(sorted_folder / f"amp-A-{i:03d}.dat", dtype="<i2") for i in range(4)], axis=1)
    assert np.array_equal(rec.get_traces(), raw)
    assert np.array_equal(rec.get_traces(start_frame=1000, end_frame=1234, channel_ids=["A-002", "A-000"]),
                          raw[1000:1234][:, [2, 0]])
    assert np.allclose(rec.get_traces(start_frame=5, end_frame=50, return_in_uV=True), raw[5:50] * 0.195)
    assert list(rec.get_property("electrode")) == [0, 1, 2, 3]
    assert list(rec.get_property("car_group")) == ["A"] * 4
    assert rec.has_probe() and len(np.unique(rec.get_channel_locations()[:, 1])) == 4
    # SpikeInterface re-creates it by name (its worker processes, saved analyzers): no data copied.
    for again in (si_core.load(rec.to_dict()), pickle.loads(pickle.dumps(rec))):
        assert np.array_equal(again.get_traces(start_frame=0, end_frame=500), raw[:500])


@pytest.mark.parametrize("name", ["intan_fpc_test_231117_052630", "intan_fps_test_231117_052500",
                                  "rhd_v3.0_64ch_load-rhd-notebook-python.rhd"])
def test_recording_matches_neo_on_intan_layouts(name):
    """Each Intan layout read through blechrs equals neo's IntanRawIO (through SpikeInterface)."""
    path = FIXTURES / name
    ours = interop.read_recording(path)
    neo_path = path / "info.rhd" if path.is_dir() else path
    theirs = si_extractors.read_intan(neo_path, stream_name="RHD2000 amplifier channel")
    assert list(ours.channel_ids) == list(theirs.channel_ids)
    assert ours.get_num_samples() == theirs.get_num_samples()
    assert ours.get_sampling_frequency() == theirs.get_sampling_frequency()
    a, b = ours.get_traces(return_in_uV=True), theirs.get_traces(return_in_uV=True)
    assert np.allclose(a, b, atol=1e-3)


def test_recording_opens_a_file_neo_cannot():
    path = FIXTURES / "rhd_v1.5_32ch_digio_temp_load-rhd-notebook-python.rhd"
    rec = interop.read_recording(path)
    assert rec.get_num_channels() == 32 and rec.get_num_samples() == 40320 and rec.get_sampling_frequency() == 20000
    assert np.array_equal(rec.get_traces(start_frame=100, end_frame=200),
                          blechrs.io.open_recording(path).read(range(32), 100, 200).T)


def test_sorting_analyzer_templates_match_the_stored_waveforms(sorted_folder, tmp_path):
    store = _store(paths.h5_path(sorted_folder))
    sorting = blechrs.to_spikeinterface(sorted_folder)
    # blechrs's preprocessing, redone with SpikeInterface's own: CAR per group, then band-pass.
    rec = interop.read_recording(sorted_folder)
    rec = si_pre.common_reference(rec, reference="global", operator="average")
    rec = si_pre.bandpass_filter(rec, freq_min=300.0, freq_max=3000.0)
    # SI's defaults: main channel from the sorting's main_channel_id, radius sparsity on the dummy probe.
    analyzer = si_core.create_sorting_analyzer(sorting, rec, format="binary_folder", folder=tmp_path / "analyzer")
    sparsity = analyzer.sparsity
    explicit = interop.unit_sparsity(sorting, rec)
    assert np.array_equal(sparsity.mask, explicit.mask)
    analyzer.compute("random_spikes", method="all")
    analyzer.compute("waveforms", ms_before=1.0, ms_after=1.5)
    analyzer.compute("templates", operators=["average"])
    templates = analyzer.get_extension("templates").get_data(operator="average")
    assert templates.shape == (len(store), 75, 4)
    # The analyzer's spikes are the store's, exactly.
    assert np.array_equal(np.sort(analyzer.sorting.to_spike_vector()["sample_index"]),
                          np.sort(np.concatenate([t for t, *_ in store.values()])))
    for k, (name, (times, electrode, *_, mean, _q)) in enumerate(store.items()):
        assert list(sparsity.unit_id_to_channel_indices[k]) == [electrode]
        ours = templates[k, :, electrode]
        r = np.corrcoef(ours, mean)[0, 1]
        assert r > 0.99, (name, r)  # measured: 0.998-0.9996
        assert abs(np.argmax(np.abs(ours)) - np.argmax(np.abs(mean))) <= 1, name
        assert 0.9 < np.abs(ours).max() / np.abs(mean).max() < 1.2, name  # measured: 1.01-1.07 (SI: 5th-order filter)
    loaded = si_core.load_sorting_analyzer(tmp_path / "analyzer")
    assert loaded.has_recording() and loaded.get_num_units() == len(store)
    assert np.allclose(loaded.get_extension("templates").get_data(operator="average"), templates)


def test_at_20_khz_from_one_rhd_file(tmp_path):
    """Another rate and Intan's one-file layout: the sorting is the store at 20 kHz, the recording
    is the .rhd file's samples, the analyzer's templates are 2.5 ms = 50 samples; a .params rate
    that is not the recording's is one clear error."""
    from blechrs.io.params_file import load_params, save_params
    from blechrs.simulate import Simulation

    d = tmp_path / "rec20"
    Simulation(seed=7, n_channels=2, duration_s=6.0, sampling_rate=20000.0).write(d, "traditional",
                                                                                  save_ground_truth=False)
    init_folder(d, max_clusters=3, num_restarts=2, cluster_count_threshold=10, max_autosort_clusters=4)
    pipeline.run(d, jobs=1, plots=False)
    store = _store(paths.h5_path(d))
    assert store
    sorting = blechrs.to_spikeinterface(d)
    assert sorting.get_sampling_frequency() == 20000.0 and sorting.has_recording()
    assert [f"unit{i:03d}" for i in sorting.unit_ids] == list(store)
    for uid, (times, electrode, *_) in zip(sorting.unit_ids, store.values()):
        assert np.array_equal(sorting.get_unit_spike_train(uid), np.sort(times))
        assert sorting.get_unit_property(uid, "main_channel_id") == f"A-{electrode:03d}"
    rhd = next(d.glob("*.rhd"))
    rec = interop.read_recording(d)
    assert rec.get_sampling_frequency() == 20000.0
    theirs = si_extractors.read_intan(rhd, stream_name="RHD2000 amplifier channel")  # neo's reading
    assert np.allclose(rec.get_traces(return_in_uV=True), theirs.get_traces(return_in_uV=True), atol=1e-3)
    analyzer = si_core.create_sorting_analyzer(sorting, rec, format="memory")
    analyzer.compute(["random_spikes", "waveforms", "templates"], extension_params={"waveforms": {"ms_before": 1.0, "ms_after": 1.5}})
    assert analyzer.get_extension("templates").get_data().shape == (len(store), 50, 2)
    params = paths.params_path(d)
    save_params(params, load_params(params).replace(sampling_rate=30000.0))
    with pytest.raises(PipelineError, match=r"rec20\.params: sampling_rate 30000 but the recording is "
                                                            r"sampled at 20000 Hz"):
        blechrs.to_spikeinterface(d)


def test_without_the_raw_files(sorted_folder, tmp_path):
    d = tmp_path / "rec"
    d.mkdir()
    for f in ("rec.h5", "rec.params", "rec_electrode_layout.csv", "rec.info"):
        shutil.copy(sorted_folder / f, d / f)
    with pytest.warns(UserWarning, match="without its recording"):
        sorting = blechrs.to_spikeinterface(d)
    assert not sorting.has_recording() and sorting.get_num_units() == len(_store(d / "rec.h5"))
    assert not blechrs.to_spikeinterface(d, recording=False).has_recording()
    with pytest.raises(RecordingError):
        blechrs.to_spikeinterface(d, recording=True)
    unit_store.write_units(d / "rec.h5", [])  # an empty store: an empty sorting
    empty = blechrs.to_spikeinterface(d, recording=False)
    assert empty.get_num_units() == 0 and empty.get_sampling_frequency() == 30000.0


def test_import_blechrs_does_not_import_spikeinterface_and_a_missing_extra_is_one_line(monkeypatch):
    code = "import sys, blechrs; assert callable(blechrs.to_spikeinterface); print('spikeinterface' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
    monkeypatch.setitem(sys.modules, "spikeinterface", None)
    monkeypatch.setitem(sys.modules, "spikeinterface.core", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'blechrs\[spikeinterface\]'") as err:
        blechrs.to_spikeinterface("anywhere")
    assert "\n" not in str(err.value)
