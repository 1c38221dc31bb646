"""The engine's CPU-dependent kernels on fixed inputs, saved to an .npz: what tests/engine/
test_cpu_paths.py runs once per ``BLECHRS_SIMD`` setting (each in its own interpreter, since the
engine reads it once), and scripts/check_cpu_baseline.sh on an emulated CPU without AVX.

``python -m support.cpu_paths OUT.npz [IN.npy]`` (with tests/ and the package on PYTHONPATH): IN is
the recording (float64 channels x samples), :func:`recording` when not given. Pass one made on
the same machine to compare CPUs: numpy's own sin and exp take CPU-dependent loops too."""

import sys

import numpy as np

from blechrs import _native, kernels
from blechrs.params import SortParams

FS = 30000.0


def recording():
    """12 channels x 3 s: shared noise, own noise, hum, offset, spikes well above the noise."""
    rng = np.random.default_rng(7)
    n = 90001
    common = rng.normal(size=n) * 40
    x = np.empty((12, n))
    t = np.arange(60)
    tpl = -900 * np.exp(-(((t - 20) / 3.0) ** 2)) + 300 * np.exp(-(((t - 34) / 8.0) ** 2))
    for c in range(12):
        x[c] = common + rng.normal(size=n) * 30 + 400 * np.sin(np.arange(n) * 2 * np.pi * 60 / FS) + 1500
        for s in np.sort(rng.choice(np.arange(300, n - 300, 300), size=60, replace=False)):
            x[c, s : s + len(t)] += tpl
    return x


def run_kernels(x, out):
    """Every kernel whose loops depend on the CPU, on ``x`` (float64 channels x samples)."""
    x16 = np.round(x).astype(np.int16)
    res = {"level": np.array(_native.simd_level())}
    # 12 channels: a full group of 8 SIMD lanes and a group of 4, float32, int16 and float64 inputs
    res["bp16"] = kernels.bandpass(x16, FS, scale=0.195)
    res["bp32"] = kernels.bandpass(x.astype(np.float32), FS)
    res["bp64"] = kernels.bandpass(x[:3], 20000.0, 400.0, 5000.0, order=3)
    y = res["bp16"]
    res["noise"] = kernels.noise_level(y, FS, window_s=1.0)
    times, pol = kernels.detect_spikes(y[0], 5 * res["noise"][0], FS, window_s=1.0)
    res["det_t"], res["det_p"] = times, pol
    for rolling in (True, False):
        p = SortParams().replace(sampling_rate=FS, rolling_threshold_window=1.0, waveform_threshold=5.0,
                                 use_rolling_threshold=rolling, use_car=True)
        got = kernels.extract_electrodes(x16, list(range(12)), [0] * 8 + [1] * 4, p.extract, threads=2)
        for g in got:
            for k in ("times", "polarity", "waveforms", "times_subsample", "noise", "mad_val", "threshold"):
                res[f"ex{int(rolling)}_{g['electrode']}_{k}"] = np.asarray(g[k])
    np.savez(out, **res)


if __name__ == "__main__":
    run_kernels(np.load(sys.argv[2]) if len(sys.argv) > 2 else recording(), sys.argv[1])
