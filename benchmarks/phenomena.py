#!/usr/bin/env python
"""Accuracy with issue 14's simulated phenomena, each alone and together, with the true-label
ceiling beside the sorter.

Each set is a ``blechrs.simulate`` recording (seed, channels, seconds below) with one phenomenon
switched on: ``clean``, ``bursts`` (half the units burst), ``drift`` (half drift +-10-20 %),
``background`` (4 small distant units per wire, 2.5-4.5 x noise), ``all`` (the three together);
and, only when asked (``--sets target``), ``target``: the three with 8 uV common-mode noise and
20 uV mains hum, the set issue 14's targets name.
The engine extracts every wire (blechrs.kernels.extract_electrodes, one CAR group as the pipeline
does), then each wire is sorted in-process with the pipeline's own per-electrode function
(``pipeline.cluster_work``) under SortParams (``--param KEY=VALUE`` overrides), and scored against
the ground truth's neurons (background units are noise to find, not units) with
blechrs.simulate.scoring (0.4 ms, units on the same wire).

Printed per set: well-detected (accuracy >= 0.8) / neurons, mean accuracy, the mean on
single-unit wires and on bursting / drifting units, sorted units, units matching no neuron; and
the ceiling: detection only (events within 0.4 ms of a true spike) and the template classifier
(core.assign_templates) started from the TRUE labels.

    python benchmarks/phenomena.py [--sets clean,bursts,drift,background,all] [--seed 3]
        [--channels 16] [--seconds 120] [--sampling-rate 30000] [--param matched_filter_z=4.25] [--param amplitude_model='"mixture"']
        [--param burst_merge=true] [--json out.json] [--tdc2-python PY]

``--tdc2-python PY`` also runs Tridesclous2 (spikeinterface's defaults, one thread, wires 1 mm
apart so each is sorted on its own, as blechrs does) with that python on the same recording; each
of its units belongs to the wire of its template's extremum, and it is scored like the sorter
(the issue's "at least 2x Tridesclous2 well detected").

With ``matched_filter_z`` each wire's trace is referenced and band-passed again here (the engine's
kernels) for the matched-filter pass, whose time is printed apart. The ceiling uses the sorter's
``amplitude_model``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import accuracy as A  # noqa: E402

SETS = {
    "clean": {},
    "bursts": dict(burst_fraction=0.5),
    "drift": dict(drift_fraction=0.5),
    "background": dict(background_units_per_wire=4),
    "all": dict(burst_fraction=0.5, drift_fraction=0.5, background_units_per_wire=4),
    # issue 14's target set: the three with common-mode noise and mains hum on the one CAR group
    "target": dict(burst_fraction=0.5, drift_fraction=0.5, background_units_per_wire=4, common_noise_uv=8.0,
                   hum_uv=20.0),
}
DEFAULT_SETS = "clean,bursts,drift,background,all"


def simulate(key, seed, channels, seconds, sampling_rate=30000.0):
    from blechrs.simulate import Phenomena, Simulation

    sim = Simulation(seed=seed, n_channels=channels, duration_s=seconds, n_digital_inputs=0,
                     phenomena=Phenomena(**SETS[key]), sampling_rate=sampling_rate)
    rec = sim.chunk(0, sim.n_samples)
    return sim, sim.ground_truth(), rec


def sort_wires(per_wire, n_samples, params, rec=None):
    """Each wire sorted by the pipeline's per-electrode function (then, with matched_filter_z, the
    matched-filter pass on its trace); {name: times}, {name: wire}; seconds in the matched filter."""
    from blechrs import pipeline
    from blechrs.model import ElectrodeWork
    from blechrs.schemes.sort_electrode import matched_filter_work

    times, wires = {}, {}
    x = A.traces(rec, params) if params.autosort.matched_filter_z > 0 else None
    t_mf = 0.0
    for c, (w, t, mad_val, noise) in enumerate(per_wire):
        work = ElectrodeWork(electrode=c, times=np.asarray(t, dtype=np.int64), waveforms=np.asarray(w, dtype=np.float32),
                             mad_val=float(mad_val), n_samples=n_samples, cutoff_sample=n_samples,
                             noise=np.asarray(noise, dtype=np.float64))
        work = pipeline.cluster_work(work, params)
        if x is not None:
            t0 = time.perf_counter()
            work = matched_filter_work(work, x[c], params)
            t_mf += time.perf_counter() - t0
        labels = work.auto_labels()
        for k in range(len(work.units)):
            times[f"{c}:{k}"] = work.times[labels == k]
            wires[f"{c}:{k}"] = c
    return times, wires, t_mf


def ceiling(per_wire, gt, fs, duration, amplitude_model="gaussian"):
    """Per neuron: detection-only accuracy and the template classifier's from the true labels
    (background units' spikes count as noise events)."""
    from blechrs.core.assign_templates import assign_to_templates

    window = int(round(0.4e-3 * fs))
    det, clf = np.zeros(gt.n_units), np.zeros(gt.n_units)
    flat = dict(spike_times=np.concatenate(gt.spike_times),
                spike_units=np.concatenate([np.full(len(t), u) for u, t in enumerate(gt.spike_times)]))
    order = np.argsort(flat["spike_times"], kind="stable")
    flat = {k: v[order] for k, v in flat.items()}
    for c, (w, t, *_) in enumerate(per_wire):
        units = [u for u in range(gt.n_units) if gt.unit_channel[u] == c]
        if not units:
            continue
        label = A.true_labels(np.asarray(t), units, flat, window)
        start = np.full(len(t), -1)
        for k, u in enumerate(units):
            start[label == u] = k
        got = assign_to_templates(np.asarray(w), start, fs, duration,
                                  amplitude_model=amplitude_model) if len(t) else None
        pred = label if got is None else np.where(got >= 0, np.asarray(units)[np.maximum(got, 0)], -1)
        for u in units:
            n = len(gt.spike_times[u])
            det[u] = np.count_nonzero(label == u) / n
            tp = np.count_nonzero((pred == u) & (label == u))
            clf[u] = tp / (n + np.count_nonzero((pred == u) & (label != u)))
    return det, clf


def summary(acc, gt, single):
    out = dict(well=int(np.sum(acc >= 0.8)), n=len(acc), mean=float(acc.mean()),
               single=float(acc[single].mean()) if single.any() else float("nan"))
    for name, m in (("bursting", gt.unit_bursting), ("drifting", gt.unit_drift != 0)):
        m = np.asarray(m, dtype=bool)
        out[name] = float(acc[m].mean()) if m.any() else float("nan")
    return out


def fmt(s):
    return (f"well {s['well']}/{s['n']} mean {s['mean']:.3f} single-wire {s['single']:.3f} "
            f"bursting {s['bursting']:.3f} drifting {s['drifting']:.3f}")


TDC2 = r"""
import sys, json, numpy as np
import spikeinterface.core as si, spikeinterface.sorters as ss
n_channels = int(sys.argv[4])
rec = si.read_binary(sys.argv[1], sampling_frequency=float(sys.argv[3]), dtype="int16", num_channels=n_channels,
                     gain_to_uV=0.195, offset_to_uV=0.0)
rec.set_dummy_probe_from_locations(np.c_[np.arange(n_channels) * 1000.0, np.zeros(n_channels)])
si.set_global_job_kwargs(n_jobs=1, progress_bar=False)
s = ss.run_sorter("tridesclous2", rec, folder=sys.argv[2] + "/sorter", remove_existing_folder=True, verbose=False,
                  job_kwargs=dict(n_jobs=1, progress_bar=False))
a = si.create_sorting_analyzer(s, rec, sparse=False, format="memory")
a.compute(["random_spikes", "templates"])
chan = si.get_template_extremum_channel(a, outputs="index")
out = {str(u): dict(times=s.get_unit_spike_train(u).tolist(), wire=int(chan[u])) for u in s.unit_ids}
open(sys.argv[2] + "/units.json", "w").write(json.dumps(out))
"""


def tridesclous2(python, rec, fs):
    """Tridesclous2's units on ``rec`` (samples x channels int16): {name: times}, {name: wire}, seconds."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="tdc2_") as work:
        np.ascontiguousarray(rec, dtype="<i2").tofile(f"{work}/rec.dat")  # samples x channels
        t0 = time.perf_counter()
        r = subprocess.run([python, "-c", TDC2, f"{work}/rec.dat", work, str(fs), str(rec.shape[1])],
                           capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError(f"Tridesclous2 failed: {r.stderr[-2000:]}")
        units = json.loads(Path(f"{work}/units.json").read_text())
    return ({k: np.asarray(v["times"], dtype=np.int64) for k, v in units.items()},
            {k: v["wire"] for k, v in units.items()}, wall)


def run_set(key, args, params):
    from blechrs.simulate.scoring import score_sorting

    sim, gt_all, rec = simulate(key, args.seed, args.channels, args.seconds, args.sampling_rate)
    gt = gt_all.neurons()
    fs, duration = gt.sampling_rate, gt.n_samples / gt.sampling_rate
    p = params.replace(sampling_rate=fs)
    t0 = time.perf_counter()
    per_wire = A.engine_extract(rec, p)
    t_ex = time.perf_counter() - t0
    t0 = time.perf_counter()
    sorted_times, sorted_wires, t_mf = sort_wires(per_wire, gt.n_samples, p, rec)
    t_sort = time.perf_counter() - t0
    scores, unmatched = score_sorting(gt.spike_times, gt.unit_channel, sorted_times, fs,
                                      sorted_channels=sorted_wires)
    acc = np.array([s.accuracy for s in scores])
    single = np.bincount(gt.unit_channel, minlength=args.channels)[gt.unit_channel] == 1
    det, clf = ceiling(per_wire, gt, fs, duration, p.autosort.amplitude_model)
    row = dict(sorter=summary(acc, gt, single), sorted=len(sorted_times), unmatched=len(unmatched),
               detection=summary(det, gt, single), ceiling=summary(clf, gt, single),
               extract_s=t_ex, sort_s=t_sort, matched_filter_s=t_mf, per_unit=acc.tolist(), ceiling_per_unit=clf.tolist())
    print(f"{key}: {fmt(row['sorter'])}  sorted {row['sorted']} unmatched {row['unmatched']} "
          f"(extract {t_ex:.1f} s, sort {t_sort:.1f} s, of which matched filter {t_mf:.1f} s)\n"
          f"    ceiling (true labels): {fmt(row['ceiling'])}\n"
          f"    detection only:        {fmt(row['detection'])}", flush=True)
    if args.tdc2_python:
        t_times, t_wires, t_wall = tridesclous2(args.tdc2_python, rec, fs)
        t_scores, t_unmatched = score_sorting(gt.spike_times, gt.unit_channel, t_times, fs, sorted_channels=t_wires)
        t_acc = np.array([s.accuracy for s in t_scores])
        row["tdc2"] = dict(summary(t_acc, gt, single), sorted=len(t_times), unmatched=len(t_unmatched), wall_s=t_wall)
        print(f"    Tridesclous2:          {fmt(row['tdc2'])}  sorted {len(t_times)} unmatched {len(t_unmatched)} "
              f"({t_wall:.1f} s); blechrs / Tridesclous2 well detected: "
              f"{row['sorter']['well'] / max(row['tdc2']['well'], 1):.2f}x", flush=True)
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default=DEFAULT_SETS, help=f"of {','.join(SETS)}")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--sampling-rate", type=float, default=30000.0, help="Hz (the simulation's and the sort's)")
    ap.add_argument("--param", action="append", default=[], help="KEY=VALUE SortParams override (JSON value)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--tdc2-python", default=None, help="also run Tridesclous2 with this python")
    args = ap.parse_args()
    from blechrs.params import SortParams

    over = {k: json.loads(v) for k, v in (p.split("=", 1) for p in args.param)}
    params = SortParams.from_flat(over) if over else SortParams()
    rows = {key: run_set(key, args, params) for key in args.sets.split(",")}
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
