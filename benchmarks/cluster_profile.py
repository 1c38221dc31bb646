#!/usr/bin/env python
"""cProfile of the cluster stage of a whole folder in one process (every electrode, one after the
other, from its extracted events): ``python benchmarks/cluster_profile.py FOLDER`` (after ``blechrs run``)."""
import sys, time, glob, cProfile, pstats, dataclasses
import numpy as np
from blechrs.io.work_files import load_electrode
from blechrs.io.params_file import load_params
from blechrs.schemes.sort_electrode import cluster_work
folder = sys.argv[1]
params = load_params(glob.glob(folder + "/*.params")[0])
works = []
for f in sorted(glob.glob(folder + "/blechrs_work/electrode*.npz")):
    w = load_electrode(f)
    works.append(dataclasses.replace(w, solutions={}, units=[], features=None, stage="extracted"))
print("events", sum(len(w.times) for w in works))
pr = cProfile.Profile()
t0 = time.perf_counter()
pr.enable()
for w in works:
    cluster_work(w, params)
pr.disable()
print("total", time.perf_counter() - t0)
pstats.Stats(pr).sort_stats("cumulative").print_stats(45)
