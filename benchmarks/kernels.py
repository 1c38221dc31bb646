"""Engine benchmark: blechrs kernels against the scipy/numpy path blech_clust uses.

    python benchmarks/kernels.py                 # 32 ch x 60 s int16 at 30 kHz: speed ratios
    python benchmarks/kernels.py --memory        # peak RSS of a 32 ch x 1 h int16 file, streamed
    python benchmarks/kernels.py --car           # the CAR references (reference_method): cost ratios

The reference is blech_clust HEAD's per-electrode work (spec 4.1-4.5): x * 0.195 in float64,
scipy filtfilt(butter(2, [300, 3000])), truncation to whole seconds, 5 s rolling median/MAD
thresholds, crossing runs -> one extremum per run, 81-sample snippets cropped to 75 by the
dejitter step. It is vectorised numpy (stronger than blech_clust's Python loops), so the ratios
are conservative. blechrs runs kernels.extract_electrodes (band-pass + cutoff + rolling threshold
+ detection + aligned waveforms) on 1 thread and on all cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

FS = 30000.0


def make_recording(nch=32, seconds=60.0, fs=FS, seed=0):
    rng = np.random.default_rng(seed)
    n = int(seconds * fs)
    x = (rng.standard_normal((nch, n), dtype=np.float32) * 50).astype(np.int16)
    t = np.arange(int(2e-3 * fs))
    tpl = (-600 * np.exp(-(((t - 15) / 3.0) ** 2)) + 200 * np.exp(-(((t - 26) / 6.0) ** 2))).astype(np.int16)
    for c in range(nch):
        starts = rng.choice(n - len(t), size=int(10 * seconds), replace=False)  # ~10 Hz per channel
        for s in starts:
            x[c, s : s + len(t)] += tpl
    return x


def blech_reference(x, fs=FS):
    """blech_clust HEAD's per-electrode extraction, one electrode after another (as its workers)."""
    import scipy.signal as ss

    b, a = ss.butter(2, [2.0 * 300 / fs, 2.0 * 3000 / fs], "bandpass")
    w = int(5 * fs)
    nb, na = int((1.0 + 0.1) * fs / 1000), int((1.5 + 0.1) * fs / 1000)
    B, A = int(1.0 * fs / 1000), int(1.5 * fs / 1000)
    total = 0
    for ch in x:
        filt = ss.filtfilt(b, a, ch * 0.195)
        filt = filt[: int(fs) * int(len(filt) / fs)]
        neg, pos = [], []
        for s in range(0, len(filt), w):
            seg = filt[s : s + w]
            m = np.median(seg) if len(seg) == w else np.mean(seg)
            th = 5 * np.median(np.abs(seg - m)) / 0.6745
            neg.append(np.flatnonzero(seg <= m - th) + s)
            pos.append(np.flatnonzero(seg >= m + th) + s)
        times, pols = [], []
        for inds, sign in ((np.concatenate(neg), -1), (np.concatenate(pos), 1)):
            if len(inds) == 0:
                continue
            runs = np.split(inds, np.flatnonzero(np.diff(inds) > 1) + 1)
            for r in runs:
                times.append(r[np.argmin(filt[r])] if sign < 0 else r[np.argmax(filt[r])])
                pols.append(sign)
        times = np.array(times)
        pols = np.array(pols)
        ok = (times - nb > 0) & (times + na < len(filt))
        times, pols = times[ok], pols[ok]
        snippets = filt[times[:, None] + np.arange(-nb, na)]
        # dejitter_abu3: minimum of the sign-flipped snippet in [B+1.5, L-A-1.5), crop to B+A
        flipped = snippets * -pols[:, None]
        lo, hi = int(B + 1.5), int(snippets.shape[1] - A - 1.5)
        centre = np.argmin(flipped[:, lo:hi], axis=1) + lo
        idx = centre[:, None] - B + np.arange(B + A)
        wf = np.take_along_axis(snippets, idx, axis=1)
        order = np.argsort(times)
        total += len(wf[order])
    return total


