#!/usr/bin/env python
"""Cost of the matched-filter pass (``matched_filter_z``, issue 14 item 5) against the run without it,
in one script on one public set.

Steps, each timed: the engine's extraction of every wire (blechrs.kernels.extract_electrodes, one
CAR group), clustering + auto-sort of every wire (``pipeline.cluster_work``): together "the run
without it"; then the pass, split into the trace (referenced and band-passed again here: the
pipeline would keep the extraction's), the filters (core/matched_filter.py), the Rust kernel
(``kernels.matched_filter_detect``) and the rest (new windows, features, auto-sort again).
Ratios are of the run without the pass.

    python benchmarks/matched_filter_cost.py [--set s2_60] [--z 4.25] [--repeat 3]
Needs the `bench` extra (the public set's generator) like benchmarks/accuracy.py.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import accuracy as A  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", default="s2_60")
    ap.add_argument("--z", type=float, default=4.25)
    ap.add_argument("--repeat", type=int, default=3, help="kernel timings (the least is printed)")
    ap.add_argument("--data", default=os.environ.get("BENCH_DATA", str(A.REPO.parent / "bench_data")))
    args = ap.parse_args()
    import gtio

    from blechrs import kernels, pipeline
    from blechrs.core import matched_filter as M
    from blechrs.model import ElectrodeWork
    from blechrs.params import SortParams
    from blechrs.schemes.sort_electrode import matched_filter_work

    folder = A.ensure_set(args.set, args.data)
    meta = gtio.load_meta(folder)
    fs, nch = meta["fs"], meta["n_channels"]
    rec = np.memmap(Path(folder) / "recording.bin", dtype="<i2", mode="r").reshape(-1, nch)
    params = SortParams.from_flat(dict(matched_filter_z=args.z)).replace(sampling_rate=fs)
    t0 = time.perf_counter()
    per_wire = A.engine_extract(rec, params)
    t_extract = time.perf_counter() - t0
    t0 = time.perf_counter()
    works = []
    for c, (w, t, mad_val, noise) in enumerate(per_wire):
        work = ElectrodeWork(electrode=c, times=np.asarray(t, dtype=np.int64), waveforms=np.asarray(w, dtype=np.float32),
                             mad_val=float(mad_val), n_samples=rec.shape[0], cutoff_sample=rec.shape[0],
                             noise=np.asarray(noise, dtype=np.float64))
        works.append(pipeline.cluster_work(work, params))
    t_sort = time.perf_counter() - t0
    base = t_extract + t_sort

    t0 = time.perf_counter()
    x = A.traces(rec, params)
    t_trace = time.perf_counter() - t0
    # the filters, and the kernel alone on every wire (the least of --repeat runs)
    before, dur = params.extract.samples_before, rec.shape[0] / fs
    half = max(1, int(round(params.extract.dead_time_ms * fs / 1000.0)))
    t0 = time.perf_counter()
    calls = []
    for c, work in enumerate(works):
        labels = work.auto_labels()
        if not work.units or np.count_nonzero(labels >= 0) < M.MIN_UNIT_EVENTS:
            continue
        f, norm, _ = M.unit_filters(work.waveforms, labels)
        live = np.flatnonzero(np.abs(f).sum(axis=1) > 0)
        if len(live):
            calls.append((c, f[live], norm[live]))
    t_filters = time.perf_counter() - t0
    kernel = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        n_found = 0
        for c, f, norm in calls:
            t, _, _ = kernels.matched_filter_detect(x[c], f, before, [args.z] * len(f), norm.tolist(),
                                                    (-0.5 * norm ** 2).tolist(), half, params.run.n_jobs)
            n_found += len(t)
        kernel.append(time.perf_counter() - t0)
    t_kernel = min(kernel)
    t0 = time.perf_counter()
    n_new = 0
    for c, work in enumerate(works):
        n_new += matched_filter_work(work, x[c], params).n_events - work.n_events
    t_pass = time.perf_counter() - t0
    n_filters = sum(len(f) for _, f, _ in calls)
    print(f"{args.set}: {nch} wires x {rec.shape[0] / fs:.0f} s, {n_filters} unit filters (window "
          f"{per_wire[0][0].shape[1]}), z > {args.z}\n"
          f"  run without the pass: {base:.1f} s (extract {t_extract:.1f}, cluster + auto-sort {t_sort:.1f})\n"
          f"  pass: {t_trace + t_pass:.1f} s = {(t_trace + t_pass) / base:.2f} x the run without it\n"
          f"    trace again (reference + band-pass) {t_trace:.2f} s ({t_trace / base:.2f} x)\n"
          f"    filters {t_filters:.2f} s; Rust kernel alone {t_kernel:.2f} s ({t_kernel / base:.3f} x; "
          f"{t_kernel / (nch * rec.shape[0] / fs) * 1e3:.2f} ms per wire-second; {n_found} detections)\n"
          f"    whole pass (filters, kernel, new windows, features, auto-sort again) {t_pass:.1f} s "
          f"({t_pass / base:.2f} x; {n_new} events added)", flush=True)


if __name__ == "__main__":
    main()
