#!/usr/bin/env python
"""Memory and time of clustering one electrode of any length, as a run's worker does it
(``pipeline.clustering``: load, features, solutions, auto-sort, save, solution pictures).

    python benchmarks/long_electrode.py FOLDER ELECTRODE --copies 1,2,4 [--cap 250000,100000000]

builds, from the extracted events of ELECTRODE in FOLDER (any sorted folder), an electrode that is
COPIES sessions long (the events repeated, each copy later by the session's length), and clusters
it in a fresh process per case, printing the events, the process's peak memory (VmHWM: every
page it held, memory-mapped file pages included), seconds, and the ratio of peak memory to the
smallest case. ``--cap``: ``max_refine_events`` values to compare (100000000: the refinement on
every event, with every waveform in memory, as before it was bounded).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = r"""
import json, sys, time, dataclasses
from blechrs.io.params_file import load_params
from blechrs.pipeline.clustering import _cluster_job
import glob
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
folder, electrode, cap, plots = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
params = load_params(glob.glob(folder + "/*.params")[0])
params = dataclasses.replace(params, autosort=dataclasses.replace(params.autosort, max_refine_events=cap))
start = hwm(); t0 = time.perf_counter()
summary = _cluster_job(folder, electrode, params, False, plots)
print(json.dumps(dict(seconds=time.perf_counter() - t0, peak_mb=hwm(), start_mb=start,
                      units=summary.get("n_units", summary.get("units")))))
"""


def build(source: Path, electrode: int, copies: int, out: Path) -> int:
    from blechrs.io import paths, work_files

    work = work_files.load_electrode(paths.electrode_path(source, electrode),
                                     arrays=("times", "times_subsample", "polarity", "waveforms", "noise"))
    n = len(work.times)
    shift = int(work.n_samples)
    reps = np.arange(copies)
    long = dataclasses.replace(
        work, times=(work.times[None, :] + shift * reps[:, None]).ravel(),
        times_subsample=(work.times_subsample[None, :] + shift * reps[:, None]).ravel(),
        polarity=np.tile(work.polarity, copies), waveforms=np.tile(work.waveforms, (copies, 1)),
        noise=np.tile(work.noise, copies), n_samples=shift * copies, cutoff_sample=shift * copies,
        n_events=n * copies, solutions={}, units=None, features=None, clustered=None, stage="extracted")
    out.mkdir(parents=True, exist_ok=True)
    for p in source.glob("*.params"):
        shutil.copy(p, out / p.name)
    work_files.save_electrode(paths.electrode_path(out, electrode), long)
    return n * copies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("electrode", type=int)
    ap.add_argument("--copies", default="1,2,4")
    ap.add_argument("--cap", default="250000,100000000")
    ap.add_argument("--plots", action="store_true", help="draw the solution pictures too (as a default run)")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(dir=args.folder.parent) as tmp:
        for copies in [int(c) for c in args.copies.split(",")]:
            folder = Path(tmp) / f"x{copies}"
            n = build(args.folder, args.electrode, copies, folder)
            for cap in [int(c) for c in args.cap.split(",")]:
                work = folder / "blechrs_work" / f"electrode{args.electrode:02d}.npz"
                keep = work.read_bytes() if cap != int(args.cap.split(",")[-1]) else None
                out = subprocess.run([sys.executable, "-c", CHILD, str(folder), str(args.electrode), str(cap),
                                      "1" if args.plots else "0"], capture_output=True, text=True)
                if out.returncode:
                    print(out.stderr[-2000:], file=sys.stderr)
                    raise SystemExit(out.returncode)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append((n, cap, r))
                print(f"{n:>9} events  cap {cap:>9}  peak {r['peak_mb']:7.0f} MB (start {r['start_mb']:.0f})  "
                      f"{r['seconds']:6.1f} s", flush=True)
                if keep is not None:
                    work.write_bytes(keep)  # the next case clusters the extracted events again
            shutil.rmtree(folder)
    base = min(r["peak_mb"] for _, _, r in rows)
    print("\npeak memory relative to the smallest case:")
    for n, cap, r in rows:
        print(f"  {n:>9} events, cap {cap:>9}: {r['peak_mb'] / base:5.2f}x  ({r['peak_mb'] / max(n, 1) * 1024:.2f} kB/event)")


if __name__ == "__main__":
    main()
