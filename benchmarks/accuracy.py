#!/usr/bin/env python
"""Ground-truth accuracy of blechrs's sorting against the shared public sets (../shared/bench).

Generates (or reuses) the public ground-truth recordings with ../shared/bench/make_gt.py into
$BENCH_DATA, sorts every wire, and scores the units with the shared scorer (spikeinterface's
compare_sorter_to_ground_truth, 0.4 ms window). Prints one table row per set, with the split by
how many units share a wire, and the peers' figures from ../shared/spec/peers.md beside it.

Modes (``--extract``):
- ``pipeline`` (default): ``blechrs run DIR/intan --no-plots --force`` on the Intan one-file-per-
  channel folder (the product, end to end: CAR, engine extraction, features, clustering, auto-sort,
  unit store), then the units are read back from the unit store and scored.
- ``engine``: blechrs.kernels.extract_electrodes on the flat binary, then blechrs.core in-process.
- ``scipy``: a reference extraction (filtfilt Butterworth 2 x 300-3000 Hz, threshold
  waveform_threshold x MAD/0.6745, extremum of each crossing, 0.5 ms dead time, the engine's
  parabola + Catmull-Rom sub-sample alignment), then blechrs.core in-process.

``--peers tdc2,ms5`` also runs Tridesclous2 and MountainSort5 (the shared bench's configurations)
on the same data in the same run; ``--ceiling`` prints what the template classifier reaches when
started from the true labels.

    python benchmarks/accuracy.py [--sets s2_60,s1_60] [--extract pipeline|engine|scipy] [--peers tdc2,ms5] [--json out.json]
Needs the `bench` extra (spikeinterface, mountainsort5) and scipy.
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
    """One wire: (waveforms uV n x L, times int64, mad_val, [noise]) the way blech_clust extracts them."""
    from scipy.signal import butter, filtfilt

    b, a = butter(params.extract.bandpass_order, [params.extract.bandpass_lower_cutoff, params.extract.bandpass_upper_cutoff],
                  btype="bandpass", fs=fs)
    x = filtfilt(b, a, x_int16.astype(np.float64) * 0.195)
    mad_val = float(np.median(np.abs(x - np.median(x))))
    thr = params.extract.waveform_threshold * mad_val / 0.6745
    before, after = params.extract.samples_before, params.extract.samples_after
    above = np.abs(x) > thr
    onsets = np.flatnonzero(above[1:] & ~above[:-1]) + 1
    dead = int(round(params.extract.dead_time_ms * fs / 1000.0))
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
    if not params.extract.align_subsample or len(times) == 0:
        idx = times[:, None] + np.arange(-before, after)[None, :]
        w = x[idx] if len(times) else np.zeros((0, before + after))
        return w.astype(np.float32), times, mad_val, np.array([mad_val / 0.6745])
    w = aligned_windows(x, times, before, after)
    return w.astype(np.float32), times, mad_val, np.array([mad_val / 0.6745])


def aligned_windows(x, times, before, after):
    """Windows of x around the extrema at ``times``, aligned the engine's way: parabola vertex
    through the extremum, Catmull-Rom resampling."""
    a, b0, c = x[times - 1], x[times], x[times + 1]
    d = a - 2 * b0 + c
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.where(d != 0, np.clip(0.5 * (a - c) / d, -0.5, 0.5), 0.0)
    base = np.where(delta >= 0, times, times - 1)
    f = np.where(delta >= 0, delta, 1 + delta)[:, None]
    i = base[:, None] + np.arange(-before, after)[None, :]
    p0, p1, p2, p3 = x[i - 1], x[i], x[i + 1], x[i + 2]
    return p1 + 0.5 * f * (p2 - p0 + f * (2 * p0 - 5 * p1 + 4 * p2 - p3 + f * (3 * (p1 - p2) + p3 - p0)))


def true_labels(t, units, gt, window):
    """The ground-truth unit of each event time in ``t`` (-1: no spike of ``units`` within
    ``window`` samples)."""
    label = np.full(len(t), -1)
    for u in units:
        s = gt["spike_times"][gt["spike_units"] == u]
        j = np.searchsorted(s, t)
        for jj in (j - 1, j):
            ok = (jj >= 0) & (jj < len(s))
            d = np.full(len(t), 10**12)
            d[ok] = np.abs(s[jj[ok]] - t[ok])
            label[d <= window] = u
    return label


def engine_extract(rec, params):
    """The engine's streaming extraction (blechrs.kernels.extract_electrodes); with use_car the
    32 wires form one common-average group (as one Intan port would)."""
    from blechrs import kernels

    groups = [0 if params.extract.use_car else -1] * rec.shape[1]
    out = kernels.extract_electrodes(rec.T, list(range(rec.shape[1])), groups, params.extract,
                                     threads=params.run.n_jobs)
    return [(o["waveforms"], o["times"], o["mad_val"], o["noise"]) for o in out]


def traces(rec, params):
    """Each wire's referenced, band-passed trace (channels x samples, uV), as the engine filters
    it (for the matched-filter pass, ``matched_filter_z``)."""
    from blechrs import kernels

    x = np.ascontiguousarray(np.asarray(rec).T)
    e = params.extract
    if e.use_car:
        x, _ = kernels.common_average_reference(x, [0] * x.shape[0])
    return kernels.bandpass(x, e.sampling_rate, e.bandpass_lower_cutoff, e.bandpass_upper_cutoff,
                            e.bandpass_order, scale=kernels.MICROVOLTS_PER_BIT)


def pipeline_set(folder, jobs=None, over=None):
    """``blechrs run`` on the set's Intan folder (``over``: flat parameters written into its
    .params first); (times, labels, unit_channel, timing)."""
    from blechrs.io import paths

    d = Path(folder) / "intan"
    # the benchmark measures blechrs's current defaults: drop the .params an earlier run's init wrote
    (d / f"{d.name}.params").unlink(missing_ok=True)
    if over:
        from blechrs import pipeline
        from blechrs.io.params_file import load_params, save_params

        pipeline.init(d)
        save_params(paths.params_path(d), load_params(paths.params_path(d)).replace(**over))
    cmd = [sys.executable, "-m", "blechrs.cli", "run", str(d), "--no-plots", "--force", "-q"]
    if jobs:
        cmd += ["-j", str(jobs)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    import tables

    all_times, all_labels, channel = [], [], []
    with tables.open_file(str(paths.h5_path(d)), "r") as f:
        if "/sorted_units" in f:
            for g in sorted(f.list_nodes("/sorted_units"), key=lambda g: g._v_name):
                t = g.times[:]
                all_times.append(t)
                all_labels.append(np.full(len(t), len(channel)))
                channel.append(int(g.unit_metadata[0]["electrode_number"]))
    times = np.concatenate(all_times) if all_times else np.zeros(0, np.int64)
    labels = np.concatenate(all_labels) if all_labels else np.zeros(0, np.int64)
    order = np.argsort(times, kind="stable")
    return times[order], labels[order], np.array(channel), dict(pipeline_s=wall)


def sort_set(folder, params, extract="scipy", progress=True):
    """Extract (engine or the scipy reference) then the pipeline's own per-electrode clustering and
    auto-sort (``schemes.sort_electrode.cluster_work``, the function ``blechrs run`` applies)."""
    from blechrs import pipeline
    from blechrs.model import ElectrodeWork
    import gtio

    meta = gtio.load_meta(folder)
    fs, nch = meta["fs"], meta["n_channels"]
    rec = np.memmap(Path(folder) / "recording.bin", dtype="<i2", mode="r").reshape(-1, nch)
    t0 = time.perf_counter()
    if extract == "engine":
        per_wire = engine_extract(rec, params)
    else:
        per_wire = [scipy_extract(np.asarray(rec[:, c]), fs, params) for c in range(nch)]
    t_extract = time.perf_counter() - t0
    spike_times, spike_labels, unit_channel = [], [], []
    t_sort = t_mf = 0.0
    x = traces(rec, params) if params.autosort.matched_filter_z > 0 else None
    for c, wire in enumerate(per_wire):
        w, t, mad_val = wire[:3]
        work = ElectrodeWork(electrode=c, times=np.asarray(t, dtype=np.int64), waveforms=np.asarray(w, dtype=np.float32),
                             mad_val=float(mad_val), n_samples=rec.shape[0], cutoff_sample=rec.shape[0],
                             noise=np.asarray(wire[3], dtype=np.float64) if len(wire) > 3 else None)
        a = time.perf_counter()
        work = pipeline.cluster_work(work, params)
        if x is not None:
            from blechrs.schemes.sort_electrode import matched_filter_work

            b = time.perf_counter()
            work = matched_filter_work(work, x[c], params)
            t_mf += time.perf_counter() - b
        t_sort += time.perf_counter() - a
        labels = work.auto_labels()
        for k in range(len(work.units)):
            ev = labels == k
            spike_times.append(work.times[ev])
            spike_labels.append(np.full(int(ev.sum()), len(unit_channel)))
            unit_channel.append(c)
        if progress:
            print(f"  wire {c:2d}: {len(t):6d} events -> {len(work.units)} units", flush=True)
    times = np.concatenate(spike_times) if spike_times else np.zeros(0, np.int64)
    labels = np.concatenate(spike_labels) if spike_labels else np.zeros(0, np.int64)
    order = np.argsort(times, kind="stable")
    timing = dict(extract_s=t_extract, sort_s=t_sort)
    if x is not None:
        timing["matched_filter_s"] = t_mf
    return times[order], labels[order], np.asarray(unit_channel), timing


def supervised_ceiling(folder, per_wire, params):
    """What the template classifier reaches when it starts from the TRUE labels: each detected
    event gets the unit of the ground-truth spike within 0.4 ms, then ``core.assign_templates``'s
    assignment (templates, noise model, noise class) re-decides every event, as auto-sort does
    from the clustering's units. Returns (detection-only accuracies, classifier accuracies), one
    per ground-truth unit, and the units-per-wire of each."""
    import gtio
    from blechrs.core.assign_templates import assign_to_templates

    gt = gtio.load_gt_arrays(folder)
    meta = gtio.load_meta(folder)
    window = int(round(0.4e-3 * meta["fs"]))
    duration = meta["n_samples"] / meta["fs"]
    from sklearn.decomposition import PCA
    from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis
    from sklearn.model_selection import cross_val_predict

    det, clf, qda, per = [], [], [], []
    n_on_wire = np.bincount(gt["unit_channel"], minlength=len(per_wire))
    for c, (w, t, *_) in enumerate(per_wire):
        units = [u for u in range(len(gt["unit_ids"])) if gt["unit_channel"][u] == c]
        if not units:
            continue
        label = true_labels(t, units, gt, window)
        start = np.full(len(t), -1)
        for k, u in enumerate(units):
            start[label == u] = k
        got = assign_to_templates(w, start, meta["fs"], duration,
                                  amplitude_model=params.autosort.amplitude_model) if len(t) else None
        # too few events for the noise model: the true labels stand (as auto-sort's do)
        pred = label if got is None else np.where(got >= 0, np.asarray(units)[np.maximum(got, 0)], -1)
        try:
            pred_qda = cross_val_predict(QuadraticDiscriminantAnalysis(reg_param=1e-3),
                                         PCA(5, random_state=0).fit_transform(w), label, cv=2)
        except ValueError:  # too few events of a class for two folds
            pred_qda = label
        for u in units:
            n = np.count_nonzero(gt["spike_units"] == u)
            det.append(np.count_nonzero(label == u) / n)
            for out, p in ((clf, pred), (qda, pred_qda)):
                tp = np.count_nonzero((p == u) & (label == u))
                fp = np.count_nonzero((p == u) & (label != u))
                out.append(tp / (n + fp))
            per.append(n_on_wire[c])
    return np.array(det), np.array(clf), np.array(qda), np.array(per)


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


def run_peer(key, folder):
    """One peer sorter on the set's flat binary, through the shared bench's run_peers.py (its own
    subprocess, one thread; wall time, peak RSS and the same scorer)."""
    import tempfile
    from types import SimpleNamespace

    import run_peers

    with tempfile.TemporaryDirectory(prefix=f"peer_{key}_") as work:
        return run_peers.run_one(key, SimpleNamespace(data=str(folder), threads=1, source="binary"), work)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="s2_60,s1_60")
    ap.add_argument("--extract", default="pipeline", choices=["pipeline", "engine", "scipy"])
    ap.add_argument("--jobs", type=int, default=None, help="pipeline worker processes")
    ap.add_argument("--data", default=os.environ.get("BENCH_DATA", str(REPO.parent / "bench_data")))
    ap.add_argument("--json", default=None)
    ap.add_argument("--param", action="append", default=[], help="KEY=VALUE SortParams override (JSON value)")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--peers", default="",
                    help="also run these peers on the same data in this run, e.g. tdc2,ms5 (the shared "
                         "bench's run_peers.py configurations; needs the bench extra)")
    ap.add_argument("--ceiling", action="store_true",
                    help="also print the supervised ceiling (engine extraction + template classifier "
                         "started from the true labels)")
    args = ap.parse_args()
    from blechrs.params import SortParams

    over = {k: json.loads(v) for k, v in (p.split("=", 1) for p in args.param)}
    params = SortParams.from_flat(over) if over else SortParams()
    rows = {}
    for key in args.sets.split(","):
        folder = ensure_set(key, args.data)
        t0 = time.perf_counter()
        if args.extract == "pipeline":
            times, labels, unit_channel, timing = pipeline_set(folder, args.jobs, over)
        else:
            times, labels, unit_channel, timing = sort_set(folder, params, args.extract, not args.quiet)
        wall = time.perf_counter() - t0
        r = score(folder, times, labels)
        r.update(timing, wall_s=wall)
        rows[key] = r
        sp = " | ".join(f"{k}/wire: {v['n']}, {v['well']}, {v['mean']:.2f}" for k, v in r["split"].items())
        stages = ", ".join(f"{k[:-2]} {v:.1f}" for k, v in timing.items())
        print(f"{key} [{args.extract}]: well {r['well_detected']}/{r['n_gt_units']}  mean acc "
              f"{r['mean_accuracy']:.3f}  prec {r['mean_precision']:.3f} rec {r['mean_recall']:.3f}  sorted "
              f"{r['n_sorted_units']}  FP {r['false_positive_units']}  wall {wall:.1f} s ({stages})\n"
              f"    split (units, well, mean acc): {sp}\n    peers: {PEERS[key]}", flush=True)
        for peer in filter(None, args.peers.split(",")):
            rows.setdefault("peers", {})[f"{key}/{peer}"] = r_peer = run_peer(peer, folder)
            if r_peer.get("status") != "ok":
                print(f"    {peer}: failed ({r_peer.get('error_tail', '')[-300:]})", flush=True)
                continue
            print(f"    {peer} (same run, 1 thread): well {r_peer['well_detected']}/{r_peer['n_gt_units']}  "
                  f"mean acc {r_peer['mean_accuracy']:.3f}  prec {r_peer['mean_precision']:.3f} rec "
                  f"{r_peer['mean_recall']:.3f}  sorted {r_peer['n_sorted_units']}  FP "
                  f"{r_peer['false_positive_units']}  wall {r_peer['sorter_wall_s']:.1f} s  peak RSS "
                  f"{r_peer['peak_rss_mb']:.0f} MB", flush=True)
        if args.ceiling:
            import gtio

            meta = gtio.load_meta(folder)
            rec = np.memmap(Path(folder) / "recording.bin", dtype="<i2", mode="r").reshape(-1, meta["n_channels"])
            det, clf, qda, per = supervised_ceiling(folder, engine_extract(rec, params), params)
            split = " | ".join(f"{k}/wire: {np.sum(per == k)}, {np.sum(clf[per == k] >= 0.8)}, "
                               f"{clf[per == k].mean():.2f}" for k in np.unique(per))
            print(f"    ceiling: detection only {np.sum(det >= 0.8)}/{len(det)} (mean {det.mean():.3f}); "
                  f"template classifier from the true labels {np.sum(clf >= 0.8)}/{len(clf)} "
                  f"(mean {clf.mean():.3f}); {split}; quadratic discriminant (cross-validated) "
                  f"{np.sum(qda >= 0.8)}/{len(qda)} (mean {qda.mean():.3f})", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=float))


if __name__ == "__main__":
    main()
