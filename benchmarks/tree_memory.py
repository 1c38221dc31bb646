#!/usr/bin/env python
"""Peak RSS of a command's process tree with its breakdown per process (benchmarks/pipeline.py gives the
summed peak alone): ``python benchmarks/tree_memory.py LOG -- blechrs run DIR -j 2``. Samples every 50 ms;
prints the tree every 10 s, the peak with each process's share, and each process's own peak."""
import subprocess, sys, time, os
def children(pid):
    out = []
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError: pass
    return out
def tree(pid):
    res, todo = [], [pid]
    while todo:
        p = todo.pop(); res.append(p); todo += children(p)
    return res
def rss(pid):
    try:
        for l in open(f"/proc/{pid}/status"):
            if l.startswith("VmRSS"): return int(l.split()[1]) / 1024
    except OSError: return 0
    return 0
t0 = time.time()
args = [a for a in sys.argv[2:] if a != "--"] if sys.argv[2:3] == ["--"] else sys.argv[2:]
log = open(sys.argv[1], "w")
p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
peak, peak_at, per = 0, None, {}
last = 0
while p.poll() is None:
    ps = tree(p.pid); r = {q: rss(q) for q in ps}; s = sum(r.values()); t = time.time() - t0
    for q, v in r.items():
        if v > per.get(q, (0,))[0]: per[q] = (v, round(t, 1))
    if s > peak: peak, peak_at = s, (round(t, 1), {q: round(v) for q, v in r.items()})
    if t - last > 10: print(f"t={t:6.0f}s tree {s:6.0f} MB " + " ".join(f"{q}:{v:.0f}" for q, v in r.items()), flush=True); last = t
    time.sleep(0.05)
print("tree peak", round(peak), "at", peak_at)
for q, (v, t) in sorted(per.items(), key=lambda kv: -kv[1][0])[:6]: print(" proc", q, round(v), "MB at", t, "s")
print("wall", round(time.time() - t0, 1), "rc", p.returncode)
