"""The engine's loops for every CPU: the baseline x86-64 loops (what a CPU without AVX runs) and
the AVX/AVX2/FMA ones chosen at run time give the same results, and the baseline ones match scipy.

``BLECHRS_SIMD`` (read once per process, so each path runs in its own interpreter) narrows the
engine's run-time choice: ``off`` = the baseline loops, ``nofma`` = AVX2 without fused
multiply-adds, unset = everything the CPU has. A wheel built for baseline x86-64 therefore runs
on any x86-64 CPU; scripts/check_cpu_baseline.sh also runs these kernels on an emulated CPU
without AVX (qemu-x86_64 -cpu Nehalem). The kernels and inputs: support/cpu_paths.py.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.signal as ss

from support import cpu_paths, engine_reference as ref
from blechrs import _native
from blechrs.params import SortParams

FS = 30000.0


def run_kernels(tmp_path, simd):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    env.pop("BLECHRS_SIMD", None)
    if simd is not None:
        env["BLECHRS_SIMD"] = simd
    out = tmp_path / f"{simd or 'auto'}.npz"
    subprocess.run([sys.executable, "-m", "support.cpu_paths", str(out)], env=env, check=True, timeout=300)
    with np.load(out) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cpu_paths")
    return {s: run_kernels(tmp, s) for s in ("off", "nofma", None)}


def rel_err(y, r):
    return np.max(np.abs(y - r)) / np.sqrt(np.mean(r**2))


def test_levels(paths):
    assert str(paths["off"]["level"]) == "baseline"
    assert str(paths["nofma"]["level"]) in ("baseline", "avx", "avx2")
    assert str(paths[None]["level"]) == _native.simd_level()


def test_avx2_without_fma_is_the_baseline_to_the_bit(paths):
    """The AVX2 loops are the baseline code compiled for AVX2: identical arithmetic."""
    off, nofma = paths["off"], paths["nofma"]
    assert off.keys() == nofma.keys()
    for k in off:
        if k != "level":
            np.testing.assert_array_equal(nofma[k], off[k], err_msg=k)


def test_fma_differs_only_by_rounding(paths):
    """FMA rounds once instead of twice in the filter recursions: filtered samples agree within
    the filter's own accuracy (its float32 recursions: ~3e-5 of the RMS here, the bound the scipy
    tests use is 1e-4), and the events, waveforms and thresholds found on them agree."""
    off, auto = paths["off"], paths[None]
    assert off.keys() == auto.keys()
    for k in ("bp16", "bp32", "bp64"):
        assert rel_err(auto[k], off[k]) <= 1e-4, k
    np.testing.assert_allclose(auto["noise"], off["noise"], rtol=1e-4)
    for k in off:
        if k.endswith(("_times", "_polarity")) or k in ("det_t", "det_p"):
            np.testing.assert_array_equal(auto[k], off[k], err_msg=k)
        elif k.endswith(("_waveforms", "_times_subsample", "_noise", "_mad_val", "_threshold")):
            scale = max(1.0, float(np.abs(off[k]).max())) if off[k].size else 1.0
            np.testing.assert_allclose(auto[k], off[k], rtol=1e-4, atol=1e-4 * scale, err_msg=k)


def test_baseline_matches_scipy(paths):
    """The loops a CPU without AVX runs, against scipy (the independent reference)."""
    off = paths["off"]
    x = cpu_paths.recording()
    x16 = np.round(x).astype(np.int16)
    b, a = ss.butter(2, [300, 3000], "bandpass", fs=FS)
    assert rel_err(off["bp16"], ss.filtfilt(b, a, x16 * 0.195, axis=-1)) <= 1e-4
    assert rel_err(off["bp32"], ss.filtfilt(b, a, x.astype(np.float32).astype(np.float64), axis=-1)) <= 1e-4
    b3, a3 = ss.butter(3, [400, 5000], "bandpass", fs=20000.0)
    assert rel_err(off["bp64"], ss.filtfilt(b3, a3, x[:3], axis=-1)) <= 1e-4
    for rolling in (True, False):
        p = SortParams().replace(sampling_rate=FS, rolling_threshold_window=1.0, waveform_threshold=5.0,
                                 use_rolling_threshold=rolling, use_car=True)
        exp = ref.pipeline(x16, FS, p.to_flat(), list(range(12)), [0] * 8 + [1] * 4)
        for e in exp:
            pre = f"ex{int(rolling)}_{e['electrode']}_"
            np.testing.assert_array_equal(off[pre + "times"], e["times"])
            np.testing.assert_array_equal(off[pre + "polarity"], e["polarity"])
            scale = max(1.0, float(np.abs(e["waveforms"]).max())) if len(e["waveforms"]) else 1.0
            np.testing.assert_allclose(off[pre + "waveforms"], e["waveforms"], atol=1e-4 * scale)
            np.testing.assert_allclose(off[pre + "noise"], e["noise"], rtol=1e-4)
