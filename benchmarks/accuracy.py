#!/usr/bin/env python
"""Ground-truth accuracy of blechrs's sorting against the shared public sets (../shared/bench).

Generates (or reuses) the public ground-truth recordings with ../shared/bench/make_gt.py into
$BENCH_DATA, sorts every wire, and scores the units with the shared scorer (spikeinterface's
compare_sorter_to_ground_truth, 0.4 ms window). Prints one table row per set, with the split by
how many units share a wire, and the peers' figures from ../shared/spec/peers.md beside it.

Extraction: ``--extract scipy`` (default until the whole pipeline runs on Intan folders) filters
the flat binary with scipy (filtfilt, Butterworth 2 x 300-3000 Hz), thresholds at
waveform_threshold x MAD/0.6745, takes the extremum of each crossing with a 0.5 ms dead time and cuts
75-sample windows (extremum at 30); ``--extract engine`` uses blechrs.kernels.extract_electrodes.
Clustering and auto-sort are always blechrs's own (blechrs.core).

    python benchmarks/accuracy.py [--sets s2_60,s1_60] [--extract scipy|engine] [--json out.json]
Needs the `bench` extra (spikeinterface) and scipy.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BLECHRS_SHARED", REPO.parent / "shared"))
BENCH = SHARED / "bench"
sys.path.insert(0, str(BENCH))

SETS = {
    "s2_60": dict(seed=2, duration=60, extra=["--min-snr-ratio", "1.3"], name="gt_s2_d60_c32_sep1.3"),
    "s1_60": dict(seed=1, duration=60, extra=[], name="gt_s1_d60_c32"),
    "s1_600": dict(seed=1, duration=600, extra=[], name="gt_s1_d600_c32"),
}

#: peers.md figures: (well, n, mean acc, FP units) of the best peer (Tridesclous2) and blech_clust.
PEERS = {
    "s2_60": "TDC2 21/65 0.38 FP 0; blech_clust 17/65 0.37 FP 25",
    "s1_60": "TDC2 11/66 0.28 FP 1; blech_clust 8/66 0.27 FP 30",
    "s1_600": "TDC2 12/66 0.29 FP 1; blech_clust 7/66 0.28 FP 17",
}


def ensure_set(key, data_dir):
    spec = SETS[key]
    out = Path(data_dir) / spec["name"]
    if (out / "gt.npz").exists():
        return out
    cmd = [sys.executable, str(BENCH / "make_gt.py"), "--seed", str(spec["seed"]), "--duration",
           str(spec["duration"]), *spec["extra"], "--name", spec["name"], "--formats", "binary,intan",
           "--out", str(data_dir), "--no-verify"]
    print("generating:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return out


def scipy_extract(x_int16, fs, params):
    """One wire: (waveforms uV n x L, times int64, mad_val) the way blech_clust extracts them."""
    from scipy.signal import butter, filtfilt

    b, a = butter(params.bandpass_order, [params.bandpass_lower_cutoff, params.bandpass_upper_cutoff],
                  btype="bandpass", fs=fs)
    x = filtfilt(b, a, x_int16.astype(np.float64) * 0.195)
    mad_val = float(np.median(np.abs(x - np.median(x))))
    thr = params.waveform_threshold * mad_val / 0.6745
    before, after = params.samples_before, params.samples_after
    above = np.abs(x) > thr
    onsets = np.flatnonzero(above[1:] & ~above[:-1]) + 1
    dead = int(round(params.dead_time_ms * fs / 1000.0))
    search = dead  # extremum within the dead time after the crossing
    times = []
    last = -10**12
    for o in onsets:
        if o - last <= dead:
            continue
        seg = np.abs(x[o:o + search + 1])
        p = o + int(np.argmax(seg))
        if p - last <= dead:
            continue
        times.append(p)
        last = p
    times = np.asarray(times, dtype=np.int64)
    times = times[(times >= before + 2) & (times + after + 2 <= len(x))]
    if not params.align_subsample or len(times) == 0:
        idx = times[:, None] + np.arange(-before, after)[None, :]
        w = x[idx] if len(times) else np.zeros((0, before + after))
        return w.astype(np.float32), times, mad_val
    # the engine's alignment: parabola vertex through the extremum, Catmull-Rom resampling
    a, b0, c = x[times - 1], x[times], x[times + 1]
    d = a - 2 * b0 + c
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.where(d != 0, np.clip(0.5 * (a - c) / d, -0.5, 0.5), 0.0)
    base = np.where(delta >= 0, times, times - 1)
    f = np.where(delta >= 0, delta, 1 + delta)[:, None]
    i = base[:, None] + np.arange(-before, after)[None, :]
    p0, p1, p2, p3 = x[i - 1], x[i], x[i + 1], x[i + 2]
    w = p1 + 0.5 * f * (p2 - p0 + f * (2 * p0 - 5 * p1 + 4 * p2 - p3 + f * (3 * (p1 - p2) + p3 - p0)))
    return w.astype(np.float32), times, mad_val


def engine_extract(rec, params):
    from blechrs import kernels

    out = kernels.extract_electrodes(np.ascontiguousarray(rec.T), list(range(rec.shape[1])),
                                     [0] * rec.shape[1], params.to_dict())
    return [(o["waveforms"], o["times"], o["mad_val"]) for o in out]


def sort_set(folder, params, extract="scipy", progress=True):
    from blechrs.core import autosort_electrode, cluster_electrode, compute_features
    import gtio

    meta = gtio.load_meta(folder)
    fs, nch = meta["fs"], meta["n_channels"]
    rec = np.memmap(Path(folder) / "recording.bin", dtype="<i2", mode="r").reshape(-1, nch)
    duration = rec.shape[0] / fs
    t0 = time.perf_counter()
    if extract == "engine":
        per_wire = engine_extract(rec, params)
    else:
        per_wire = [scipy_extract(np.asarray(rec[:, c]), fs, params) for c in range(nch)]
    t_extract = time.perf_counter() - t0
    spike_times, spike_labels, unit_channel = [], [], []
    t_feat = t_clust = t_auto = 0.0
    for c, (w, t, mad_val) in enumerate(per_wire):
        a = time.perf_counter()
        f = compute_features(w, params)
        b = time.perf_counter()
        sols = cluster_electrode(f, params)
        d = time.perf_counter()
        units = autosort_electrode(w, t, f, sols, params, fs, mad_val, duration_s=duration)
        e = time.perf_counter()
        t_feat += b - a
        t_clust += d - b
        t_auto += e - d
        for u in units:
            ev = np.isin(sols[u.solution].labels, u.clusters)
            spike_times.append(t[ev])
            spike_labels.append(np.full(int(ev.sum()), len(unit_channel)))
            unit_channel.append(c)
        if progress:
            print(f"  wire {c:2d}: {len(t):6d} events -> {len(units)} units", flush=True)
    times = np.concatenate(spike_times) if spike_times else np.zeros(0, np.int64)
    labels = np.concatenate(spike_labels) if spike_labels else np.zeros(0, np.int64)
    order = np.argsort(times, kind="stable")
    timing = dict(extract_s=t_extract, features_s=t_feat, cluster_s=t_clust, autosort_s=t_auto)
    return times[order], labels[order], np.asarray(unit_channel), timing


def score(folder, times, labels):
    import evaluate
    import gtio

    meta = gtio.load_meta(folder)
    gt = gtio.load_gt_arrays(folder)
    r = evaluate.evaluate(folder, evaluate.sorting_from_arrays(times, labels, meta["fs"]))
    per = r["per_unit"]
    ids = list(gt["unit_ids"])
    n_on_wire = np.bincount(gt["unit_channel"], minlength=meta["n_channels"])
    split = {}
    for uid, acc in zip(per["unit_id"], per["accuracy"]):
        k = int(n_on_wire[gt["unit_channel"][ids.index(uid)]])
        split.setdefault(k, []).append(acc)
    r["split"] = {k: dict(n=len(v), well=int(np.sum(np.array(v) >= 0.8)), mean=float(np.mean(v)))
                  for k, v in sorted(split.items())}
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="s2_60,s1_60")
    ap.add_argument("--extract", default="scipy", choices=["scipy", "engine"])
    ap.add_argument("--data", default=os.environ.get("BENCH_DATA", str(REPO.parent / "bench_data")))
    ap.add_argument("--json", default=None)
    ap.add_argument("--param", action="append", default=[], help="KEY=VALUE SortParams override (JSON value)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    from blechrs.params import SortParams

    over = {k: json.loads(v) for k, v in (p.split("=", 1) for p in args.param)}
    params = SortParams.from_dict(over) if over else SortParams()
    rows = {}
    for key in args.sets.split(","):
        folder = ensure_set(key, args.data)
        t0 = time.perf_counter()
        times, labels, unit_channel, timing = sort_set(folder, params, args.extract, not args.quiet)
        wall = time.perf_counter() - t0
        r = score(folder, times, labels)
        r.update(timing, wall_s=wall)
        rows[key] = r
        sp = " | ".join(f"{k}/wire: {v['n']}, {v['well']}, {v['mean']:.2f}" for k, v in r["split"].items())
        print(f"{key}: well {r['well_detected']}/{r['n_gt_units']}  mean acc {r['mean_accuracy']:.3f}  "
              f"prec {r['mean_precision']:.3f} rec {r['mean_recall']:.3f}  sorted {r['n_sorted_units']}  "
              f"FP {r['false_positive_units']}  wall {wall:.1f} s (extract {timing['extract_s']:.1f}, "
              f"cluster {timing['cluster_s']:.1f}, autosort {timing['autosort_s']:.1f})\n    split: {sp}\n"
              f"    peers: {PEERS[key]}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=float))


if __name__ == "__main__":
    main()
