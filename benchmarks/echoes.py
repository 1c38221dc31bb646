#!/usr/bin/env python
"""Reference echoes: how many units blechrs stores that are a large unit's inverted copy put on
another wire by the common reference, per CAR reference (``reference_method``), with and without
auto-sort's reference-echo check, on simulated recordings (blechrs.simulate's phenomena: CAR
groups of 4 to 32 wires, very large units up to 60 x noise).

For each CAR group size and method: ``blechrs run --no-plots`` on the simulated Intan folder,
then, scored against the ground truth (0.4 ms):
- echo units: stored units more than half of whose spikes coincide (0.4 ms) with a ground-truth
  unit on another wire of the CAR group (the issue's "units whose spikes are mostly another
  wire's unit");
- empty-wire units: stored units on a wire that has no neuron;
- well-detected neurons (accuracy >= 0.8) and the mean accuracy over the neurons.
"removed": the units the reference-echo check took out (QA_output/reference_echoes.csv), of them
echoes and on empty wires by the same definitions (before the check: add them back).

    python benchmarks/echoes.py [--groups 4,8,16,32] [--methods mean,median,clipped_mean]
        [--channels 32] [--seconds 60] [--seeds 1] [--large 60,30] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from blechrs import pipeline
from blechrs.io import paths, unit_store, work_files
from blechrs.io.params_file import load_params, save_params
from blechrs.simulate import Phenomena, Simulation
from blechrs.simulate.scoring import count_matches, score_sorting

WINDOW_MS = 0.4


def shared_fraction(t, other, window):
    return count_matches(t, other, window) / len(t) if len(t) else 0.0


def measure(d: Path, gt, method: str, jobs: int) -> dict:
    pipeline.init(d)
    p = load_params(paths.params_path(d)).replace(reference_method=method)
    save_params(paths.params_path(d), p)
    t0 = time.perf_counter()
    pipeline.run(d, plots=False, jobs=jobs, force=True)
    seconds = time.perf_counter() - t0
    units = unit_store.read_units(paths.h5_path(d), waveforms=False)
    removed = [ln.split(",") for ln in paths.reference_echoes_path(d).read_text().splitlines()[1:]
               if ln.split(",")[4] == "removed"]
    fs = gt.sampling_rate
    window = int(round(WINDOW_MS * fs / 1000))
    neurons = gt.neurons()
    with_neuron = set(int(c) for c in neurons.unit_channel)
    group = gt.car_group

    def is_echo(t, wire):
        for k, tt in enumerate(gt.spike_times):
            c = int(gt.unit_channel[k])
            if c != wire and group[c] == group[wire] and shared_fraction(t, tt, window) > 0.5:
                return True
        return False

    echoes = sum(is_echo(u.times, u.electrode) for u in units)
    empty = sum(u.electrode not in with_neuron for u in units)
    scores, _ = score_sorting(neurons.spike_times, neurons.unit_channel, {u.name: u.times for u in units}, fs,
                              sorted_channels={u.name: u.electrode for u in units})
    acc = np.array([s.accuracy for s in scores])
    # the removed units, back from their work files: were they echoes? on empty wires?
    rm_echo = rm_empty = 0
    for r in removed:
        e, sol, label = int(r[0]), int(r[1]), r[2]
        work = work_files.load_electrode(paths.electrode_path(d, e), arrays=("times", "auto_labels"))
        u = next(u for u in work.units if u.solution == sol and u.label == label)
        rm_echo += is_echo(work.times[u.indices], e)
        rm_empty += e not in with_neuron
    return dict(method=method, units=len(units), echo_units=int(echoes), empty_wire_units=int(empty),
                removed=len(removed), removed_echoes=int(rm_echo), removed_on_empty_wires=rm_empty,
                well=int((acc >= 0.8).sum()), n_neurons=len(acc), mean_acc=float(acc.mean()) if len(acc) else 0.0,
                run_s=seconds)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", default="4,8,16,32")
    ap.add_argument("--methods", default="mean,median,clipped_mean")
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--seeds", default="1")
    ap.add_argument("--large", default="60,30", help="sizes (x noise) of the large units, one per CAR group")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--json", default=None)
    ap.add_argument("--tmp", default=None)
    args = ap.parse_args()
    rows = []
    sizes = [float(x) for x in args.large.split(",")]
    print(f"{'group':>5} {'seed':>4} {'method':>12} | {'units':>5} {'echo':>4} {'empty':>5} | removed (echo, empty)   |"
          f" well/neurons mean acc | s")
    for seed in [int(s) for s in args.seeds.split(",")]:
        for g in [int(x) for x in args.groups.split(",")]:
            # one large unit on the first wire of each of the first groups, sizes in turn
            large = tuple((k * g, sizes[k % len(sizes)]) for k in range(min(len(sizes), args.channels // g)))
            sim = Simulation(seed=seed, n_channels=args.channels, duration_s=args.seconds, max_units_per_channel=2,
                             phenomena=Phenomena(car_group_size=g, large_units=large))
            root = Path(tempfile.mkdtemp(prefix="echoes-", dir=args.tmp))
            try:
                src = root / "rec"
                gt = sim.write(src, layout="one file per channel")
                for m in args.methods.split(","):
                    d = root / f"rec_{m}"
                    shutil.copytree(src, d)
                    r = dict(group=g, seed=seed, channels=args.channels, seconds=args.seconds, large=list(large),
                             **measure(d, gt, m, args.jobs))
                    rows.append(r)
                    print(f"{g:>5} {seed:>4} {m:>12} | {r['units']:>5} {r['echo_units']:>4} {r['empty_wire_units']:>5} |"
                          f" {r['removed']:>3} ({r['removed_echoes']:>2} echo, {r['removed_on_empty_wires']:>2} empty) |"
                          f" {r['well']:>3}/{r['n_neurons']:<3} {r['mean_acc']:.3f}    | {r['run_s']:.0f}", flush=True)
                    shutil.rmtree(d)
            finally:
                shutil.rmtree(root, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
