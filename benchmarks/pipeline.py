#!/usr/bin/env python
"""The whole blechrs chain on a simulated 32-channel x 600 s recording: wall time, peak RSS of the
process tree, time per stage, and accuracy against the ground truth.

Reference run in the same script: blech_clust's per-electrode signal kernels (scipy filtfilt in
float64, median/MAD threshold, crossing runs, snippets) on a few channels of the same recording,
extrapolated to every channel on the same number of cores. blech_clust's GMM/BGM fitting, which
is 68 % of its time (../shared/spec/peers.md), is not included, so the ratio understates the gap.

    python benchmarks/pipeline.py                 # 32 ch x 600 s, 2 jobs, no pictures
    python benchmarks/pipeline.py --seconds 60 --plots
The recording is cached in bench_data/ (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (Linux /proc)."""
    total = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    stack.extend(int(c) for c in fh.read().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total / 1024.0


def run_measured(cmd: list[str], env: dict) -> tuple[float, float, int, str]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = [0.0]

    def poll():
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss_mb(proc.pid))
            time.sleep(0.05)

    th = threading.Thread(target=poll, daemon=True)
    th.start()
    out, _ = proc.communicate()
    wall = time.perf_counter() - t0
    th.join()
    return wall, peak[0], proc.returncode, out


def make_recording(directory: Path, seconds: float, channels: int, seed: int):
    from blechrs.simulate import GroundTruth, Simulation

    gt_path = directory / "ground_truth.npz"
    if (directory / ".complete").exists():
        return GroundTruth.load(gt_path)
    directory.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print(f"simulating {channels} channels x {seconds:g} s (seed {seed}) into {directory} ...", flush=True)
    gt = Simulation(seed=seed, n_channels=channels, duration_s=seconds).write(directory, layout="one file per channel")
    if not gt_path.exists():
        gt.save(gt_path)
    (directory / ".complete").write_text("ok\n")
    print(f"  simulated in {time.perf_counter() - t0:.0f} s", flush=True)
    return gt


def reference_kernels(directory: Path, n_channels: int, jobs: int) -> float:
    """blech_clust's per-electrode extraction kernels on n_channels, seconds per channel."""
    from scipy.signal import butter, filtfilt

    from blechrs.io import open_recording

    rec = open_recording(directory)
    fs = rec.sampling_rate
    b, a = butter(2, [2 * 300 / fs, 2 * 3000 / fs], "bandpass")
    t0 = time.perf_counter()
    for ch in range(n_channels):
        x = rec.read([ch], 0, rec.n_samples)[0].astype(np.float64) * 0.195
        f = filtfilt(b, a, x)
        m = np.median(f)
        th = 5 * np.median(np.abs(f - m)) / 0.6745
        neg = np.flatnonzero(f < m - th)
        runs = np.split(neg, np.flatnonzero(np.diff(neg) > 1) + 1) if len(neg) else []
        peaks = np.array([r[np.argmin(f[r])] for r in runs if len(r)], dtype=np.int64)
        peaks = peaks[(peaks > 33) & (peaks < len(f) - 48)]
        _ = np.stack([f[p - 33:p + 48] for p in peaks]) if len(peaks) else None
    return (time.perf_counter() - t0) / n_channels


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--plots", action="store_true", help="also make the pictures (timed separately)")
    ap.add_argument("--reference-channels", type=int, default=2)
    ap.add_argument("--data", type=Path, default=None)
    args = ap.parse_args()

    name = f"pipeline_c{args.channels}_d{int(args.seconds)}_s{args.seed}"
    directory = args.data or ROOT / "bench_data" / name
    gt = make_recording(directory, args.seconds, args.channels, args.seed)
    for p in list(directory.glob("*.h5")) + list(directory.glob("*_autosort.csv")):
        p.unlink()
    # Always measure the current defaults (the folder is the benchmark's own).
    from blechrs.io import paths
    from blechrs.io.params_file import save_params
    from blechrs.params import SortParams
    from blechrs import pipeline as pl

    if pl.needs_init(directory):
        pl.init(directory)
    save_params(paths.params_path(directory), SortParams().replace(sampling_rate=gt.sampling_rate))

    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "blechrs.cli", "run", str(directory), "--force", "-q", "-j", str(args.jobs)]
    if not args.plots:
        cmd.append("--no-plots")
    wall, peak_mb, code, out = run_measured(cmd, env)
    if code != 0:
        print(out)
        return 1
    stage_line = [line for line in out.splitlines() if line.startswith("time:")]
    stages = {}
    if stage_line:
        for part in stage_line[0][len("time:"):].split(","):
            words = part.split()  # "<stage name> <seconds> s"; names may hold spaces ("unit QA")
            stages[" ".join(words[:-2])] = float(words[-2])

    from blechrs.io import paths, unit_store
    from blechrs.simulate.scoring import score_sorting

    units = unit_store.read_units(paths.h5_path(directory), waveforms=False)
    scores, unmatched = score_sorting(gt.spike_times, gt.unit_channel, {u.name: u.times for u in units},
                                      gt.sampling_rate, sorted_channels={u.name: u.electrode for u in units})
    acc = np.array([s.accuracy for s in scores])

    per_channel = reference_kernels(directory, args.reference_channels, args.jobs)
    ref_total = per_channel * args.channels / max(1, min(args.jobs, os.cpu_count() or 1))

    result = dict(channels=args.channels, seconds=args.seconds, jobs=args.jobs, plots=args.plots,
                  wall_s=round(wall, 2), peak_rss_mb=round(peak_mb), stages=stage_line[0] if stage_line else "",
                  units=len(units), gt_units=len(scores), well_detected=int(np.sum(acc >= 0.8)),
                  mean_accuracy=round(float(acc.mean()), 3) if len(acc) else 0.0, fp_units=len(unmatched),
                  reference_kernels_s=round(ref_total, 1),
                  extract_speedup=round(ref_total / stages["extract"], 2) if stages.get("extract") else None,
                  load_average=os.getloadavg())
    print(json.dumps(result, indent=2))
    print(f"blechrs: {wall:.1f} s wall, peak RSS {peak_mb:.0f} MB ({args.channels} ch x {args.seconds:g} s, "
          f"{args.jobs} jobs{', with pictures' if args.plots else ', no pictures'})")
    if stages.get("extract"):
        print(f"extraction: blechrs {stages['extract']:.1f} s (CAR, filter, cutoff, threshold, detection, aligned "
              f"waveforms) vs blech_clust's filter+threshold+snippet kernels {ref_total:.1f} s on {args.jobs} cores "
              f"({ref_total / stages['extract']:.1f}x)")
    print(f"machine load average during the run: {', '.join(f'{x:.1f}' for x in os.getloadavg())} "
          f"({os.cpu_count()} cores; figures scale with the share of the machine this run got)")
    print(f"accuracy: {result['well_detected']}/{len(scores)} well detected, mean {result['mean_accuracy']}, "
          f"{len(units)} units, {len(unmatched)} matching no ground-truth unit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
