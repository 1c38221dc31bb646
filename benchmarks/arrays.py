"""Spike-train arrays and unit QA: 64 units x 120 trials (4 tastes x 30), 40 min at 30 kHz.

Prints blechrs' time against a straightforward numpy reference run in the same script
(per trial and unit: boolean mask + bincount), checks both give the same arrays, then times the
whole directory step (make_arrays: trial table, compressed HDF5 write, atomic store replace) and
the similarity matrix. Run: python benchmarks/arrays.py  (OMP_NUM_THREADS=1 for a quiet machine)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from blechrs.pipeline.trial_arrays import make_arrays  # noqa: E402
from blechrs.params import SortParams  # noqa: E402
from blechrs.pipeline.unit_qa import unit_qa  # noqa: E402
from blechrs.quality.similarity import unit_similarity  # noqa: E402
from blechrs.trials.spike_arrays import spike_array  # noqa: E402

FS = 30000.0
SECONDS = 2400
N_UNITS, N_TASTES, PER_TASTE = 64, 4, 30
PRE, POST = 2000, 5000


def data(seed: int = 0):
    rng = np.random.default_rng(seed)
    n = int(SECONDS * FS)
    rates = rng.uniform(1.0, 30.0, N_UNITS)
    units = [np.sort(rng.choice(n, int(r * SECONDS), replace=False)).astype(np.int64) for r in rates]
    onsets = np.sort(rng.choice(np.arange(int(10 * FS), n - int(10 * FS), int(15 * FS)), N_TASTES * PER_TASTE, replace=False))
    which = rng.permutation(np.repeat(np.arange(N_TASTES), PER_TASTE))
    dig = {f"dig_in_{k:02d}": (onsets[which == k], onsets[which == k] + 300) for k in range(N_TASTES)}
    return units, dig, n


def reference(units, onsets):
    pre, post, spb = PRE * 30, POST * 30, 30
    out = np.zeros((len(onsets), len(units), PRE + POST), dtype=np.int64)
    for k, s in enumerate(onsets):
        for u, t in enumerate(units):
            sel = t[(t >= s - pre) & (t < s + post)]
            out[k, u] = np.bincount((sel - s + pre) // spb, minlength=PRE + POST)
    return out


def best(f, repeat=3):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = f()
        times.append(time.perf_counter() - t0)
    return min(times), r


def main() -> None:
    units, dig, n = data()
    print(f"{N_UNITS} units ({sum(map(len, units)):,} spikes), {N_TASTES * PER_TASTE} trials, "
          f"[-{PRE}, +{POST}) ms in 1 ms bins, {SECONDS} s at 30 kHz")
    t_ours, ours = best(lambda: [spike_array(units, on, FS) for on, _ in dig.values()])
    t_ref, ref = best(lambda: [reference(units, on) for on, _ in dig.values()], repeat=1)
    for a, b in zip(ours, ref):
        assert np.array_equal(a.astype(np.int64), b), "blechrs and the reference differ"
    print(f"spike arrays (compute): blechrs {t_ours:.3f} s, numpy reference {t_ref:.3f} s, "
          f"ratio {t_ref / t_ours:.1f}x faster; identical")

    from arrays_helpers import fake_recording, write_store

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "bench_arrays_230101_120000"
        d.mkdir()
        write_store(d / f"{d.name}.h5", units, n_wave=2)  # times are what matters; waveforms kept tiny
        size = (d / f"{d.name}.h5").stat().st_size
        rec = fake_recording(dig, n)
        t_dir, res = best(lambda: make_arrays(d, SortParams(), recording=rec), repeat=3)
        out = (d / f"{d.name}.h5").stat().st_size
        print(f"make_arrays (trial table + HDF5 write + atomic replace of a {size / 1e6:.0f} MB store): "
              f"{t_dir:.3f} s; store now {out / 1e6:.0f} MB, {res.n_trials} trials")
        t0 = time.perf_counter()
        qa = unit_qa(d, SortParams(), pictures=False)
        t_qa = time.perf_counter() - t0
        t0 = time.perf_counter()
        unit_qa(d, SortParams())
        t_pic = time.perf_counter() - t0 - t_qa
        print(f"unit_qa whole step (similarity, drift, JSON, /unit_distances): {t_qa:.3f} s "
              f"({len(qa.violations)} similar pairs, {len(qa.drifting)} drifting); "
              f"+ {N_UNITS} pictures {t_pic:.2f} s ({t_pic / N_UNITS:.3f} s each)")
    t_sim, sim = best(lambda: unit_similarity(units, FS, 1.0), repeat=1)
    k = 16  # the pairwise reference is slow: compare on the first 16 units
    t_sim16, sim16 = best(lambda: unit_similarity(units[:k], FS, 1.0), repeat=1)
    t_ref16, ref16 = best(lambda: similarity_reference(units[:k], 30), repeat=1)
    assert np.array_equal(np.nan_to_num(sim16, nan=-1), np.nan_to_num(ref16, nan=-1)), "similarity differs"
    assert np.array_equal(np.nan_to_num(sim[:k, :k], nan=-1), np.nan_to_num(ref16, nan=-1))
    print(f"unit similarity: {N_UNITS} units {t_sim:.3f} s; {k} units blechrs {t_sim16:.3f} s, pairwise "
          f"searchsorted reference {t_ref16:.3f} s, ratio {t_ref16 / t_sim16:.1f}x faster; identical")


def similarity_reference(units, w):
    out = np.full((len(units), len(units)), np.nan)
    for i, ti in enumerate(units):
        for j, tj in enumerate(units):
            if i != j:
                near = np.searchsorted(tj, ti + w, side="right") > np.searchsorted(tj, ti - w, side="left")
                out[i, j] = 100.0 * np.count_nonzero(near) / len(ti)
    return out


if __name__ == "__main__":
    main()
