#!/usr/bin/env python
"""Peak RSS per auto-sort step while clustering one extracted electrode (sampled every 2 ms):
``python benchmarks/electrode_memory.py FOLDER ELECTRODE [--mapped]`` (a folder after ``blechrs
extract``; ``--mapped``: the waveforms memory-mapped, as a worker reads an electrode longer than
``max_refine_events``)."""
import sys, time, glob, threading, os, dataclasses, functools, importlib
import numpy as np
from blechrs.io.work_files import load_electrode
from blechrs.io.params_file import load_params
import blechrs.schemes.sort_electrode as se
import blechrs.schemes.autosort as au
PAGE = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20
stack = ["-"]; peaks = {}
def sampler():
    while True:
        r = rss(); k = "/".join(stack[-2:])
        if r > peaks.get(k, 0): peaks[k] = r
        time.sleep(0.002)
threading.Thread(target=sampler, daemon=True).start()
def wrap(mod, name):
    f = getattr(mod, name)
    @functools.wraps(f)
    def g(*a, **k):
        stack.append(name)
        try: return f(*a, **k)
        finally: stack.pop()
    setattr(mod, name, g)
for m, names in [(se, ["compute_features", "cluster_electrode", "events_to_cluster"]),
                 (au, ["assign_to_templates", "merge_same_units", "split_by_shape", "split_by_amplitude",
                       "drop_noise_like", "judge_unit", "_units_of_clusters", "choose_base_solution", "merge_clusters",
                       "noise_like_units", "is_echo", "_refined_assignment", "assign_with_model",
                       "_template_units", "_choices_as_labels", "refinement_events"]),
                 (se, ["_autosort_work", "unit_metrics"])]:
    for n in names: wrap(m, n)
folder, el = sys.argv[1], int(sys.argv[2])
params = load_params(glob.glob(folder + "/*.params")[0])
print("start", round(rss()))
w = load_electrode(f"{folder}/blechrs_work/electrode{el:02d}.npz", map_waveforms="--mapped" in sys.argv)
w = dataclasses.replace(w, solutions={}, units=[], features=None, stage="extracted")
print("events", len(w.times), "loaded", round(rss()))
t0 = time.perf_counter(); out = se.cluster_work(w, params); print("time", round(time.perf_counter() - t0, 2))
time.sleep(0.05)
for k, v in sorted(peaks.items(), key=lambda kv: -kv[1])[:25]: print(f"{v:8.0f} {k}")
print("units", len(out.units))
