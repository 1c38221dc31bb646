"""Work files of long electrodes: waveforms memory-mapped from the .npz instead of read, and
written back a chunk at a time. Against numpy's own np.load / np.savez, and the sort of a mapped
electrode against the same sort in memory."""

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from blechrs.core.rows import rows
from blechrs.io import work_files
from blechrs.mapped import mapping
from blechrs.model import ElectrodeWork
from blechrs.params import SortParams
from blechrs.schemes.sort_electrode import cluster_work


def _work(n=30000, seed=0):
    rng = np.random.default_rng(seed)
    times = np.sort(rng.choice(600 * 30000, n, replace=False)).astype(np.int64)
    shape = -np.exp(-0.5 * ((np.arange(75) - 30) / 4.0) ** 2)
    size = rng.choice([40.0, 90.0, 150.0], n)
    w = (size[:, None] * shape[None, :] + rng.normal(0, 8.0, (n, 75))).astype(np.float32)
    return ElectrodeWork(electrode=3, times=times, times_subsample=times.astype(np.float64),
                         polarity=np.full(n, -1, np.int8), waveforms=w, noise=np.array([8.0]),
                         threshold=40.0, mad_val=8.0 * 0.6745, cutoff_sample=600 * 30000, n_samples=600 * 30000,
                         n_events=n, sampling_rate=30000.0, stage="extracted")


def test_mapped_waveforms_read_as_numpy_reads_them(tmp_path):
    path = tmp_path / "electrode03.npz"
    work_files.save_electrode(path, _work())
    with np.load(path) as z:
        expected = {k: z[k] for k in z.files}
    mapped = work_files.load_electrode(path, map_waveforms=True)
    assert mapping(mapped.waveforms) is not None
    assert mapped.waveforms.dtype == expected["waveforms"].dtype
    assert np.array_equal(np.asarray(mapped.waveforms), expected["waveforms"])
    assert np.array_equal(mapped.times, expected["times"])
    # rows of the map, a chunk at a time, are numpy's rows
    idx = np.random.default_rng(1).choice(len(mapped.times), 20000, replace=False)
    assert np.array_equal(rows(mapped.waveforms, idx), expected["waveforms"][idx].astype(np.float64))
    assert np.array_equal(rows(mapped.waveforms[:, 30]), expected["waveforms"][:, 30].astype(np.float64))
    assert np.array_equal(rows(mapped.waveforms, slice(5, 17000)), expected["waveforms"][5:17000].astype(np.float64))


def test_saving_a_mapped_work_writes_what_np_savez_writes(tmp_path):
    path = tmp_path / "electrode03.npz"
    work = _work()
    work_files.save_electrode(path, work)
    mapped = work_files.load_electrode(path, map_waveforms=True)
    again = tmp_path / "again.npz"
    work_files.save_electrode(again, mapped)
    arrays, meta = work_files.to_file_contents(work)
    reference = tmp_path / "reference.npz"
    import json
    arrays["__meta__"] = np.array(json.dumps(meta, sort_keys=True))
    np.savez(reference, **arrays)
    with np.load(again) as a, np.load(reference) as b:
        assert sorted(a.files) == sorted(b.files)
        for k in b.files:
            assert np.array_equal(a[k], b[k]), k
            assert a[k].dtype == b[k].dtype, k
    # overwriting the file it is mapped from (atomic rename: the map keeps the old file)
    work_files.save_electrode(path, mapped)
    with np.load(path) as a:
        assert np.array_equal(a["waveforms"], work.waveforms)


def test_a_mapped_electrode_sorts_as_in_memory(tmp_path):
    params = SortParams()
    params = dataclasses.replace(params, autosort=dataclasses.replace(params.autosort, max_refine_events=8000))
    path = tmp_path / "electrode03.npz"
    work_files.save_electrode(path, _work())
    in_memory = cluster_work(work_files.load_electrode(path), params)
    mapped = cluster_work(work_files.load_electrode(path, map_waveforms=True), params)
    assert in_memory.units and [u.record() for u in mapped.units] == [u.record() for u in in_memory.units]
    assert np.array_equal(mapped.features, in_memory.features)
    assert sorted(mapped.solutions) == sorted(in_memory.solutions)
    for k, sol in in_memory.solutions.items():
        assert np.array_equal(mapped.solutions[k].labels, sol.labels), k
    assert np.array_equal(mapped.auto_labels(), in_memory.auto_labels())


def test_reading_a_mapped_electrode_does_not_hold_its_pages(tmp_path):
    # A child process reads every row of a 120 MB mapped waveform array through core.rows: its
    # peak memory (VmHWM, file pages included) grows by far less than the file.
    path = tmp_path / "electrode03.npz"
    n = 400_000
    w = np.lib.format.open_memmap(tmp_path / "w.npy", mode="w+", dtype=np.float32, shape=(n, 75))
    for a in range(0, n, 50_000):
        w[a:a + 50_000] = np.random.default_rng(a).normal(0, 10, (50_000, 75))
    w.flush()
    work = _work(1000)
    work = dataclasses.replace(work, waveforms=np.load(tmp_path / "w.npy", mmap_mode="r"),
                               times=np.arange(n, dtype=np.int64), n_events=n)
    work = dataclasses.replace(work, times_subsample=None, polarity=None)
    work_files.save_electrode(path, work)
    code = textwrap.dedent(f"""
        import numpy as np
        from blechrs.io import work_files
        from blechrs.core.rows import rows, mean_rows
        def hwm():
            for line in open("/proc/self/status"):
                if line.startswith("VmHWM"):
                    return int(line.split()[1]) / 1024
        before = hwm()
        work = work_files.load_electrode({str(path)!r}, map_waveforms=True)
        m = mean_rows(work.waveforms)
        col = rows(work.waveforms[:, 30])
        work_files.save_electrode({str(tmp_path / 'copy.npz')!r}, work)
        print(hwm() - before, float(m[0]))
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    grown, first = out.stdout.split()
    assert abs(float(first) - float(np.load(tmp_path / "w.npy", mmap_mode="r")[:, 0].astype(np.float64).mean())) < 1e-9
    size_mb = n * 75 * 4 / 2**20
    assert float(grown) < 0.3 * size_mb, (grown, size_mb)
    print(f"peak growth {float(grown):.0f} MB reading a {size_mb:.0f} MB mapped array")
    with np.load(tmp_path / "copy.npz") as z:
        assert np.array_equal(z["waveforms"][::997], np.load(tmp_path / "w.npy")[::997])