def blechrs_run(x, threads):
    from blechrs import kernels
    from blechrs.params import SortParams

    # blech_clust's 5 x noise, as the reference (blechrs's own default detects at 4 x noise)
    p = SortParams().replace(sampling_rate=FS, use_car=False, waveform_threshold=5.0).extract
    res = kernels.extract_electrodes(x, list(range(x.shape[0])), [-1] * x.shape[0], p, threads=threads)
    return sum(len(r["times"]) for r in res)


CPU = {}


def best_of(f, reps, label=None):
    """Best wall-clock time of `reps` runs (CPU seconds of that run kept in CPU[label])."""
    best = np.inf
    out = None
    for _ in range(reps):
        c = time.process_time()
        t = time.perf_counter()
        out = f()
        dt = time.perf_counter() - t
        if dt < best:
            best = dt
            if label:
                CPU[label] = time.process_time() - c
    return best, out


def speed(args):
    import scipy.signal as ss

    from blechrs import kernels
    from blechrs.params import SortParams

    x = make_recording(args.channels, args.seconds)
    cores = os.cpu_count() or 1
    print(f"recording: {x.shape[0]} channels x {x.shape[1]} samples int16 ({args.seconds:g} s at 30 kHz), {cores} cores")

    # band-pass alone: scipy filtfilt float64 vs kernels.bandpass (float32 out)
    b, a = ss.butter(2, [300, 3000], "bandpass", fs=FS)
    t_sp, _ = best_of(lambda: [ss.filtfilt(b, a, ch * 0.195) for ch in x], 1)
    os.environ["BLECHRS_THREADS"] = "1"
    t_b1, _ = best_of(lambda: kernels.bandpass(x, FS, scale=0.195), args.reps)
    os.environ["BLECHRS_THREADS"] = "0"
    t_bn, _ = best_of(lambda: kernels.bandpass(x, FS, scale=0.195), args.reps)
    print(f"band-pass   scipy filtfilt {t_sp:7.3f} s | blechrs 1 thread {t_b1:6.3f} s ({t_sp / t_b1:5.1f}x)"
          f" | {cores} threads {t_bn:6.3f} s ({t_sp / t_bn:5.1f}x, {t_b1 / t_bn:.2f}x over 1 thread)")

    t_ref, n_ref = best_of(lambda: blech_reference(x), 1, "ref")
    t_1, n_1 = best_of(lambda: blechrs_run(x, 1), args.reps, "one")
    t_n, n_n = best_of(lambda: blechrs_run(x, 0), args.reps, "all")
    print(f"extraction  blech_clust path {t_ref:7.3f} s ({n_ref} events) | blechrs 1 thread {t_1:6.3f} s"
          f" ({t_ref / t_1:5.1f}x) | {cores} threads {t_n:6.3f} s ({t_ref / t_n:5.1f}x, {t_1 / t_n:.2f}x over 1 thread)"
          f" ({n_n} events)")
    print(f"            CPU seconds: blech_clust path {CPU['ref']:.3f} | blechrs 1 thread {CPU['one']:.3f}"
          f" ({CPU['ref'] / CPU['one']:.1f}x less CPU) | {cores} threads {CPU['all']:.3f}")
    load = os.getloadavg()[0]
    print(f"load average during the run: {load:.1f} on {cores} cores"
          + ("  (shared machine: wall-clock ratios and thread scaling are distorted)" if load > cores else ""))

    car_methods(x, args.reps, cores)


