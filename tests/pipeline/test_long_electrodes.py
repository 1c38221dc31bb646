"""A run whose electrodes are longer than ``max_refine_events``: their waveforms stay in the work
files (memory-mapped, read a block at a time) from clustering to the unit store. Checked with
numpy and PyTables against the work files (the sort itself: tests/schemes/test_autosort_long.py)."""

import numpy as np
import pytest
import tables

from blechrs import pipeline
from blechrs.io import paths, work_files
from support.sorting_reference import init_folder, simulated_folder, use_reference_engine


@pytest.fixture(scope="module")
def long_folder(tmp_path_factory):
    directory = tmp_path_factory.mktemp("long") / "exp_long_230101_120000"
    directory.mkdir()
    simulated_folder(directory, seed=3, n_channels=4, duration_s=20.0)
    init_folder(directory, max_clusters=4, num_restarts=2, cluster_count_threshold=10, max_autosort_clusters=6,
                max_refine_events=1000)
    with pytest.MonkeyPatch.context() as mp:
        use_reference_engine(mp)
        pipeline.run(directory, jobs=1, plots=True)
    return directory


def test_long_electrodes_store_their_units_waveforms_as_the_work_files_hold_them(long_folder):
    counts = []
    with tables.open_file(str(paths.h5_path(long_folder))) as h5:
        descriptor = h5.root.unit_descriptor.read()
        assert len(descriptor)
        for number, row in enumerate(descriptor):
            g = h5.get_node(f"/sorted_units/unit{number:03d}")
            assert g.waveforms.filters.complevel == 0 and g.waveforms.chunkshape is None  # plain, contiguous
            with np.load(paths.electrode_path(long_folder, int(row["electrode_number"]))) as z:
                times, waveforms = z["times"], z["waveforms"]
            counts.append(len(times))
            idx = np.searchsorted(times, g.times.read())
            assert np.array_equal(times[idx], g.times.read())
            assert np.array_equal(waveforms[idx], g.waveforms.read())
    assert max(counts) > 1000  # the electrodes were long ones


def test_long_electrodes_work_files_keep_their_events(long_folder):
    for e in pipeline.folder.sorted_electrodes(long_folder):
        path = paths.electrode_path(long_folder, e)
        work = work_files.load_electrode(path)
        mapped = work_files.load_electrode(path, map_waveforms=True)
        assert np.array_equal(np.asarray(mapped.waveforms), work.waveforms)
        assert len(work.waveforms) == len(work.times) == work.n_events
        if work.units:
            assert 1 in work.solutions and work.solutions[1].kind == "templates"


def test_long_electrodes_unit_pictures_come_from_the_work_files(long_folder):
    from blechrs.figures.canvas import picture_info
    from blechrs.io import unit_store
    from blechrs.pipeline import pictures

    units = unit_store.read_units(paths.h5_path(long_folder), waveforms=False)
    root = paths.plot_dir(long_folder)
    assert units
    for u in units:  # drawn, and of the unit the store holds now
        assert picture_info(root / "units" / f"{u.name}.png")[pictures.UNIT_KEY] == pictures.unit_identity(u)
    # a store whose spikes are no longer the work file's events: a clear error, not a wrong picture
    work = work_files.load_electrode(paths.electrode_path(long_folder, units[0].electrode))
    moved = units[0]
    moved.times = moved.times + 1
    with pytest.raises(Exception, match="not electrode .* events any more"):
        pictures.unit_rows(work, moved)