def car_methods(x, reps, cores):
    """Extraction with each CAR reference (``reference_method``; groups of 16) against the mean
    and against no CAR, 1 thread and all; the reference kernel alone (whole array) too."""
    from blechrs import kernels
    from blechrs.params import SortParams

    groups = [c // 16 for c in range(x.shape[0])]

    def run(threads, **kw):
        p = SortParams().replace(sampling_rate=FS, waveform_threshold=5.0, **kw).extract
        return kernels.extract_electrodes(x, list(range(x.shape[0])), groups, p, threads=threads)

    base = {t: best_of(lambda: run(t, use_car=False), reps)[0] for t in (1, 0)}
    mean = {t: best_of(lambda: run(t), reps)[0] for t in (1, 0)}
    print(f"no CAR      blechrs 1 thread {base[1]:6.3f} s | {cores} threads {base[0]:6.3f} s")
    print(f"with CAR    blechrs 1 thread {mean[1]:6.3f} s | {cores} threads {mean[0]:6.3f} s"
          f" (CAR is not in the reference; blech_clust runs it as a separate full pass)")
    os.environ["BLECHRS_THREADS"] = "0"
    k_mean, _ = best_of(lambda: kernels.common_average_reference(x, groups, "mean"), reps)
    for m in ("median", "clipped_mean"):
        t = {n: best_of(lambda: run(n, reference_method=m), reps)[0] for n in (1, 0)}
        k, _ = best_of(lambda: kernels.common_average_reference(x, groups, m), reps)
        print(f"CAR {m:12s} 1 thread {t[1]:6.3f} s ({t[1] / mean[1]:.2f}x the mean's, {t[1] / base[1]:.2f}x no CAR)"
              f" | {cores} threads {t[0]:6.3f} s ({t[0] / mean[0]:.2f}x, {t[0] / base[0]:.2f}x)"
              f" | reference kernel alone {k:.3f} s ({k / k_mean:.2f}x the mean's {k_mean:.3f} s)")
    print(f"load average: {os.getloadavg()[0]:.1f} on {cores} cores")


def write_interleaved(path: Path, nch: int, minutes: float):
    block = make_recording(nch, 60.0)
    frames = block.T.copy()  # samples x channels = interleaved
    with open(path, "wb") as f:
        whole, rest = int(minutes), minutes - int(minutes)
        for _ in range(whole):
            frames.tofile(f)
        if rest > 0:
            frames[: int(rest * 60 * FS)].tofile(f)


def memory(args):
    path = Path(args.data_dir) / f"interleaved_{args.channels}ch_{args.minutes:g}min.dat"
    path.parent.mkdir(parents=True, exist_ok=True)
    size = int(args.minutes * 60 * FS) * args.channels * 2
    if not path.exists() or path.stat().st_size != size:
        print(f"writing {path} ({size / 1e9:.2f} GB) ...", flush=True)
        write_interleaved(path, args.channels, args.minutes)
    child = f"""
import resource, time
from blechrs import kernels
from blechrs.params import SortParams
src = kernels._native.interleaved_file_source({str(path)!r}, {args.channels})
p = SortParams().replace(sampling_rate={FS}).extract
t = time.perf_counter()
res = kernels.extract_electrodes(src, list(range({args.channels})), [c // 16 for c in range({args.channels})], p)
dt = time.perf_counter() - t
ev = sum(len(r['times']) for r in res)
wf = sum(r['waveforms'].nbytes for r in res)
print(f"{{dt:.1f}} {{ev}} {{wf}} {{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}")
"""
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True).stdout.split()
    dt, ev, wf, rss_kb = float(out[0]), int(out[1]), int(out[2]), int(out[3])
    print(f"{args.channels} ch x {args.minutes:g} min int16 file ({size / 1e9:.2f} GB), CAR + filter + detection +"
          f" waveforms, streamed: {dt:.1f} s, {ev} events ({wf / 1e6:.0f} MB of waveforms kept),"
          f" peak RSS {rss_kb / 1024:.0f} MB")
    if not args.keep:
        path.unlink()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--memory", action="store_true", help="measure peak RSS on a long interleaved file")
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parent.parent / "bench_data"))
    ap.add_argument("--keep", action="store_true", help="keep the generated file")
    ap.add_argument("--car", action="store_true", help="only the CAR references' cost (reference_method)")
    args = ap.parse_args()
    if args.car:
        car_methods(make_recording(args.channels, args.seconds), args.reps, os.cpu_count() or 1)
    else:
        memory(args) if args.memory else speed(args)


if __name__ == "__main__":
    main()
